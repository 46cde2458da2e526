"""Bytecode for what a kernel imports at start, so an environment's kernel starts as fast as
the host's.

uv installs no ``.pyc`` files (compiling everything costs seconds a build), and some machines
set ``PYTHONDONTWRITEBYTECODE``: an environment's kernel then compiles the ~350 modules it
imports at start on *every* start (about half a second). Instead, every build gets exactly those
modules' bytecode, at almost no cost:

- the files a kernel imports are measured once per store and jupyter-envs version, by
  initialising an ``IPKernelApp`` in a subprocess of this interpreter
  (:func:`kernel_start_files`), while the build's ``uv pip install`` runs;
- each source file's bytecode is compiled once per store, as a *checked-hash* ``.pyc``
  (PEP 552) kept in ``<store>/bytecode/<cache tag>/`` under the hash of the source: such a file
  is valid for any identical source wherever it lives, and Python still checks the hash before
  using it, so an edited source is simply recompiled in memory;
- a build then hard-links the cached files into its site-packages' ``__pycache__`` (a copy
  when the store is on another filesystem). Only sources never seen before are compiled, by the
  environment's own interpreter (its bytecode format is the one that counts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..._version import __version__
from ...errors import BuildCancelledError, BuildError
from ...events import Event, LogLine, Progress
from ._process import run_streaming

if TYPE_CHECKING:
    from packaging.version import Version

    from .base import BuildRequest

__all__ = [
    "BytecodePlan",
    "Measuring",
    "compile_command",
    "kernel_bytecode",
    "kernel_start_files",
    "link_cached",
    "plan",
    "start_measuring",
]

# Run by this interpreter: initialise (not start) a kernel as an env kernel starts, with the
# magics loaded, and write the modules it imported. os._exit: no sockets or threads to tidy.
_MEASURE = r"""
import json, os, site, sys, tempfile
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
app.initialize(["-f", os.path.join(tempfile.mkdtemp(), "kernel.json"), "--ext=jupyter_envs"])
import jupyter_envs
# Paths relative to the innermost directory each file was installed under (site-packages, or
# the one holding jupyter_envs): modules such as debugpy's vendored pydevd are imported under
# other names than their place in site-packages, so names would not find them in an env.
roots = [*site.getsitepackages(), os.path.dirname(os.path.dirname(jupyter_envs.__file__))]
roots = sorted({os.path.realpath(r) + os.sep for r in roots}, key=len, reverse=True)
found = set()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if path.endswith(".py"):
        path = os.path.realpath(path)
        root = next((r for r in roots if path.startswith(r)), None)
        if root:
            found.add(path[len(root):])
with open(sys.argv[1], "w") as out:
    json.dump(sorted(found), out)
os._exit(0)
"""

# Run by the environment's interpreter on the sources the cache lacks: [[source, target], ...].
_COMPILE = r"""
import json, os, py_compile, sys
for source, target in json.load(open(sys.argv[1])):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        py_compile.compile(source, cfile=tmp, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except (py_compile.PyCompileError, OSError) as exc:  # left to import time, as without us
        print(f"not compiled: {source}: {str(exc).splitlines()[-1] if str(exc) else exc}")
        continue
    os.replace(tmp, target)
"""


def _modules_file(cache: Path) -> Path:
    return cache / f"kernel-start-files-{__version__}.json"


@dataclass(frozen=True)
class Measuring:
    """A measurement of the module list under way (see :func:`start_measuring`)."""

    proc: subprocess.Popen[bytes]
    output: Path

    def discard(self) -> None:
        """Stop it (if it still runs) and remove what it wrote: the build ended without it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.output.unlink()


def start_measuring(cache: Path) -> Measuring | None:
    """Start measuring the kernel-start module list in the background, unless it is known."""
    if _modules_file(cache).is_file():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".kernel-modules-", dir=cache)
    os.close(fd)
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return Measuring(proc, Path(name))


def kernel_start_files(cache: Path, measuring: Measuring | None) -> list[str]:
    """The source files a kernel imports at start, relative to their install root (empty if
    they could not be measured)."""
    target = _modules_file(cache)
    if measuring is not None:
        try:
            measuring.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            measuring.proc.kill()
            measuring.proc.wait()
        if measuring.proc.returncode == 0 and measuring.output.stat().st_size:
            os.replace(measuring.output, target)
        measuring.discard()
    try:
        names = json.loads(target.read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)]


@dataclass(frozen=True)
class BytecodePlan:
    """Which sources get which cached ``.pyc``; ``missing`` still has to be compiled."""

    links: list[tuple[Path, Path]]  # (cached .pyc, where it goes in a __pycache__)
    missing: list[tuple[Path, Path]]  # (source, cached .pyc to make)


def plan(files: list[str], roots: list[Path], cache: Path, cache_tag: str) -> BytecodePlan:
    """Match every file found under one of ``roots`` with its cached bytecode (by source hash).

    ``files`` are paths relative to an install root (``ipykernel/kernelapp.py``), as
    :func:`kernel_start_files` lists them.
    """
    links: list[tuple[Path, Path]] = []
    missing: list[tuple[Path, Path]] = []
    known = _known_digests(cache)
    learnt: dict[str, str] = {}
    for relative in files:
        source = next((r / relative for r in roots if (r / relative).is_file()), None)
        if source is None:
            continue  # not installed in this environment
        # uv hard-links installed files from its cache, so most sources are a file already
        # hashed by an earlier build: known by device, inode, size and mtime (~0.1 s a build).
        st = source.stat()
        key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        digest = known.get(key) or learnt.get(key)
        if digest is None:
            digest = learnt[key] = hashlib.sha256(source.read_bytes()).hexdigest()
        cached = cache / cache_tag / digest[:2] / f"{digest}.pyc"
        dest = source.parent / "__pycache__" / f"{source.stem}.{cache_tag}.pyc"
        links.append((cached, dest))
        if not cached.is_file():
            missing.append((source, cached))
    if learnt:
        _remember_digests(cache, {**known, **learnt})
    return BytecodePlan(links, missing)


_DIGESTS = "digests.json"
_MAX_DIGESTS = 50_000


def _known_digests(cache: Path) -> dict[str, str]:
    try:
        data = json.loads((cache / _DIGESTS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_digests(cache: Path, digests: dict[str, str]) -> None:
    """Best effort, atomic (concurrent builds may each lose the other's new entries: they are
    hashed again next time)."""
    if len(digests) > _MAX_DIGESTS:  # inodes of deleted files pile up: start over
        digests = dict(list(digests.items())[-_MAX_DIGESTS // 2 :])
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(digests, out)
        os.replace(tmp, cache / _DIGESTS)


def compile_command(python: str, missing: list[tuple[Path, Path]], workdir: Path) -> list[str]:
    """The command that compiles ``missing`` with the environment's interpreter."""
    jobs = workdir / "jupyter-envs-compile.json"
    jobs.write_text(json.dumps([[str(s), str(t)] for s, t in missing]))
    return [python, "-c", _COMPILE, str(jobs)]


def link_cached(links: list[tuple[Path, Path]]) -> int:
    """Put each cached ``.pyc`` where its source's interpreter looks; how many were placed."""
    placed = 0
    for cached, dest in links:
        if not cached.is_file() or dest.exists():
            continue
        dest.parent.mkdir(exist_ok=True)
        try:
            os.link(cached, dest)
        except OSError:  # another filesystem, or no hard links here
            tmp = Path(tempfile.mkstemp(dir=dest.parent, suffix=".tmp")[1])
            shutil.copyfile(cached, tmp)
            os.replace(tmp, dest)
        placed += 1
    return placed


def kernel_bytecode(
    request: BuildRequest,
    python: str,
    site: Path,
    version: Version,
    measuring: Measuring | None,
    fraction: float = 0.9,
) -> Generator[Event, None, None]:
    """A build's step: bytecode for what the kernel imports at start, from ``site`` and the
    runtime copy of jupyter_envs (compiled by ``python`` where the store's cache lacks it)."""
    yield Progress("bytecode", fraction, "bytecode for the kernel's start")
    cache = request.cache_dir / "bytecode"
    files = kernel_start_files(cache, measuring)
    if not files:
        yield LogLine("Kernel start modules could not be measured: no bytecode prepared")
        return
    tag = f"cpython-{version.major}{version.minor}"
    found = plan(files, [site, request.runtime_dir], cache, tag)
    if found.missing:
        command = compile_command(python, found.missing, request.staging)
        try:
            yield from run_streaming(
                command,
                env=dict(os.environ),
                cancel=request.cancel,
                what="compiling the kernel's start modules",
                env_name=request.env.name,
            )
        except BuildCancelledError:
            raise
        except BuildError as exc:  # bytecode only speeds kernels up: never fail a build on it
            yield LogLine(f"Bytecode for kernel start not prepared: {exc.message}")
        finally:
            Path(command[-1]).unlink(missing_ok=True)
    placed = link_cached(found.links)
    yield LogLine(
        f"Bytecode for kernel start: {len(found.links)} files ({len(found.missing)} compiled "
        f"now, {placed} placed)"
    )
