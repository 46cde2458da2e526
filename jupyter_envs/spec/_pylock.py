"""PEP 751 lock files (``pylock.toml``) read as what an environment installs: every package
pinned (``Environment.from_text`` makes the environment).

``jupyter envs create -f pylock.toml NAME`` builds one. Each ``[[packages]]`` entry becomes a
requirement pinned to its version (with its marker, and the sha256 hashes of its wheels and
sdist, so the installer checks what it downloads); a package from a VCS, a URL archive or a
directory becomes a direct reference. A package index other than PyPI, when it is the only one
the packages name, becomes the environment's index; the folders of files the lock found on this
machine (``file://`` URLs: a find-links folder) become find-links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from ._toml import tomllib

__all__ = ["LockedPackages", "looks_like_pylock", "read_pylock"]

PYPI = "https://pypi.org/simple"


def looks_like_pylock(text: str) -> bool:
    """True when ``text`` is TOML with a ``lock-version`` and ``[[packages]]``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return "lock-version" in data and isinstance(data.get("packages"), list)


@dataclass(frozen=True)
class LockedPackages:
    """What a lock file installs, as an environment's requirements, options and Python."""

    requirements: tuple[str, ...]
    options: tuple[str, ...]
    python: str | None


def read_pylock(text: str, source: str = "pylock.toml") -> LockedPackages:
    """Exactly what the lock file lists; a SpecError names the entry at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source} is not valid TOML: {exc}", field="pylock") from None
    version = data.get("lock-version")
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise SpecError(
            f"{source}: lock-version {version!r} is not one this version reads (1.x)",
            field="pylock.lock-version",
        )
    packages = data.get("packages")
    if not isinstance(packages, list) or not packages:
        raise SpecError(f"{source} lists no [[packages]]", field="pylock.packages")
    requirements = [_requirement(pkg, i, source) for i, pkg in enumerate(packages)]
    indexes = {pkg["index"] for pkg in packages if isinstance(pkg, dict) and pkg.get("index")}
    options = []
    if len(indexes) == 1 and (index := indexes.pop()) and index.rstrip("/") != PYPI:
        options.append(f"--index-url {index}")
    # Files of a local folder (a find-links folder when the lock was made): look there again.
    for folder in _local_folders(packages):
        options.append(f"--find-links {folder}")
    requires = data.get("requires-python")
    return LockedPackages(
        requirements=tuple(requirements),
        options=tuple(options),
        python=_python_of(requires) if isinstance(requires, str) else None,
    )


def _python_of(requires: str) -> str:
    """The Python to build with: a lock made for one Python (``uv pip compile
    --python-version 3.11`` writes ``>=3.11``) holds the wheels of that one, so a bare lower
    bound means that version, not the newest above it (whose wheels have other hashes)."""
    match = re.fullmatch(r">=\s*(\d+\.\d+)(\.\d+)?", requires.strip())
    return match.group(1) if match else requires


def _requirement(pkg: Any, index: int, source: str) -> str:
    field = f"pylock.packages[{index}]"
    if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
        raise SpecError(f"{source}: each package needs a 'name'", field=field)
    name = pkg["name"]
    marker = pkg.get("marker")
    suffix = f" ; {marker}" if isinstance(marker, str) and marker else ""
    vcs, archive, directory = pkg.get("vcs"), pkg.get("archive"), pkg.get("directory")
    if isinstance(vcs, dict):
        url, commit = vcs.get("url"), vcs.get("commit-id")
        kind = vcs.get("type", "git")
        if not isinstance(url, str) or not isinstance(commit, str):
            raise SpecError(f"{source}: {name}'s vcs needs 'url' and 'commit-id'", field=field)
        return f"{name} @ {kind}+{url}@{commit}{suffix}"
    if isinstance(archive, dict) and isinstance(archive.get("url"), str):
        return f"{name} @ {archive['url']}{suffix}{_hashes([archive])}"
    if isinstance(directory, dict) and isinstance(directory.get("path"), str):
        return f"{name} @ file://{directory['path']}{suffix}"
    version = pkg.get("version")
    if not isinstance(version, str):
        raise SpecError(
            f"{source}: {name} has no 'version' (and no vcs, archive or directory source)",
            field=f"{field}.version",
        )
    files = [pkg.get("sdist"), *(pkg.get("wheels") or [])]
    return f"{name}=={version}{suffix}{_hashes(files)}"


def _local_folders(packages: list[Any]) -> list[str]:
    folders: dict[str, None] = {}
    for pkg in packages:
        if not isinstance(pkg, dict) or pkg.get("index"):
            continue
        for f in [pkg.get("sdist"), *(pkg.get("wheels") or [])]:
            url = f.get("url") if isinstance(f, dict) else None
            if isinstance(url, str) and url.startswith("file://"):
                folders[url.removeprefix("file://").rsplit("/", 1)[0]] = None
    return list(folders)


def _hashes(files: list[Any]) -> str:
    found = [
        f" --hash=sha256:{f['hashes']['sha256']}"
        for f in files
        if isinstance(f, dict)
        and isinstance(f.get("hashes"), dict)
        and isinstance(f["hashes"].get("sha256"), str)
    ]
    return "".join(found)
