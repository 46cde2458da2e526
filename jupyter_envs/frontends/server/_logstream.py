"""Following a build: its log lines, progress and end, as Server-Sent Events.

Log lines are read from the build's log file as it grows, starting after a given number of lines,
so a client that reconnects resumes where it stopped and nothing keeps a whole log in memory.
The job only says *that* something changed; the file says what.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._builds import BuildJob

__all__ = ["LogReader", "StreamEvent", "follow"]

# Bytes read from the log per step: bounds memory whatever the size of the log.
CHUNK = 64 * 1024


@dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event; ``event is None`` is a keep-alive comment."""

    event: str | None
    data: dict[str, Any] | None = None
    id: int | None = None

    def encode(self) -> bytes:
        """The event in ``text/event-stream`` framing."""
        if self.event is None:
            return b": keep-alive\n\n"
        head = f"id: {self.id}\n" if self.id is not None else ""
        # One JSON document per event: always a single ``data:`` line, whatever the log says.
        body = json.dumps(self.data, ensure_ascii=False)
        return f"{head}event: {self.event}\ndata: {body}\n\n".encode()


class LogReader:
    """Complete lines appended to a file, numbered from 1, skipping the first ``skip`` lines.

    Synchronous (called in a worker thread). A line still being written (no newline yet) is held
    back until it is complete, or until :meth:`read` is told the file is final.
    """

    def __init__(self, path: Path, skip: int = 0) -> None:
        self.path = path
        self.skip = skip
        self.lines = 0  # complete lines seen so far, skipped ones included
        #: False when the last :meth:`read` stopped short of the end of the file.
        self.at_end = True
        self._pos = 0
        self._partial = b""

    def read(self, final: bool = False) -> list[tuple[int, str]]:
        """New lines as ``(number, text)``; at most about :data:`CHUNK` bytes per call."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._pos)
                chunk = handle.read(CHUNK)
        except FileNotFoundError:
            chunk = b""  # removed with its environment, or not written yet
        self._pos += len(chunk)
        self.at_end = len(chunk) < CHUNK
        parts = (self._partial + chunk).split(b"\n")
        self._partial = parts.pop()
        if final and self.at_end and self._partial:
            parts.append(self._partial)
            self._partial = b""
        out: list[tuple[int, str]] = []
        for raw in parts:
            self.lines += 1
            if self.lines > self.skip:
                out.append((self.lines, raw.decode("utf-8", "replace").rstrip("\r")))
        return out


async def follow(
    job: BuildJob, offset: int = 0, keepalive: float = 15.0
) -> AsyncGenerator[StreamEvent, None]:
    """Events of ``job`` from log line ``offset`` on, live, ending with a ``done`` event.

    Event types: ``status`` (the build as JSON, when its status changes), ``notice`` (a line
    printed before the log file existed; not replayable), ``log`` (``{"line", "text"}``, with
    ``id`` = the line number, i.e. the ``offset`` to resume from), ``progress`` and ``done``
    (the build as JSON). ``StreamEvent(None)`` is yielded after ``keepalive`` quiet seconds.
    """
    reader: LogReader | None = None
    sent_status: str | None = None
    sent_progress: object = None
    sent_notices = 0
    while True:
        # Take the change future before reading anything: a change after the reads wakes us.
        changed = job.changed()
        # Read before draining: once the job is done its log file is complete, so the drain
        # below is the last one and nothing written before the end can be missed.
        done = job.done
        if job.status != sent_status and not done:
            sent_status = job.status
            yield StreamEvent("status", job.to_json())
        while sent_notices < len(job.notices):
            yield StreamEvent("notice", {"text": job.notices[sent_notices]})
            sent_notices += 1
        if reader is None and job.log_path is not None:
            reader = LogReader(job.log_path, skip=offset)
        if reader is not None:
            while True:
                for number, text in await asyncio.to_thread(reader.read, done):
                    yield StreamEvent("log", {"line": number, "text": text}, id=number)
                if reader.at_end:
                    break
        if job.progress is not None and job.progress != sent_progress:
            sent_progress = job.progress
            yield StreamEvent("progress", job.to_json()["progress"])
        if done:
            yield StreamEvent("done", job.to_json())
            return
        finished, _ = await asyncio.wait({changed}, timeout=keepalive)
        if not finished:
            yield StreamEvent(None)
