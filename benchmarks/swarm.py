"""Images in a registry and kernels on Swarm, each against its baseline in the same run.

1. **Push**: ``EnvManager.push`` of an environment's image (tag, push with progress, digest
   recorded, Swarm kernelspec written, tag removed) vs ``docker tag`` + ``docker push`` of the
   same image with the Docker CLI. Every push of either side goes to a registry started empty
   for it (the engine would otherwise find the layers there already). Target: ratio <= 1.1.
2. **Kernel ready**: start → ``kernel_info`` answered, for the environment's Swarm kernelspec (a
   one-task service of the pushed image by digest) vs its container kernelspec (a container of
   the same image on the same engine). The pushed image is on the engine already (one warm-up
   start pulls it): this measures orchestration, not the pull. Target: ratio <= 1.3 (Swarm
   schedules a task, creates two secrets and waits for the task's state; a container starts
   directly; measured 1.08x).

Sides alternate round by round; medians and spreads are printed.

Usage: ``python benchmarks/swarm.py [--base BASE] [--repeat N]``. Needs a Docker engine and
Debian's ``docker-registry`` (scripts/docker/install-registry.sh); puts the engine in swarm mode
if it is not (and takes it out again), builds a throwaway environment in a temporary store, and
removes everything it made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import alternate, ratio, spread, verdict
from benchmarks.docker_kernel import provisioner_start
from jupyter_envs import Environment, EnvManager, Workspace
from jupyter_envs.engines.kernels.kernelspec import swarm_kernel_name

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """A registry process with empty storage, on a free 127.0.0.1 port."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.port = _free_port()
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
        )
        self.process = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the registry did not start")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def kernel_ready(name: str, kernels: Path, cwd: Path) -> float:
    """Seconds from start_kernel to a kernel_info reply (a graceful shutdown after)."""
    return provisioner_start(name, cwd, kernels, timeout=300, now=False)


def main() -> None:
    """Run both comparisons and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--base",
        default=os.environ.get(
            "JUPYTER_ENVS_DEFAULT_BASE_IMAGE", "jupyter-envs-test/python:bookworm"
        ),
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    joined = _docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() != "active"
    if joined:
        _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    registries: list[Registry] = []
    pulled: set[str] = set()
    try:
        with tempfile.TemporaryDirectory(prefix="jenvs-swbench-") as tmp:
            root = Path(tmp)
            manager = EnvManager(Workspace(root / "store", root / "kernels"))

            def fresh() -> Registry:
                registries.append(Registry(root / f"registry-{len(registries)}"))
                return registries[-1]

            env = Environment("swbench", pip=["six"], base_image=args.base)
            print(f"building a throwaway Docker environment on {args.base} ...", flush=True)
            manager.build(env)
            record = manager.record("swbench")
            tag = _docker("images", "--format", "{{.Repository}}:{{.Tag}}", "jupyter-envs/swbench")
            image = tag.split()[0]

            def ours() -> float:
                target = fresh()
                t0 = time.perf_counter()
                pushed = manager.push("swbench", registry=f"{target.host}/bench")
                took = time.perf_counter() - t0
                pulled.add(pushed.pinned)
                return took

            def cli() -> float:
                target = fresh()
                ref = f"{target.host}/bench/swbench:cli"
                t0 = time.perf_counter()
                _docker("tag", image, ref)
                _docker("push", "-q", ref)
                took = time.perf_counter() - t0
                _docker("rmi", ref)
                return took

            pushes = alternate({"ours": ours, "cli": cli}, args.repeat)
            print(f"push, EnvManager.push: {spread(pushes['ours'])}")
            print(f"push, docker push:     {spread(pushes['cli'])}")
            value, text = ratio(pushes["ours"], pushes["cli"])
            print(f"push ratio: {text}  (target <= 1.1) {verdict(value, at_most=1.1)}")

            # The kernelspec follows the latest push: keep that registry running for the pulls.
            assert record.kernel_name
            swarm_name = swarm_kernel_name(record.kernel_name)
            nb = root / "nb"
            nb.mkdir()
            kernels = manager.ws.kernels_dir
            kernel_ready(swarm_name, kernels, nb)  # warm-up: pulls the pushed image
            kernel_ready(record.kernel_name, kernels, nb)
            ready = alternate(
                {
                    "swarm": lambda: kernel_ready(swarm_name, kernels, nb),
                    "container": lambda: kernel_ready(str(record.kernel_name), kernels, nb),
                },
                args.repeat,
            )
            print(f"kernel ready, Swarm service: {spread(ready['swarm'])}")
            print(f"kernel ready, container:     {spread(ready['container'])}")
            value, text = ratio(ready["swarm"], ready["container"])
            print(f"ready ratio: {text}  (target <= 1.3) {verdict(value, at_most=1.3)}")
            manager.remove("swbench")
    finally:
        for registry in registries:
            registry.stop()
        for ref in pulled:
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)
        if joined:
            _docker("swarm", "leave", "--force")


if __name__ == "__main__":
    main()
