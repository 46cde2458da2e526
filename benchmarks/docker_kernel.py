"""Container kernel start: through the provisioner vs a bare ``docker run``, in one run.

Both sides time from "start asked" to "the kernel answered kernel_info" with the same image, the
same five ports published on 127.0.0.1 and the same client. The provisioner side goes through
``jupyter_client.KernelManager`` and a kernelspec written by ``docker_kernelspec_fields`` (port
choice, connection file, secrets shim, labels, docker-init, uid mapping); the bare side creates
and starts a plain container running ipykernel with the Docker SDK. Runs alternate so that both
see the same machine state; medians are compared.

Usage: ``python benchmarks/docker_kernel.py [--image IMAGE] [--base BASE] [--repeat N]``. Without
``--image`` it builds a throwaway Docker environment (``six`` on ``--base``, default
``$JUPYTER_ENVS_DEFAULT_BASE_IMAGE`` or the local test base image) in a temporary store and removes
it at the end. A given image needs ipykernel on its interpreter (label ``jupyter-envs.python``,
else ``python3``); an environment built by the docker backend is one. Target: ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import time
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from benchmarks._timing import alternate, ratio, spread, verdict
from jupyter_envs.engines.docker import LABEL_PYTHON
from jupyter_envs.engines.kernels import PROVISIONER_NAME, docker_kernelspec_fields
from jupyter_envs.engines.kernels.containers import PORT_NAMES
from jupyter_envs.engines.kernels.kernelspec import write_kernelspec


def provisioner_start(
    name: str, cwd: Path, kernels: Path | None = None, *, timeout: float = 60, now: bool = True
) -> float:
    """Seconds from start_kernel to a kernel_info reply, through the kernelspec's provisioner
    (``kernels``: the folder holding the kernelspec, else Jupyter's path)."""
    if kernels is None:
        km = KernelManager(kernel_name=name)
    else:
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
    t0 = time.perf_counter()
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=now)


def bare_start(client: Any, image: str, python: str, workdir: Path) -> float:
    """Seconds from container create to a kernel_info reply, for a plain ``docker run``."""
    km = KernelManager()
    km.connection_file = str(workdir / "kernel-bare.json")
    km.write_connection_file()
    info: dict[str, Any] = dict(km.get_connection_info())
    inside = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in info.items()}
    inside["ip"] = "0.0.0.0"  # noqa: S104 - published on 127.0.0.1 only
    copy = workdir / "inside.json"
    copy.write_text(json.dumps(inside))
    ports = {f"{info[n]}/tcp": ("127.0.0.1", info[n]) for n in PORT_NAMES}
    t0 = time.perf_counter()
    container = client.containers.run(
        image,
        [python, "-m", "ipykernel_launcher", "-f", "/conn/inside.json"],
        detach=True,
        ports=ports,
        volumes={str(workdir): {"bind": "/conn", "mode": "ro"}},
    )
    # No manager process to watch and no heartbeat until the kernel is up: wait_for_ready would
    # call the kernel dead at once. Ask for kernel_info until it answers instead.
    kc = BlockingKernelClient(connection_file=km.connection_file)
    kc.load_connection_file()
    kc.start_channels()
    try:
        deadline = t0 + 60
        while True:
            kc.kernel_info()
            try:
                reply = kc.get_shell_msg(timeout=0.2)
            except queue.Empty:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the bare container's kernel never answered") from None
                continue
            if reply["msg_type"] == "kernel_info_reply":  # any of the requests: it is up
                return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        container.remove(force=True)
        km.cleanup_connection_file()


def main() -> None:
    """Run the benchmark and print both medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", help="an image with ipykernel (default: build one)")
    local = "jupyter-envs-test/python:bookworm"
    parser.add_argument(
        "--base",
        default=os.environ.get("JUPYTER_ENVS_DEFAULT_BASE_IMAGE", local),
        help="base image of the throwaway environment built without --image",
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.image:
        run(args.image, args.repeat)
        return
    from jupyter_envs import Environment, EnvManager, Workspace

    with tempfile.TemporaryDirectory(prefix="jenvs-dkbench-") as tmp:
        ws = Workspace(Path(tmp) / "store", Path(tmp) / "kernels")
        env = Environment("dkbench", pip=["six"], base_image=args.base)
        print(f"building a throwaway Docker environment on {args.base} ...", flush=True)
        result = env.build(ws=ws)
        tag = json.loads((Path(result.artifact) / "image.json").read_text())["tag"]
        try:
            run(tag, args.repeat)
        finally:
            EnvManager(ws).remove("dkbench")  # removes the image too


def run(image: str, repeat: int) -> None:
    """Time both ways of starting a kernel of ``image`` and print the medians and their ratio."""
    if not entry_points(group=KernelProvisionerFactory.GROUP_NAME, name=PROVISIONER_NAME):
        # The package metadata predates the entry point: register it for this process.
        KernelProvisionerFactory.provisioners[PROVISIONER_NAME] = EntryPoint(
            PROVISIONER_NAME,
            "jupyter_envs.engines.kernels.docker_provisioner:DockerKernelProvisioner",
            KernelProvisionerFactory.GROUP_NAME,
        )
    client = docker.from_env()
    labels = client.images.get(image).labels or {}
    python = labels.get(LABEL_PYTHON, "python3")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["JUPYTER_DATA_DIR"] = str(root / "data")
        os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
        fields = docker_kernelspec_fields(
            image,
            env_name="bench",
            version=1,
            spec_hash="0" * 12,
            cpu=None,
            memory=None,
            gpu=None,
            secrets=[],
            env_vars={},
        )
        name = write_kernelspec(
            root / "data" / "kernels",
            env_name="bench",
            version=1,
            spec_hash="0" * 12,
            backend="docker",
            argv=fields["argv"],
            python_version="3",
            env_vars={},
            store_root=root / "store",
            interrupt_mode=fields["interrupt_mode"],
            extra_metadata=fields["metadata"],
        )
        nb = root / "nb"
        nb.mkdir()
        bare_dir = root / "bare"
        bare_dir.mkdir()
        # One warm-up each: the first container start pays for page cache and network setup.
        provisioner_start(name, nb)
        bare_start(client, image, python, bare_dir)
        times = alternate(
            {
                "provisioner": lambda: provisioner_start(name, nb),
                "bare": lambda: bare_start(client, image, python, bare_dir),
            },
            repeat,
        )
    client.close()
    print(f"provisioner: {spread(times['provisioner'])}")
    print(f"bare run:    {spread(times['bare'])}")
    value, text = ratio(times["provisioner"], times["bare"])
    print(f"ratio: {text}  (target <= 1.2) {verdict(value, at_most=1.2)}")


if __name__ == "__main__":
    main()
