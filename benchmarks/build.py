"""Build-speed benchmark: jupyter-envs against raw uv and against venv + pip, in one run.

Prints, for the same package set and a warm cache:

- our build (``Environment.build``) vs ``uv venv && uv pip install``  (target <= 1.3x)
- ``python -m venv`` + ``pip install`` vs our build                 (target >= 15x slower)
- an unchanged-spec ``%%env`` cell in IPython                        (target <= 50 ms)

Usage: ``python benchmarks/build.py [--repeat N] [--packages "six requests"]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.builders import pipconfig
from jupyter_envs.engines.builders.pythons import select_interpreter
from jupyter_envs.engines.builders.uv import find_uv
from jupyter_envs.engines.runtime import KERNEL_SIDE_REQUIREMENTS


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--packages", default="six requests")
    parser.add_argument("--skip-pip", action="store_true", help="skip the slow venv+pip baseline")
    args = parser.parse_args()

    packages = args.packages.split()
    work = Path(tempfile.mkdtemp(prefix="jenvs-bench-"))
    uv = find_uv()
    assert uv is not None, "uv is not installed"
    interp = select_interpreter(None)
    reqs = work / "requirements.txt"
    # The same set our builder installs: the user's packages plus the kernel side.
    reqs.write_text("\n".join([*packages, *KERNEL_SIDE_REQUIREMENTS]) + "\n")
    env = {**os.environ, **pipconfig.uv_environment(), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)

    def raw_uv() -> None:
        target = work / "raw-uv"
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [uv, "venv", "-q", "--python", interp.path, str(target)], env=env, check=True
        )
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(target / "bin/python"), "-r", str(reqs)],
            env=env,
            check=True,
        )

    ws = Workspace(work / "store", work / "kernels")
    spec = Environment("bench", pip=packages)

    def ours() -> None:
        spec.build(ws=ws, force=True)

    def venv_pip() -> None:
        target = work / "venv-pip"
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([interp.path, "-m", "venv", str(target)], check=True)
        # pip warns once per package about the host's find-links dirs; keep its output for
        # failures only so the benchmark's report stays readable.
        done = subprocess.run(
            [str(target / "bin/python"), "-m", "pip", "install", "-q", "-r", str(reqs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit("pip install failed")

    try:
        print(
            f"packages: {' '.join(packages)} (+ kernel side), python {interp.version}, "
            f"repeat {args.repeat}, warm cache"
        )
        raw_uv()  # warm uv's cache so both sides measure installs, not downloads
        t_raw = timed(raw_uv, args.repeat)
        t_ours = timed(ours, args.repeat)
        print(f"raw uv venv + uv pip install : {t_raw:6.2f} s")
        print(f"jupyter-envs build           : {t_ours:6.2f} s")
        ratio = t_ours / t_raw
        print(
            f"ours / raw uv                : {ratio:6.2f}x  (target <= 1.3x) "
            f"{'OK' if ratio <= 1.3 else 'MISSED'}"
        )
        if not args.skip_pip:
            venv_pip()  # warm pip's cache too
            t_pip = timed(venv_pip, 1)
            speedup = t_pip / t_ours
            print(f"python -m venv + pip install : {t_pip:6.2f} s")
            print(
                f"venv+pip / ours              : {speedup:6.1f}x  (target >= 15x) "
                f"{'OK' if speedup >= 15 else 'MISSED'}"
            )
        t_cell = magic_hit_time(ws, packages)
        print(
            f"unchanged-spec %%env cell    : {t_cell * 1000:6.1f} ms (target <= 50 ms) "
            f"{'OK' if t_cell <= 0.05 else 'MISSED'}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def magic_hit_time(ws: Workspace, packages: list[str]) -> float:
    """Median time of a ``%%env`` cell whose spec is already built (in-process IPython)."""
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["JUPYTER_ENVS_STORE"] = str(ws.root)
    os.environ["JUPYTER_ENVS_KERNELS_DIR"] = str(ws.kernels_dir)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_envs")
    body = "\n".join(packages) + "\n"
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    real_stdout = sys.stdout
    try:
        sys.stdout = devnull
        shell.run_cell_magic("env", "bench", body)  # first call pays imports once
        return timed(lambda: shell.run_cell_magic("env", "bench", body), 20)
    finally:
        sys.stdout = real_stdout
        devnull.close()


if __name__ == "__main__":
    sys.exit(main())
