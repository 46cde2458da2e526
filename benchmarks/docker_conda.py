"""A conda environment in a Docker image: solved on the host (what the builder does) vs inside
the build, in one run.

- host: ``Environment.build`` of a conda spec with a base image. rattler solves and links the
  prefix on this machine for the image's path (its shared package cache warm after the first
  round), uv adds the pip section, and the prefix is copied into the image.
- inside: the alternative, measured here only: the channel folder goes into the build context, a
  build step installs py-rattler and uv into the image, solves and links the prefix there, then
  installs the pip section.

Each round builds on a base image unique to the round (the local base plus a label), so no
layer of an earlier round can be reused on either side; everything this run made is removed at
the end. Both images are checked: their Python runs ``import six`` from the prefix.

Usage: ``python benchmarks/docker_conda.py [--base IMAGE] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._timing import ratio, spread
from benchmarks.docker_build import LABEL, _ours
from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.runtime import KERNEL_SIDE_REQUIREMENTS
from tests._conda_channel import make_channel

CONDA = ("python=3.11", "jenvs-tool")
PIP = ("six==1.17.0",)

_SOLVE = """
import asyncio, rattler
async def main():
    specs = [rattler.MatchSpec(s) for s in {specs!r}]
    records = await rattler.solve(
        ["file:///jenv-channel"], specs, virtual_packages=rattler.VirtualPackage.detect()
    )
    await rattler.install(records, "/opt/jenv", show_progress=False)
asyncio.run(main())
"""


_CHECK = "import six, sys; print(sys.prefix)"


def _check(tag: str) -> None:
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            tag,
            "/opt/jenv/bin/python",
            "-c",
            "import six, sys; print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "/opt/jenv", out


def host(base: str, channel: Path, nonce: str, work: Path) -> float:
    ws = Workspace(work / f"store-{nonce}", work / f"kernels-{nonce}")
    text = (
        f"channels: [{channel.as_uri()}]\ndependencies:\n"
        + "".join(f"  - {c}\n" for c in CONDA)
        + "  - pip:\n"
        + "".join(f"      - {p}\n" for p in PIP)
    )
    env = Environment.from_text(f"bench-{nonce}", text)
    env.docker.base_image = base
    started = time.perf_counter()
    result = env.build(ws=ws)
    took = time.perf_counter() - started
    info = ws.get(result.name)
    _check(json.loads((Path(info.artifact or "") / "image.json").read_text())["tag"])
    return took


def inside(client: Any, base: str, channel: Path, nonce: str, work: Path) -> float:
    context = work / f"inside-{nonce}"
    shutil.copytree(channel, context / "jenv-channel")
    (context / "solve.py").write_text(_SOLVE.format(specs=list(CONDA)))
    pip = " ".join(shlex.quote(p) for p in [*PIP, *KERNEL_SIDE_REQUIREMENTS])
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY jenv-channel /jenv-channel\n"
        "RUN python3 -m venv /opt/rattler && /opt/rattler/bin/pip install -q py-rattler uv\n"
        "COPY solve.py /tmp/solve.py\n"
        "RUN /opt/rattler/bin/python /tmp/solve.py\n"
        f"RUN /opt/rattler/bin/uv pip install --no-cache --break-system-packages "
        f"--python /opt/jenv/bin/python {pip}\n"
    )
    tag = f"jupyter-envs-bench/inside:{nonce}"
    started = time.perf_counter()
    # forcerm: a failed step leaves no container behind either.
    client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
    took = time.perf_counter() - started
    _check(tag)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="jupyter-envs-test/python:bookworm")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import docker

    client = docker.from_env()
    work = Path(tempfile.mkdtemp(prefix="jenvs-bench-dconda-"))
    nonces: list[str] = []
    times: dict[str, list[float]] = {"host": [], "inside": []}
    try:
        channel = make_channel(work)
        for _ in range(args.repeat):
            for side in ("host", "inside"):
                nonce = uuid.uuid4().hex[:10]
                nonces.append(nonce)
                base = f"jupyter-envs-bench/base:{nonce}"
                dockerfile = f"FROM {args.base}\nLABEL {LABEL}={nonce}\n".encode()
                client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
                if side == "host":
                    times[side].append(host(base, channel, nonce, work))
                else:
                    times[side].append(inside(client, base, channel, nonce, work))
        for side, values in times.items():
            print(f"{side:7} {spread(values)}")
        _value, text = ratio(times["host"], times["inside"])
        print(f"host / inside: {text}")
    finally:
        for nonce in nonces:
            ids = _ours(nonce)
            if ids:
                subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True)
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
