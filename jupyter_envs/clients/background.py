"""Builds that run in the background of a kernel, for front-ends that must not block (the panel).

A :class:`BackgroundBuild` runs :meth:`EnvsClient.build` in a thread: in the server when the
kernel has one (the build survives the kernel), in process otherwise. It keeps what a view needs
(progress, a bounded tail of the log, the result or the error) and calls its watchers at most
:data:`NOTIFY_EVERY` seconds apart, plus once at the end: a 5,000-line log is a handful of
updates, not 5,000. Builds are kept in a module-level table by environment name, so a panel shown
again (its cell re-run) finds the builds the previous one started, still running.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..engines.builders import CancelToken
from ..errors import BuildCancelledError, EnvsError
from ..events import Event, LogLine, Progress
from ..facade._types import BuildResult
from ..spec._environment import Environment
from .envs import EnvsClient

__all__ = ["NOTIFY_EVERY", "TAIL_LINES", "BackgroundBuild", "Snapshot", "running"]

#: Seconds between two notifications of a build's watchers (at most).
NOTIFY_EVERY = 0.25
#: Log lines a build keeps for its views (the full log is in the build's log file).
TAIL_LINES = 200

_BUILDS: dict[str, BackgroundBuild] = {}
_TABLE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    """A build's state at one moment, for a view to show."""

    name: str
    phase: str
    fraction: float
    message: str
    tail: tuple[str, ...]
    lines: int
    elapsed: float
    done: bool
    cancelled: bool
    result: BuildResult | None
    error: str | None


class BackgroundBuild:
    """One build in a thread; any number of watchers; cancellable."""

    def __init__(self, client: EnvsClient, env: Environment, *, force: bool = False) -> None:
        self.client = client
        self.env = env
        self.force = force
        self.token = CancelToken()
        self._lock = threading.Lock()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._lines = 0
        self._progress = Progress("queued", 0.0, "starting")
        self._started = time.monotonic()
        self._finished: float | None = None
        self._result: BuildResult | None = None
        self._error: str | None = None
        self._cancelled = False
        self._watchers: list[Callable[[Snapshot], None]] = []
        self._last_notify = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"jupyter-envs-build-{env.name}", daemon=True
        )

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> BackgroundBuild:
        """Start it, and register it under its environment's name."""
        with _TABLE_LOCK:
            _BUILDS[self.env.name] = self
        self._thread.start()
        ticker = threading.Thread(target=self._tick, name="jupyter-envs-build-tick", daemon=True)
        ticker.start()
        return self

    def cancel(self) -> None:
        """Ask the build to stop (in the server too); it ends as cancelled shortly after."""
        self.token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the build ends; True if it did within ``timeout``."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        """True once the build succeeded, failed or was cancelled."""
        return self._done.is_set()

    def watch(self, watcher: Callable[[Snapshot], None]) -> None:
        """Call ``watcher`` with snapshots from now on (from the build's threads), and once now."""
        with self._lock:
            self._watchers.append(watcher)
        watcher(self.snapshot())

    def unwatch(self, watcher: Callable[[Snapshot], None]) -> None:
        """Stop calling ``watcher``."""
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def snapshot(self) -> Snapshot:
        """The build's state now."""
        with self._lock:
            end = self._finished if self._finished is not None else time.monotonic()
            return Snapshot(
                name=self.env.name,
                phase=self._progress.phase,
                fraction=self._progress.fraction,
                message=self._progress.message,
                tail=tuple(self._tail),
                lines=self._lines,
                elapsed=end - self._started,
                done=self._done.is_set(),
                cancelled=self._cancelled,
                result=self._result,
                error=self._error,
            )

    # -- the threads -----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, Progress):
                self._progress = event
            elif isinstance(event, LogLine):
                self._tail.append(event.text)
                self._lines += 1
        self._notify()

    def _notify(self, *, final: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not final and now - self._last_notify < NOTIFY_EVERY:
                return
            self._last_notify = now
            watchers = list(self._watchers)
        snap = self.snapshot()
        for watcher in watchers:
            try:
                watcher(snap)
            except Exception:  # a broken view must not stop the build
                with self._lock:
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)

    def _tick(self) -> None:
        # Elapsed time moves even while the installer prints nothing.
        while not self._done.wait(1.0):
            self._notify()

    def _run(self) -> None:
        try:
            result = self.client.build(
                self.env, force=self.force, on_event=self._on_event, cancel=self.token
            )
        except BuildCancelledError as exc:
            with self._lock:
                self._cancelled = True
                self._error = exc.without_paths()
        except EnvsError as exc:
            with self._lock:
                self._error = str(exc)
        except Exception as exc:  # shown to the user rather than lost in a thread
            with self._lock:
                self._error = f"internal error: {type(exc).__name__}: {exc}"
        else:
            with self._lock:
                self._result = result
                self._progress = Progress("done", 1.0, result.summary())
        with self._lock:
            self._finished = time.monotonic()
        self._done.set()
        self._notify(final=True)


def running(name: str | None = None) -> list[BackgroundBuild]:
    """Builds started in this kernel that have not finished (of ``name`` only, when given)."""
    with _TABLE_LOCK:
        builds = list(_BUILDS.values())
    return [b for b in builds if not b.done and name in (None, b.env.name)]
