"""Locks in the formats of other tools, made and read by uv itself.

- :func:`pylock` writes a PEP 751 ``pylock.toml`` of a lock (``uv pip compile --format
  pylock.toml`` of its exact pins: every file with its URL and sha256).
- :func:`script_lock` locks a PEP 723 block the way juv and ``uv lock --script`` do (the text
  juv keeps in a notebook's ``metadata["uv.lock"]``).
- :func:`requirements_of_script_lock` reads such a lock back as pinned requirement lines (with
  markers and hashes) that the uv builder installs exactly (``uv export --script --frozen``).
- :func:`add_hashes` gives each pin of a lock the sha256 of the files a ``pylock.toml`` lists
  for it (the uv builder records them: ``uv pip freeze`` has none).

Each runs uv in a temporary folder with the host's pip configuration, like the uv builder.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from ..errors import BackendUnavailableError, EnvsError
from ..spec._requirements import lock_pins
from ..spec._toml import tomllib
from .builders.uvtool import find_uv, uv_environment

__all__ = [
    "SOURCE_OPTIONS",
    "add_hashes",
    "pylock",
    "pylock_args",
    "requirements_of_script_lock",
    "script_lock",
]

#: Installer options that say where packages come from (what a lock's files are found through).
SOURCE_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "--no-index", "-i", "-f")

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


def pylock_args(
    lock: str,
    options: Iterable[str],
    python: str | None,
    folder: Path,
    *,
    offline: bool = False,
) -> list[str]:
    """The uv arguments that write the ``pylock.toml`` of ``lock``'s pins (through the
    ``options`` that say where packages come from) to ``folder/pylock.toml``. ``offline``: from
    uv's cache only (right after installing the pins it has every index page needed)."""
    pins = lock_pins(lock)
    sources = [o for o in options if o.split(" ", 1)[0] in SOURCE_OPTIONS]
    reqs = folder / "requirements.txt"
    reqs.write_text("\n".join([*sources, *pins]) + "\n")
    args = ["pip", "compile", str(reqs), "--format", "pylock.toml", "--no-header", "-q"]
    if python:
        args += ["--python-version", python]
    if offline:
        args.append("--offline")
    return [*args, "-o", str(folder / "pylock.toml")]


def pylock(lock: str, options: Iterable[str], python: str | None) -> str:
    """The PEP 751 ``pylock.toml`` of ``lock`` (pinned lines), found through ``options``."""
    with tempfile.TemporaryDirectory(prefix="jupyter-envs-pylock-") as tmp:
        _uv(pylock_args(lock, options, python, Path(tmp)), Path(tmp), "writing pylock.toml")
        return (Path(tmp) / "pylock.toml").read_text()


def add_hashes(lock: str, pylock_text: str) -> str:
    """``lock`` with ``--hash=sha256:...`` on each ``name==version`` line that has none, for
    every file (wheels for this platform, the sdist) ``pylock_text`` lists for that version."""
    data = tomllib.loads(pylock_text)
    known: dict[tuple[str, str], list[str]] = {}
    for pkg in data.get("packages", []):
        files = [pkg.get("sdist"), *(pkg.get("wheels") or [])]
        digests = sorted(
            f["hashes"]["sha256"]
            for f in files
            if isinstance(f, dict) and isinstance(f.get("hashes"), dict) and "sha256" in f["hashes"]
        )
        if digests and isinstance(pkg.get("version"), str):
            known[(canonicalize_name(pkg["name"]), pkg["version"])] = digests
    lines = []
    for line in lock.splitlines():
        name, sep, version = line.partition("==")
        found = known.get((canonicalize_name(name.strip()), version.strip())) if sep else None
        if found and "--hash" not in line and ";" not in line:
            line = line.strip() + "".join(f" --hash=sha256:{d}" for d in found)
        lines.append(line)
    return "\n".join(lines) + "\n"


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
