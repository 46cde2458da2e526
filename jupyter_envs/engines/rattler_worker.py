"""Solve and install a conda environment with py-rattler, in a process of its own.

Run by the conda builder as ``python <this file> JOB.json``, or started ahead of need as
``python <this file>``, which imports rattler and then reads the job file's path from stdin
(no package import either way: it needs only rattler and the standard library).
A process, not a thread: cancelling a build kills its process group, so nothing is written into
the staging prefix after the build has given up on it (rattler's Rust tasks do not stop when a
Python coroutine is cancelled).

Output protocol (one line each, on stdout): plain log lines; progress as
``PROGRESS_MARK {"phase": …, "fraction": …, "message": …}``; on failure a last ``error: …`` block
(what ``summarize_failure`` reads). The solved records go to the job's ``result`` file as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["PROGRESS_MARK", "main"]

PROGRESS_MARK = "\x1ejupyter-envs-progress"
# Phases of the whole build this worker covers (the builder does pip, kernel and lock after).
_SOLVE, _DOWNLOAD, _LINK, _DONE = 0.05, 0.15, 0.5, 0.7
_MAX_EXPLANATION_LINES = 25


def _say(text: str) -> None:
    print(text, flush=True)


def _progress(phase: str, fraction: float, message: str = "") -> None:
    payload = {"phase": phase, "fraction": round(fraction, 4), "message": message}
    _say(f"{PROGRESS_MARK} {json.dumps(payload)}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class _Reporter:
    """rattler's install callbacks as log lines and progress (downloads with their bytes)."""

    def __init__(self, total_ops: int, fetching: set[str]) -> None:
        self.total_ops = max(total_ops, 1)
        self.fetching = fetching
        self.names: dict[int, str] = {}
        self.downloads: dict[int, tuple[int, int | None]] = {}
        self.linked = 0
        self.last = 0.0

    def on_transaction_start(self, total_operations: int) -> None:
        self.total_ops = max(total_operations, 1)

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        self.names[operation] = package_name
        return operation

    def on_populate_cache_complete(self, cache_entry: int) -> None:
        name = self.names.get(cache_entry, "")
        if name in self.fetching:  # (a local channel's files are copied without "downloads")
            _say(f"Fetched {name}")

    def on_download_start(self, cache_entry: int) -> int:
        _say(f"Downloading {self.names.get(cache_entry, 'a package')}")
        self.downloads[cache_entry] = (0, None)
        return cache_entry

    def on_download_progress(self, download_idx: int, progress: int, total: int | None) -> None:
        self.downloads[download_idx] = (progress, total)
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        done = sum(p for p, _ in self.downloads.values())
        known = [t for _, t in self.downloads.values() if t]
        total_bytes = sum(known) if len(known) == len(self.downloads) else None
        share = done / total_bytes if total_bytes else 0.0
        message = f"{_size(done)}" + (f" of {_size(total_bytes)}" if total_bytes else "")
        _progress("download", _DOWNLOAD + (_LINK - _DOWNLOAD) * share, message)

    def on_download_completed(self, download_idx: int) -> None:
        progress, total = self.downloads.get(download_idx, (0, None))
        name = self.names.get(download_idx, "a package")
        _say(f"Downloaded {name} ({_size(total or progress)})")

    def on_link_start(self, operation: int, package_name: str) -> int:
        return operation

    def on_link_complete(self, index: int) -> None:
        self.linked += 1
        name = self.names.get(index, "")
        _progress(
            "link",
            _LINK + (_DONE - _LINK) * self.linked / self.total_ops,
            f"linked {self.linked} of {self.total_ops}" + (f" ({name})" if name else ""),
        )

    def __getattr__(self, name: str) -> Any:
        # Every other callback of rattler's InstallerReporter: nothing to report.
        if name.startswith("on_"):
            return lambda *args, **kwargs: 0
        raise AttributeError(name)


def _fail(message: str) -> NoReturn:
    """End the worker with a failure explained for a person (the build's error message)."""
    _say(f"error: {message}")
    sys.stdout.flush()
    os._exit(1)


def _trim(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) > _MAX_EXPLANATION_LINES:
        cut = len(lines) - _MAX_EXPLANATION_LINES
        lines = [*lines[:_MAX_EXPLANATION_LINES], f"… ({cut} more lines in the build log)"]
    return "\n".join(lines)


def _channel_of(message: str, names: dict[str, str]) -> str | None:
    """The channel (as the spec wrote it) that a rattler error message is about."""
    for url, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if url.rstrip("/") in message:
            return name
    return None


async def _missing_elsewhere(gateway: Any, sources: list[str], name: str, here: str) -> list[str]:
    """The platforms other than ``here`` whose subdirs of the channels have ``name``."""
    others = ["linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64"]
    found = []
    for platform in (p for p in others if p != here):
        try:
            result = await gateway.query(sources, [platform], [name], recursive=False)
        except Exception as exc:  # an absent subdir: not there
            _say(f"({platform}: {str(exc).splitlines()[0] if str(exc) else 'not found'})")
            continue
        if any(len(records) for records in result):
            found.append(platform)
    return found


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    import rattler
    from rattler import exceptions as rx

    cache = Path(job["cache_dir"])
    names: dict[str, str] = job.get("channel_names", {})
    sources: list[str] = job["sources"]
    subdir = rattler.Subdir.current()
    platform = str(subdir)
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    _progress("solve", _SOLVE, "solving the conda packages")
    shown = ", ".join(names.get(s, s) for s in sources)
    _say(f"Solving {len(job['specs'])} conda specs for {platform} from {shown}")
    started = time.perf_counter()
    try:
        records = await rattler.solve(
            sources,
            # Parsed here, as the spec layer validated them (a string would be parsed strictly,
            # which refuses conda's own "name=version=build" form).
            [rattler.MatchSpec(s) for s in job["specs"]],
            gateway=gateway,
            platforms=[subdir, "noarch"],
            virtual_packages=rattler.VirtualPackage.detect(),
            constraints=[rattler.MatchSpec(c) for c in job.get("constraints", [])] or None,
            channel_relations="disabled",
        )
    except rx.GatewayError as exc:
        text = str(exc)
        channel = _channel_of(text, names)
        where = f"the channel '{channel}'" if channel else "a channel"
        _fail(f"{where} could not be read:\n{_trim(text)}")
    except rx.SolverError as exc:
        text = str(exc)
        missing = _no_candidates(text)
        for name in missing:
            elsewhere = await _missing_elsewhere(gateway, sources, name, platform)
            if elsewhere:
                _fail(
                    f"the conda package '{name}' is not available for {platform} in "
                    f"{shown} (only for {', '.join(elsewhere)})"
                )
        _fail(f"the conda packages cannot be installed together:\n{_trim(text)}")
    _say(f"Solved {len(records)} packages in {time.perf_counter() - started:.2f} s:")
    for record in sorted(records, key=lambda r: r.name.normalized):
        channel = names.get(str(record.channel), str(record.channel))
        _say(f"  {record.name.normalized} {record.version} {record.build} ({channel})")
    python = [r for r in records if r.name.normalized == "python"]
    if not python:
        _fail(
            "the solved environment has no Python, so no kernel can run in it: add python "
            f"(>={job['min_python']}) to the dependencies, from a channel that has it"
        )
    # The shared cache keeps one folder per package file: what is there links without a fetch.
    stem = re.compile(r"\.(tar\.bz2|conda)$")
    cached = {r.file_name for r in records if (cache / "pkgs" / stem.sub("", r.file_name)).is_dir()}
    fetch = [r for r in records if r.file_name not in cached]
    size = sum(r.size or 0 for r in fetch)
    _say(
        f"Fetching {len(fetch)} packages ({_size(size)}) into the shared cache; "
        f"{len(cached)} already there"
    )
    _progress("download", _DOWNLOAD, f"fetching {len(fetch)} packages ({_size(size)})")
    reporter = _Reporter(len(records), {r.name.normalized for r in fetch})
    try:
        await rattler.install(
            records,
            target_prefix=job["target"],
            cache_dir=cache / "pkgs",
            alternative_target_prefix=job.get("final") or None,
            reporter=reporter,
            show_progress=False,
        )
    except Exception as exc:  # rattler's install errors have no common base class
        _fail(f"installing the conda packages failed:\n{_trim(str(exc))}")
    _progress("link", _DONE, f"installed {len(records)} conda packages")
    return {
        "platform": platform,
        "python": str(python[0].version),
        "records": [
            {
                "url": str(r.url),
                "sha256": r.sha256.hex() if r.sha256 else "",
                "name": r.name.normalized,
            }
            for r in records
        ],
    }


def _no_candidates(text: str) -> list[str]:
    """The package names of the solver's "No candidates were found for X" lines."""
    return re.findall(r"No candidates were found for ([A-Za-z0-9_.\-]+)", text)


def main(argv: list[str] | None = None) -> int:
    """Run the job file named on the command line, or else on the first line of stdin (a
    spare worker: rattler is imported before it waits); 0 on success, 1 with an ``error:``
    block."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        path = args[0]
    else:
        import rattler  # noqa: F401 - the point of a spare: imported before its job arrives

        path = sys.stdin.readline().strip()
        if not path:
            return 0  # its build went away before giving it a job
    job = json.loads(Path(path).read_text())
    try:
        result = asyncio.run(_run(job))
    except Exception as exc:  # anything rattler raised that _run did not explain
        _say(f"error: {type(exc).__name__}: {_trim(str(exc))}")
        return 1
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # No interpreter teardown: rattler's runtime threads can still be winding down then, and a
    # crash at exit (seen now and then) would turn a finished build into a failed one.
    os._exit(code)
