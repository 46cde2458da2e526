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
from pathlib import Path

from benchmarks._timing import alternate, ratio, spread, verdict
from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.builders import pipconfig
from jupyter_envs.engines.builders.pythons import select_interpreter
from jupyter_envs.engines.builders.uv import find_uv
from jupyter_envs.engines.runtime import KERNEL_SIDE_REQUIREMENTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pip-repeat", type=int, default=2, help="rounds of the slow pip side")
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
        # Warm uv's cache (so both sides measure installs, not downloads) and the store's
        # once-per-store work (the kernel-start bytecode), then alternate the sides.
        alternate({"raw": raw_uv, "ours": ours}, 1)
        times = alternate({"raw": raw_uv, "ours": ours}, args.repeat)
        print(f"raw uv venv + uv pip install : {spread(times['raw'])}")
        print(f"jupyter-envs build           : {spread(times['ours'])}")
        value, text = ratio(times["ours"], times["raw"])
        print(
            f"ours / raw uv                : {text}  (target <= 1.3x) {verdict(value, at_most=1.3)}"
        )
        if not args.skip_pip:
            venv_pip()  # warm pip's cache too
            slow = alternate({"pip": venv_pip, "ours": ours}, args.pip_repeat)
            print(f"python -m venv + pip install : {spread(slow['pip'])}")
            value, text = ratio(slow["pip"], slow["ours"])
            print(f"venv+pip / ours              : {text}  (target >= 15x) "
                  f"{verdict(value, at_least=15)}")  # fmt: skip
        cells = magic_hit_times(ws, packages)
        print(f"unchanged-spec %%env cell    : {spread(cells, 'ms', 1000)}  (target <= 50 ms) "
              f"{verdict(statistics.median(cells), at_most=0.05)}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def magic_hit_times(ws: Workspace, packages: list[str]) -> list[float]:
    """Times of a ``%%env`` cell whose spec is already built (in-process IPython)."""
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
        cell = {"cell": lambda: shell.run_cell_magic("env", "bench", body)}
        return alternate(cell, 20)["cell"]
    finally:
        sys.stdout = real_stdout
        devnull.close()


if __name__ == "__main__":
    sys.exit(main())
