"""Finding the Python interpreters on this machine.

uv could download interpreters, but builds must work where only package registries are
reachable, so environments are made from interpreters already present. Candidates come from
``PATH``, pyenv's versions, the usual system locations and ``JUPYTER_ENVS_PYTHONS`` (a
``os.pathsep``-separated list of executables); each is asked for its own version once per process.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ...errors import PythonNotFoundError, SpecError

__all__ = ["Interpreter", "find_interpreters", "select_interpreter"]

# ipykernel needs 3.9 or newer; older interpreters are listed in errors but never chosen.
MIN_VERSION = Version("3.9")
_EXE = re.compile(r"^python3(\.[0-9]+)?$")


@dataclass(frozen=True)
class Interpreter:
    """An interpreter found on the machine."""

    path: str
    version: Version

    @property
    def short_version(self) -> str:
        """``"3.11"`` for 3.11.7."""
        return f"{self.version.major}.{self.version.minor}"


def _candidates() -> list[str]:
    found: list[str] = [sys.executable]
    for entry in os.environ.get("JUPYTER_ENVS_PYTHONS", "").split(os.pathsep):
        if entry:
            found.append(entry)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        # pyenv shims only work for the globally selected version; the real binaries are
        # found under ~/.pyenv/versions below.
        if not directory or directory.endswith("/shims"):
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        found.extend(os.path.join(directory, n) for n in names if _EXE.match(n))
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found.extend(sorted(glob.glob(os.path.join(pyenv_root, "versions", "*", "bin", "python3"))))
    for pattern in ("/usr/bin/python3.*", "/usr/local/bin/python3.*", "/opt/*/bin/python3"):
        found.extend(p for p in sorted(glob.glob(pattern)) if _EXE.match(os.path.basename(p)))
    unique: dict[str, str] = {}
    for cand in found:
        if not os.path.isfile(cand) or not os.access(cand, os.X_OK):
            continue
        unique.setdefault(os.path.realpath(cand), cand)
    return list(unique.values())


def _probe(path: str) -> Interpreter | None:
    try:
        out = subprocess.run(
            [path, "-I", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return Interpreter(path, Version(out))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@lru_cache(maxsize=1)
def find_interpreters() -> tuple[Interpreter, ...]:
    """Every working interpreter found, newest first (probed once per process)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for r in pool.map(_probe, _candidates()) if r is not None]
    by_version: dict[Version, Interpreter] = {}
    for interp in results:
        by_version.setdefault(interp.version, interp)
    return tuple(sorted(by_version.values(), key=lambda i: i.version, reverse=True))


def _as_specifier(request: str) -> SpecifierSet:
    text = request.strip()
    if re.match(r"^[0-9]", text):
        parts = text.split(".")
        text = f"=={text}" if len(parts) >= 3 else f"=={text}.*"
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise SpecError(f"invalid Python version {request!r}", field="python") from None


def select_interpreter(request: str | None) -> Interpreter:
    """The newest usable interpreter matching ``request``.

    ``None`` means "the same minor version as the Python running jupyter-envs".
    """
    if request is None:
        request = f"{sys.version_info.major}.{sys.version_info.minor}"
    spec = _as_specifier(request)
    found = find_interpreters()
    for interp in found:
        if interp.version >= MIN_VERSION and spec.contains(interp.version, prereleases=True):
            return interp
    # Older interpreters are listed too: "3.8 found but too old" is useful to read.
    listing = [f"{i.version} ({i.path})" for i in found]
    raise PythonNotFoundError(request, listing)


def python_site_packages(prefix: Path, interp: Interpreter) -> Path:
    """The site-packages directory of a POSIX venv made with ``interp``."""
    return prefix / "lib" / f"python{interp.short_version}" / "site-packages"
