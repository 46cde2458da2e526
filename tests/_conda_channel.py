"""Conda packages and channels made by the tests (no public conda channel is reachable here).

``package`` writes a ``.tar.bz2`` conda package from a dict of files; ``python_package`` wraps
the Python that runs the tests (interpreter, ``libpython`` and standard library) into a real
``python`` package whose interpreter runs from any prefix; ``index`` writes ``repodata.json``
with rattler's own indexer. ``make_channel`` makes the channel the conda tests and the benchmark
use, cached per interpreter so a session packs Python once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["index", "make_channel", "package", "pip_package", "python_package"]

# What a kernel never needs from the standard library: left out to keep the package small.
_STDLIB_SKIP = {
    "test",
    "site-packages",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def package(
    channel: Path,
    name: str,
    version: str,
    *,
    build: str = "0",
    subdir: str = "noarch",
    files: Mapping[str, bytes | Path] | None = None,
    links: Mapping[str, str] | None = None,
    depends: Iterable[str] = (),
    extra_index: Mapping[str, object] | None = None,
    compresslevel: int = 9,
) -> Path:
    """Write ``<channel>/<subdir>/<name>-<version>-<build>.tar.bz2`` and return its path.

    ``files`` maps a path in the prefix to its bytes or to a file to copy; ``links`` maps a path
    to a symlink target. Executables keep their mode.
    """
    files = dict(files or {})
    links = dict(links or {})
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    index_json: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": int(time.time() * 1000),
        "license": "test",
    }
    if subdir == "noarch":
        index_json["noarch"] = "generic"
    index_json.update(extra_index or {})
    paths = []
    target = folder / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(target, "w:bz2", compresslevel=compresslevel) as tar:
        for path, content in sorted(files.items()):
            mtime = 0
            if isinstance(content, Path):
                data = content.read_bytes()
                mode = 0o755 if os.access(content, os.X_OK) else 0o644
                # Kept: the standard library's .pyc files are checked against their sources'.
                mtime = int(content.stat().st_mtime)
            else:
                data, mode = content, 0o755 if path.startswith("bin/") else 0o644
            _add(tar, path, data, mode, mtime)
            paths.append(
                {
                    "_path": path,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size_in_bytes": len(data),
                }
            )
        for path, link in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = link
            tar.addfile(info)
            paths.append({"_path": path, "path_type": "softlink"})
        _add(tar, "info/index.json", json.dumps(index_json, indent=1).encode())
        _add(tar, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(
            tar, "info/files", "".join(f"{p}\n" for p in [*sorted(files), *sorted(links)]).encode()
        )
    return target


def _relocatable_interpreter(executable: Path, libdir: str) -> bytes:
    """The interpreter's bytes with its RUNPATH pointing at ``$ORIGIN/../lib``.

    pyenv-style builds link ``libpython`` through an absolute RUNPATH; rewriting it in place
    (the new string is shorter, padded with NULs) makes the copy load the packaged library.
    """
    data = executable.read_bytes()
    old = libdir.encode() + b"\0"
    new = b"$ORIGIN/../lib"
    if old in data and len(new) < len(old):
        data = data.replace(old, new + b"\0" * (len(old) - len(new)), 1)
    return data


def python_package(channel: Path, *, build: str = "jenvs_0") -> Path:
    """Package the Python running the tests as conda's ``python`` (``linux-64`` subdir).

    A real interpreter: ``bin/python3.X`` with ``libpython`` beside it and the standard library,
    so ``sys.prefix`` of a kernel started from an environment is that environment's prefix.
    """
    base = Path(sys.base_prefix)
    short = f"{sys.version_info.major}.{sys.version_info.minor}"
    version = ".".join(str(v) for v in sys.version_info[:3])
    libdir = str(sysconfig.get_config_var("LIBDIR") or base / "lib")
    files: dict[str, bytes | Path] = {}
    exe = base / "bin" / f"python{short}"
    files[f"bin/python{short}"] = _relocatable_interpreter(exe.resolve(), libdir)
    library = sysconfig.get_config_var("INSTSONAME")
    if library and (Path(libdir) / library).exists():
        files[f"lib/{library}"] = Path(libdir) / library
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    plain_pyc = f".{sys.implementation.cache_tag}.pyc"
    for path in sorted(stdlib.rglob("*")):
        rel = path.relative_to(stdlib)
        if rel.parts[0] in _STDLIB_SKIP or rel.parts[0].startswith("config-"):
            continue
        # Bytecode as a real python package ships it (not the -O variants).
        if "__pycache__" in rel.parts and not path.name.endswith(plain_pyc):
            continue
        if path.is_file() and not path.is_symlink():
            files[f"lib/python{short}/{rel.as_posix()}"] = path
    files[f"lib/python{short}/site-packages/README.txt"] = b"Third-party packages go here.\n"
    links = {"bin/python": f"python{short}", "bin/python3": f"python{short}"}
    # Tar with a low level: the standard library is most of the bytes, and packing speed matters
    # more than size for a channel made per test session.
    return package(
        channel,
        "python",
        version,
        build=build,
        subdir="linux-64",
        files=files,
        links=links,
        extra_index={"arch": "x86_64", "platform": "linux"},
        compresslevel=1,
    )


def pip_package(channel: Path) -> Path:
    """The ``pip`` that runs the tests, as conda's ``pip`` package (for ``- pip`` lines)."""
    from importlib.metadata import distribution

    dist = distribution("pip")
    short = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(str(dist.locate_file("")))
    files: dict[str, bytes | Path] = {}
    for entry in dist.files or ():
        path = site / entry
        if entry.parts[0].startswith("..") or "__pycache__" in entry.parts or not path.is_file():
            continue
        content: bytes | Path = b"conda\n" if entry.name == "INSTALLER" else path
        files[f"lib/python{short}/site-packages/{entry.as_posix()}"] = content
    return package(
        channel,
        "pip",
        dist.version,
        subdir="linux-64",
        files=files,
        depends=[f"python {short}.*"],
    )


def index(channel: Path) -> None:
    """Write the channel's ``repodata.json`` files with rattler's indexer."""
    import rattler.index

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    (channel / "linux-64").mkdir(parents=True, exist_ok=True)
    # A thread of its own: a fixture may be made while a test's event loop runs (Playwright's
    # sync API keeps one running), where asyncio.run refuses to start another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            asyncio.run,
            rattler.index.index_fs(channel, write_zst=False, write_shards=False, force=True),
        ).result()


def make_channel(root: Path) -> Path:
    """The conda tests' channel: ``python`` (this interpreter), and small generic packages.

    - ``jenvs-hello`` 1.0 and 2.0 (``share/jenvs-hello/VERSION``), noarch;
    - ``jenvs-tool`` 1.0 (``bin/jenvs-tool``, needs ``jenvs-hello <2``), linux-64;
    - ``jenvs-data`` 1.0 with builds ``a_0`` and ``b_0``, noarch;
    - ``jenvs-needs-py2`` 1.0, which needs ``python <3`` (an unsatisfiable combination);
    - ``jenvs-mac-only`` 1.0, for osx-arm64 only;
    - ``pip``: this interpreter's pip.

    Made once per interpreter under ``root`` and reused (the python package takes seconds).
    """
    version = ".".join(str(v) for v in sys.version_info[:3])
    channel = root / f"conda-channel-py{version}"
    marker = channel / ".complete"
    if marker.exists():
        return channel
    shutil.rmtree(channel, ignore_errors=True)
    python_package(channel)
    pip_package(channel)
    for v in ("1.0", "2.0"):
        package(channel, "jenvs-hello", v, files={"share/jenvs-hello/VERSION": f"{v}\n".encode()})
    package(
        channel,
        "jenvs-tool",
        "1.0",
        subdir="linux-64",
        files={"bin/jenvs-tool": b"#!/bin/sh\necho jenvs-tool 1.0\n"},
        depends=["jenvs-hello <2"],
    )
    for build in ("a_0", "b_0"):
        package(
            channel,
            "jenvs-data",
            "1.0",
            build=build,
            files={"share/jenvs-data/BUILD": f"{build}\n".encode()},
        )
    package(channel, "jenvs-needs-py2", "1.0", depends=["python <3"])
    package(channel, "jenvs-mac-only", "1.0", subdir="osx-arm64", files={"share/mac": b"mac\n"})
    index(channel)
    marker.write_text("")
    return channel
