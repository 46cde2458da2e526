"""Running a build command while streaming its output and honouring cancellation."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Generator, Mapping, Sequence

from ...errors import BuildCancelledError, BuildError
from ...events import LogLine

__all__ = ["CancelToken", "run_streaming"]

TAIL_LINES = 25


class CancelToken:
    """Set from any thread to ask a running build to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the build to stop; its running command is terminated."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` passes; True if cancelled."""
        return self._event.wait(timeout)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def run_streaming(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    cancel: CancelToken,
    what: str,
    env_name: str | None = None,
    cwd: str | None = None,
    collect: bool = False,
) -> Generator[LogLine, None, list[str]]:
    """Run ``cmd``, yielding each output line as it comes.

    With ``collect`` the lines are also returned (for short outputs such as a freeze); otherwise
    only the last few are kept, for the error message.

    stderr is merged into the stream (uv reports progress on stderr). Raises
    :class:`BuildError` with the log tail on a non-zero exit and :class:`BuildCancelledError`
    when ``cancel`` is set; in both cases, and if the consumer stops iterating (e.g. on
    KeyboardInterrupt), the whole process group is terminated.
    """
    # A call, not the property: mypy would narrow the property to False here and skip checking
    # the later "if cancel.cancelled" branch (a raise there counts as silently unreachable).
    if cancel.wait(0):
        raise BuildCancelledError("cancelled before it started", env_name=env_name)
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env),
        cwd=cwd,
        text=True,
        bufsize=1,
        # Own process group: cancelling kills uv and anything it started, and a Ctrl-C in the
        # terminal reaches us first so we can clean up in order.
        start_new_session=True,
    )
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.1):
                _kill_group(proc)
                return

    watcher = threading.Thread(target=watch, name="jupyter-envs-cancel", daemon=True)
    watcher.start()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    collected: list[str] = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if collect:
                collected.append(line)
            yield LogLine(line, "stdout")
        returncode = proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        finished.set()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.poll() is None:
            _kill_group(proc)
    if cancel.cancelled:
        raise BuildCancelledError(f"{what} was cancelled", env_name=env_name, command=cmd)
    if returncode != 0:
        raise BuildError(
            summarize_failure(list(tail)) or f"{what} exited with status {returncode}",
            env_name=env_name,
            command=cmd,
            returncode=returncode,
            log_tail=list(tail),
        )
    return collected


def summarize_failure(lines: Sequence[str]) -> str:
    """The resolver's own explanation (``error:``/``cause:`` lines), on one line."""
    picked = [
        ln.strip()
        for ln in lines
        if ln.strip().startswith(("error:", "cause:", "\u00d7", "\u2570\u2500\u25b6"))
    ]
    return " ".join(picked).removeprefix("error:").strip()[:800]
