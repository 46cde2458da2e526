"""Kernel-start benchmark: an environment's kernel against the host's own ipykernel, one run.

Builds a small environment (real uv) in a temporary store, then starts, in turn, the host's
``python3`` kernel and the environment's kernel, ``--repeat`` times each, alternating, and times
each from ``start_kernel`` to the ``kernel_info_reply`` (what a notebook waits for after a
switch). Every environment-kernel start is that environment's first start in the sense that
matters here: this machine sets ``PYTHONDONTWRITEBYTECODE``, so a start never leaves bytecode
for the next; what it finds is what the build left. Target: env / host <= 1.15x.

Also prints the cost of that bytecode in the build: the first build of a store (which compiles
it) and a second one (which only links it).

Usage: ``python benchmarks/kernel_start.py [--repeat N] [--packages "six"]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from benchmarks._timing import alternate, ratio, spread, verdict
from jupyter_envs import Environment, Workspace


def start_once(name: str, spec_manager: KernelSpecManager) -> float:
    """Seconds from start_kernel to the kernel_info reply; the kernel is shut down after."""
    km = KernelManager(kernel_name=name, kernel_spec_manager=spec_manager)
    started = time.perf_counter()
    km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        msg_id = client.kernel_info()
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return time.perf_counter() - started
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--packages", default="six")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jenvs-kstart-"))
    try:
        ws = Workspace(work / "store", work / "kernels")
        packages = args.packages.split()
        first = Environment("kstart-first", pip=packages).build(ws=ws)
        env = Environment("kstart", pip=packages).build(ws=ws)
        # The same environment as it was before bytecode came with the build: none.
        bare = Environment("kstart-bare", pip=packages).build(ws=ws)
        for cache in Path(bare.artifact).rglob("__pycache__"):
            shutil.rmtree(cache)
        spec_manager = KernelSpecManager(kernel_dirs=[str(ws.kernels_dir)])
        host = KernelSpecManager()
        if "python3" not in host.find_kernel_specs():
            raise SystemExit("the host has no python3 kernelspec (pip install ipykernel)")
        print(
            f"packages: {' '.join(packages)}, python {sys.version.split()[0]}, "
            f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
        )
        print(f"first build of the store (compiles bytecode) : {first.duration:6.2f} s")
        print(f"second build (links the cached bytecode)     : {env.duration:6.2f} s")
        sides = {
            "host": lambda: start_once("python3", host),
            "env": lambda: start_once(env.kernel_name, spec_manager),
            "bare": lambda: start_once(bare.kernel_name, spec_manager),
        }
        alternate(sides, 1)  # warm the OS file cache for every side
        times = alternate(sides, args.repeat)
        print(f"host ipykernel start      : {spread(times['host'])}")
        print(f"env kernel start          : {spread(times['env'])}")
        print(f"env kernel, no bytecode   : {spread(times['bare'])}")
        value, text = ratio(times["env"], times["host"])
        print(
            f"env / host                : {text}  (target <= 1.15x) {verdict(value, at_most=1.15)}"
        )
        print(f"no bytecode / host        : {ratio(times['bare'], times['host'])[1]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
