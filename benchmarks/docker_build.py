"""Docker image builds: a full build vs the rebuild after adding one package, in one run.

The full build starts from a base image made unique for this run (the local base plus a label
with a random value), so no layer of an earlier run can be reused; the rebuild adds one package
to the same spec. Every image the run made is removed at the end.

Usage: ``python benchmarks/docker_build.py [--base IMAGE]``. Target: rebuild / full <= 0.3.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from jupyter_envs import Environment, Workspace


def _images() -> set[str]:
    out = subprocess.run(
        ["docker", "images", "-aq", "--no-trunc"], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    local = "jupyter-envs-test/python:bookworm"
    parser.add_argument("--base", default=os.environ.get("JUPYTER_ENVS_DEFAULT_BASE_IMAGE", local))
    args = parser.parse_args()
    import docker

    client = docker.from_env()
    before = _images()
    nonce = uuid.uuid4().hex[:12]
    base = f"jupyter-envs-bench/base:{nonce}"
    dockerfile = f"FROM {args.base}\nLABEL jupyter-envs.bench={nonce}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
    try:
        with tempfile.TemporaryDirectory(prefix="jenvs-dbench-") as tmp:
            ws = Workspace(Path(tmp) / "store", Path(tmp) / "kernels")
            name = f"bench-{nonce}"
            spec = Environment(name, pip=["six==1.17.0"], base_image=base)
            started = time.perf_counter()
            spec.build(ws=ws)
            full = time.perf_counter() - started
            bigger = spec.clone_with(pip=["six==1.17.0", "tomli==2.0.1"])
            started = time.perf_counter()
            bigger.build(ws=ws)
            incremental = time.perf_counter() - started
            ws_versions = [v.version for v in ws.versions(name)]
    finally:
        for _ in range(5):  # children before parents
            new = _images() - before
            if not new:
                break
            subprocess.run(["docker", "rmi", "-f", *new], capture_output=True, check=False)
        client.close()
    ratio = incremental / full
    print(f"base {args.base} (+ a unique label), versions built: {ws_versions}")
    print(f"full build (six)                 : {full:6.1f} s")
    print(f"rebuild after adding one package : {incremental:6.1f} s")
    print(
        f"rebuild / full                   : {ratio:6.2f}  (target <= 0.3) "
        f"{'OK' if ratio <= 0.3 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
