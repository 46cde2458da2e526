"""Docker image builds: a full build vs the rebuild after adding one package, in one run.

Each round starts from a base image made unique for that round (the local base plus a label
with a random value), so no layer of an earlier round or run can be reused; the rebuild adds one
package to the same spec. The label is inherited by every image built on that base, so exactly
the images this run made are removed at the end, and nothing else on the engine is touched.

Usage: ``python benchmarks/docker_build.py [--base IMAGE] [--repeat N]``.
Target: rebuild / full <= 0.3.
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
from typing import Any

from benchmarks._timing import ratio, spread, verdict
from jupyter_envs import Environment, Workspace

LABEL = "jupyter-envs.bench"


def _ours(nonce: str) -> list[str]:
    out = subprocess.run(
        ["docker", "images", "-aq", "--no-trunc", "--filter", f"label={LABEL}={nonce}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(dict.fromkeys(out.stdout.split()))


def one_round(client: Any, base_image: str, nonce: str) -> tuple[float, float]:
    """(full build, rebuild after adding one package) on a base unique to ``nonce``."""
    base = f"jupyter-envs-bench/base:{nonce}"
    dockerfile = f"FROM {base_image}\nLABEL {LABEL}={nonce}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
    with tempfile.TemporaryDirectory(prefix="jenvs-dbench-") as tmp:
        ws = Workspace(Path(tmp) / "store", Path(tmp) / "kernels")
        spec = Environment(f"bench-{nonce}", pip=["six==1.17.0"], base_image=base)
        started = time.perf_counter()
        spec.build(ws=ws)
        full = time.perf_counter() - started
        bigger = spec.clone_with(pip=["six==1.17.0", "tomli==2.0.1"])
        started = time.perf_counter()
        bigger.build(ws=ws)
        return full, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    local = "jupyter-envs-test/python:bookworm"
    parser.add_argument("--base", default=os.environ.get("JUPYTER_ENVS_DEFAULT_BASE_IMAGE", local))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import docker

    client = docker.from_env()
    nonces = [uuid.uuid4().hex[:12] for _ in range(args.repeat)]
    full: list[float] = []
    rebuild: list[float] = []
    try:
        for nonce in nonces:
            a, b = one_round(client, args.base, nonce)
            full.append(a)
            rebuild.append(b)
    finally:
        for nonce in nonces:
            for _ in range(5):  # children before parents
                left = _ours(nonce)
                if not left:
                    break
                subprocess.run(["docker", "rmi", "-f", *left], capture_output=True, check=False)
        client.close()
    print(f"base {args.base} (+ a label unique to each round), {args.repeat} round(s)")
    print(f"full build (six)                 : {spread(full)}")
    print(f"rebuild after adding one package : {spread(rebuild)}")
    value, text = ratio(rebuild, full)
    print(
        f"rebuild / full                   : {text}  (target <= 0.3) {verdict(value, at_most=0.3)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
