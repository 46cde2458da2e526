"""Locks in the formats of other tools, made and read by uv itself.

- :func:`pylock` writes a PEP 751 ``pylock.toml`` of a lock (``uv pip compile --format
  pylock.toml`` of its exact pins: every file with its URL and sha256).
- :func:`script_lock` locks a PEP 723 block the way juv and ``uv lock --script`` do (the text
  juv keeps in a notebook's ``metadata["uv.lock"]``).
- :func:`requirements_of_script_lock` reads such a lock back as pinned requirement lines (with
  markers and hashes) that the uv builder installs exactly (``uv export --script --frozen``).

Each runs uv in a temporary folder with the host's pip configuration, like the uv builder.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import BackendUnavailableError, EnvsError
from .builders.uv import find_uv, uv_environment

__all__ = ["pylock", "requirements_of_script_lock", "script_lock"]

_TIMEOUT = 300


def _uv(args: Sequence[str], cwd: Path, what: str) -> str:
    uv = find_uv()
    if uv is None:
        raise BackendUnavailableError("venv", f"uv is not installed (needed {what})")
    env, _ = uv_environment()
    try:
        done = subprocess.run(
            [uv, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EnvsError(f"uv took over {_TIMEOUT} s {what}") from None
    if done.returncode != 0:
        said = "\n".join(ln for ln in done.stderr.splitlines() if ln.strip())[-2000:]
        raise EnvsError(f"uv failed {what}:\n{said}")
    return done.stdout


def pylock(lock: str, options: Iterable[str], python: str | None) -> str:
    """The PEP 751 ``pylock.toml`` of ``lock`` (pinned lines), found through ``options``."""
    pins = [ln.strip() for ln in lock.splitlines() if ln.strip() and not ln.startswith("-e ")]
    with tempfile.TemporaryDirectory(prefix="jupyter-envs-pylock-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join([*options, *pins]) + "\n")
        args = ["pip", "compile", str(reqs), "--format", "pylock.toml", "--no-header", "-q"]
        if python:
            args += ["--python-version", python]
        return _uv(args, Path(tmp), "writing pylock.toml")


def script_lock(block: str) -> str:
    """``uv lock --script`` of a script holding only ``block``: the lock text juv keeps."""
    with tempfile.TemporaryDirectory(prefix="jupyter-envs-script-") as tmp:
        script = Path(tmp) / "notebook.py"
        script.write_text(block)
        _uv(["lock", "--script", str(script), "-q"], Path(tmp), "locking the script block")
        return (Path(tmp) / "notebook.py.lock").read_text()


def requirements_of_script_lock(block: str, lock: str) -> str:
    """The pinned requirements (one line each: name==version ; marker --hash=...) that
    ``lock`` (``uv lock --script`` of ``block``) holds, as uv exports them."""
    with tempfile.TemporaryDirectory(prefix="jupyter-envs-script-") as tmp:
        script = Path(tmp) / "notebook.py"
        script.write_text(block)
        (Path(tmp) / "notebook.py.lock").write_text(lock)
        out = _uv(
            ["export", "--script", str(script), "--frozen", "--no-header", "--no-annotate", "-q"],
            Path(tmp),
            "reading the notebook's uv.lock",
        )
    # uv writes one requirement over several lines ("\" continuations), hashes below it.
    joined = out.replace("\\\n", " ")
    lines = [" ".join(ln.split()) for ln in joined.splitlines()]
    return "\n".join(ln for ln in lines if ln and not ln.startswith("#")) + "\n"
