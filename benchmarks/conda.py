"""Conda build speed: jupyter-envs' conda builder against py-rattler called directly, in one run.

The same spec on both sides, from a local channel made for the run (tests/_conda_channel.py:
a packaged Python, a tool and its dependency): conda packages solved and installed by rattler,
then the pip section and the kernel's packages by uv (without them no kernel could start, so
the direct side installs them too, the way a person would by hand). Two cases:

- cold: an empty rattler package cache on both sides (every package extracted from the channel);
  the store's other caches (kernel bytecode, filled by any first build) are kept;
- warm: the package cache filled by an earlier round (packages linked from it).

uv's own cache is warm on both sides. Target: ours <= 1.2x the direct calls in both cases.

Usage: ``python benchmarks/conda.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._timing import alternate, ratio, spread, verdict
from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.builders.uvtool import find_uv, uv_environment
from jupyter_envs.engines.runtime import KERNEL_SIDE_REQUIREMENTS
from tests._conda_channel import make_channel

CONDA = ("python=3.11", "jenvs-tool")
PIP = ("six==1.17.0",)
TARGET = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jenvs-bench-conda-"))
    try:
        return run(work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, repeat: int) -> int:
    print("Making the local channel (a packaged Python: takes a few seconds)...", flush=True)
    channel = make_channel(work)
    uv = find_uv()
    assert uv is not None, "uv is not installed"
    uv_env, _ = uv_environment()
    uv_env["UV_BREAK_SYSTEM_PACKAGES"] = "1"
    text = (
        f"channels: [{channel.as_uri()}]\ndependencies:\n"
        + "".join(f"  - {c}\n" for c in CONDA)
        + "  - pip:\n"
        + "".join(f"      - {p}\n" for p in PIP)
    )
    reqs = work / "requirements.txt"
    reqs.write_text("\n".join([*PIP, *KERNEL_SIDE_REQUIREMENTS]) + "\n")
    counter = iter(range(10_000))

    # Each side returns the seconds of its build alone: removing what it made is not timed.
    def direct(cache: Path) -> float:
        import rattler

        prefix = work / f"direct-{next(counter)}"
        started = time.perf_counter()

        async def solve_and_install() -> None:
            records = await rattler.solve(
                [channel.as_uri()],
                [rattler.MatchSpec(s) for s in CONDA],
                virtual_packages=rattler.VirtualPackage.detect(),
            )
            await rattler.install(records, prefix, cache_dir=cache, show_progress=False)

        asyncio.run(solve_and_install())
        python = str(prefix / "bin" / "python")
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", python, "-r", str(reqs)],
            env=uv_env,
            check=True,
        )
        took = time.perf_counter() - started
        shutil.rmtree(prefix)
        return took

    def ours(root: Path) -> float:
        # A new name each round (never a cache hit); the store's package cache is what varies.
        ws = Workspace(root / "store", root / "kernels")
        env = Environment.from_text(f"bench{next(counter)}", text)
        started = time.perf_counter()
        result = env.build(ws=ws)
        took = time.perf_counter() - started
        assert not result.cache_hit
        ws.delete(result.name)
        shutil.rmtree(result.artifact, ignore_errors=True)
        return took

    def cold_direct() -> float:
        cache = work / "cold-direct-cache"
        shutil.rmtree(cache, ignore_errors=True)
        return direct(cache)

    def cold_ours() -> float:
        # Only the package cache goes: the store's other caches (the kernel's bytecode) are
        # filled by any first build, cold packages or not.
        root = work / "cold-ours"
        shutil.rmtree(root / "store" / "cache" / "conda", ignore_errors=True)
        return ours(root)

    # Warm: one round first to fill each side's caches, not timed.
    direct(work / "warm-direct-cache")
    ours(work / "warm-ours")
    ours(work / "cold-ours")
    cases = {
        "cold": {"direct rattler + uv": cold_direct, "jupyter-envs": cold_ours},
        "warm": {
            "direct rattler + uv": lambda: direct(work / "warm-direct-cache"),
            "jupyter-envs": lambda: ours(work / "warm-ours"),
        },
    }
    failed = False
    for case, sides in cases.items():
        times = alternate(sides, repeat)
        print(f"\n{case} package cache:")
        for name, values in times.items():
            print(f"  {name:22} {spread(values)}")
        value, text_ratio = ratio(times["jupyter-envs"], times["direct rattler + uv"])
        result = verdict(value, at_most=TARGET)
        failed |= result != "OK"
        print(f"  ours / direct          {text_ratio}   target <= {TARGET}x: {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    raise SystemExit(main())
