"""Builds run by the server: a queue in front of a bounded pool of threads.

The manager is synchronous and a build takes minutes, so every build runs in a worker thread;
everything else here (the job table, the queue, subscribers) lives on the event loop thread and is
changed only there. Worker threads hand events back with ``loop.call_soon_threadsafe``.

A job never keeps its log in memory: log lines go to the build's log file (the manager writes
it), and a job only tells its followers that something changed, so they read the new lines from
disk (see :mod:`._logstream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from ...engines.builders import CancelToken
from ...errors import BuildCancelledError, BuildError, ConflictError, EnvsError, NotFoundError
from ...events import Event, LogLine, Progress
from ...facade.manager import BuildResult, EnvManager
from ...spec._environment import Environment
from ._payloads import iso

__all__ = ["BuildJob", "BuildQueue", "BuildStatus", "ConflictError"]

BuildStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# Finished jobs kept for GET builds/<id>; older ones are forgotten (their logs stay on disk).
KEEP_FINISHED = 200
# Lines a build prints before its log file exists (e.g. "waiting for another build"): few.
MAX_NOTICES = 50


class BuildJob:
    """One build requested through the API, shared by every identical request while it runs.

    Read and changed on the event loop thread only.
    """

    def __init__(
        self, env: Environment, spec_hash: str, *, force: bool, lock: str | None = None
    ) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.env = env
        self.name = env.name
        self.spec_hash = spec_hash
        self.force = force
        #: Versions to install instead of resolving the spec (a notebook's carried lock).
        self.lock = lock
        self.status: BuildStatus = "queued"
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.version: int | None = None
        self.kernel_name: str | None = None
        #: ``registry/name:tag@sha256:…`` when the build pushed its image.
        self.pushed: str | None = None
        self.cache_hit: bool | None = None
        self.error: str | None = None
        self.progress: Progress | None = None
        self.cancel_requested = False
        #: The catalogue's id for this build and its log file, known once the build starts.
        self.record_id: str | None = None
        self.log_path: Path | None = None
        #: Lines reported before the log file existed; they are not in any file.
        self.notices: list[str] = []
        self.token = CancelToken()
        self._changed: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        """True once the build succeeded, failed or was cancelled."""
        return self.status in FINISHED

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the job's next change (a log line, progress, a new status).

        Take it *before* reading the job's state, so that a change in between is not missed.
        """
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    # -- transitions (loop thread) -----------------------------------------------------------
    def _start(self) -> None:
        self.status = "running"
        self.started = time.time()
        self._notify()

    def _attach_log(self, record_id: str, log_path: Path) -> None:
        self.record_id = record_id
        self.log_path = log_path
        self._notify()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = event
        elif self.log_path is None and len(self.notices) < MAX_NOTICES:
            self.notices.append(event.text)
        # Lines with a log file are already on disk: followers read them from there.
        self._notify()

    def _succeed(self, result: BuildResult) -> None:
        self.version = result.version
        self.kernel_name = result.kernel_name
        self.pushed = result.pushed
        self.cache_hit = result.cache_hit
        self._finish("succeeded")

    def _finish(self, status: BuildStatus, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished = time.time()
        self._notify()

    def to_json(self) -> dict[str, Any]:
        """The build as the REST API shows it."""
        progress = self.progress
        return {
            "id": self.id,
            "name": self.name,
            "spec_hash": self.spec_hash,
            "status": self.status,
            "force": self.force,
            "from_lock": self.lock is not None,
            "created": iso(self.created),
            "started": iso(self.started),
            "finished": iso(self.finished),
            "version": self.version,
            "kernel_name": self.kernel_name,
            "pushed": self.pushed,
            "cache_hit": self.cache_hit,
            "error": self.error,
            "log_url": f"builds/{self.id}/log",
            "cancel_requested": self.cancel_requested,
            "progress": None
            if progress is None
            else {
                "phase": progress.phase,
                "fraction": progress.fraction,
                "message": progress.message,
            },
        }


class BuildQueue:
    """Runs builds in at most ``max_concurrent`` threads, one build per environment name at a time.

    Jobs wait in submission order. A job whose environment is already being built waits for that
    build instead of taking a thread: the manager would only block on the per-name lock, holding a
    pool thread that another environment could use.

    All methods must be called on the event loop thread.
    """

    def __init__(
        self,
        manager: EnvManager,
        *,
        max_concurrent: int = 2,
        log: logging.Logger | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.manager = manager
        self.max_concurrent = max_concurrent
        self.log = log or logging.getLogger(__name__)
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="jupyter-envs-build"
        )
        self._jobs: dict[str, BuildJob] = {}
        self._waiting: deque[BuildJob] = deque()
        self._running: dict[str, BuildJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- queries -----------------------------------------------------------------------------
    def get(self, build_id: str) -> BuildJob:
        """The job with that id; NotFoundError if this server does not know it."""
        job = self._jobs.get(build_id)
        if job is None:
            raise NotFoundError(f"no build with id '{build_id}' is known to this server")
        return job

    def jobs(self, name: str | None = None) -> list[BuildJob]:
        """Known jobs, oldest first, optionally only those of one environment."""
        return [j for j in self._jobs.values() if name is None or j.name == name]

    def active(self, name: str) -> BuildJob | None:
        """The queued or running job of environment ``name``, if any (the running one first)."""
        running = self._running.get(name)
        if running is not None:
            return running
        return next((j for j in self._waiting if j.name == name), None)

    # -- commands ----------------------------------------------------------------------------
    def submit(
        self, env: Environment, spec_hash: str, *, force: bool = False, lock: str | None = None
    ) -> BuildJob:
        """Queue a build of ``env``, or return the unfinished job building the same spec.

        ``spec_hash`` is passed in because computing it may run builder detection, which the
        caller does off the event loop. ``lock``: install those versions (see
        :meth:`EnvManager.build`).
        """
        if self._stopping:
            raise ConflictError("the server is shutting down; no new builds are accepted")
        for job in (*self._running.values(), *self._waiting):
            if job.name == env.name and job.spec_hash == spec_hash:
                return job
        job = BuildJob(env, spec_hash, force=force, lock=lock)
        self._jobs[job.id] = job
        self._waiting.append(job)
        self._pump()
        return job

    def cancel(self, build_id: str) -> BuildJob:
        """Cancel a job: a queued one at once, a running one as soon as its builder notices."""
        job = self.get(build_id)
        if job.done:
            raise ConflictError(f"build '{build_id}' has already {job.status}; nothing to cancel")
        job.cancel_requested = True
        if job.status == "queued":
            self._waiting.remove(job)
            job._finish("cancelled", "cancelled before it started")
            self._forget_old()
        else:
            job.token.cancel()
            job._notify()
        return job

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel every build and wait (up to ``timeout`` seconds) for the workers to stop."""
        self._stopping = True
        while self._waiting:
            self._waiting.popleft()._finish("cancelled", "the server shut down")
        for job in self._running.values():
            job.cancel_requested = True
            job.token.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- scheduling --------------------------------------------------------------------------
    def _pump(self) -> None:
        """Start waiting jobs while a thread is free and their environment is not building."""
        loop = asyncio.get_running_loop()
        for job in list(self._waiting):
            if len(self._running) >= self.max_concurrent:
                break
            if job.name in self._running:
                continue
            self._waiting.remove(job)
            self._running[job.name] = job
            job._start()
            task = loop.create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: BuildJob) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._build, job, loop)
        except BuildCancelledError as exc:
            job._finish("cancelled", exc.without_paths())
        except BuildError as exc:  # the log's path is the server's business: see log_url
            job._finish("failed", exc.without_paths())
        except EnvsError as exc:
            job._finish("failed", str(exc))
        except Exception:
            # Not a domain error: a bug. Its traceback belongs in the server log, not in the API.
            self.log.exception("jupyter-envs: build %s of '%s' crashed", job.id, job.name)
            job._finish("failed", "internal error while building; see the server log")
        else:
            job._succeed(result)
        finally:
            del self._running[job.name]
            self._forget_old()
            if not self._stopping:
                self._pump()

    def _build(self, job: BuildJob, loop: asyncio.AbstractEventLoop) -> BuildResult:
        """Run in a worker thread: the synchronous build, with events posted to the loop."""

        def post(callback: Callable[..., None], *args: Any) -> None:
            # RuntimeError: the loop is closed (the server shut down); the build still ends cleanly.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)

        def sink(event: Event) -> None:
            if isinstance(event, Progress) and event.phase == "start":
                # The manager has just recorded the build in the catalogue and created its log
                # file; it holds the per-name lock, so the one running build of this name and
                # hash is ours.
                try:
                    record = self._running_record(job)
                except EnvsError as exc:
                    # Without its log file the build can still succeed; followers just get
                    # no lines. Failing the build over it would be worse.
                    self.log.warning("jupyter-envs: cannot find the log of %s: %s", job.id, exc)
                    record = None
                if record is not None:
                    post(job._attach_log, *record)
            if isinstance(event, LogLine | Progress):
                post(job._on_event, event)

        return self.manager.build(
            job.env, force=job.force, on_event=sink, cancel=job.token, lock=job.lock
        )

    def _running_record(self, job: BuildJob) -> tuple[str, Path] | None:
        for record in reversed(self.manager.builds(job.name)):
            if record.status == "running" and record.spec_hash == job.spec_hash:
                return record.id, Path(record.log_path)
        return None

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.done]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]
