"""Running a build command while streaming its output and honouring cancellation."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ...errors import BuildCancelledError, BuildError
from ...events import LogLine

__all__ = ["CancelToken", "Spare", "run_streaming"]

TAIL_LINES = 25
_MAX_SUMMARY = 2000


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


# Run in the command's own process group: on TERM (ours, or the kernel's when we die), kill the
# whole group, so that what the command started goes too.
# stdin goes through fd 3: sh gives a background command /dev/null otherwise (a Spare reads
# its job from stdin).
_GROUP_GUARD = 'exec 3<&0; trap "kill -KILL 0" TERM; "$@" <&3 3<&- & wait $!'


def _dies_with_this_thread(cmd: Sequence[str]) -> list[str]:
    """``cmd``, wrapped so that it and everything it starts die when this process does.

    A build killed hard (SIGKILL, OOM) cannot clean up: its uv kept installing into the
    abandoned staging folder for seconds. ``setpriv --pdeathsig`` asks the kernel to send TERM
    when the thread that started the command dies (the build's thread waits for the command, so
    only the death of the process ends it first); a small ``sh`` then kills the command's
    process group. Where setpriv is missing (not Linux), the command runs as it is.
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv is None:
        return list(cmd)
    return [setpriv, "--pdeathsig", "TERM", "--", "/bin/sh", "-c", _GROUP_GUARD, "sh", *cmd]


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


class Spare:
    """A process of ``cmd`` started ahead of need, waiting on its stdin, so that a build does
    not wait for it to start (an interpreter importing a large library: ~0.2 s).

    :meth:`take` hands over the waiting process (or None the first time) and starts the next
    one. Spares are started by one long-lived thread, so ``--pdeathsig`` ends them with this
    process, not with the build that took the previous one; a spare made under other
    environment variables than the build's is not used.
    """

    def __init__(self, cmd: Sequence[str]) -> None:
        self._cmd = list(cmd)
        self._lock = threading.Lock()
        self._spare: tuple[subprocess.Popen[str], dict[str, str]] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def take(self) -> subprocess.Popen[str] | None:
        """The waiting process, stdout piped, stdin open for its job; None if there is none."""
        with self._lock:
            spare, self._spare = self._spare, None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="jupyter-envs-spare")
            self._pool.submit(self._start)
        if spare is None:
            return None
        proc, environ = spare
        if proc.poll() is not None or environ != dict(os.environ):
            _kill_group(proc)
            return None
        return proc

    def _start(self) -> None:
        environ = dict(os.environ)
        proc = subprocess.Popen(
            _dies_with_this_thread(self._cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,
            env=environ,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        with self._lock:
            if self._spare is None:
                self._spare = (proc, environ)
                return
        _kill_group(proc)  # one is waiting already


def run_streaming(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    cancel: CancelToken,
    what: str,
    env_name: str | None = None,
    cwd: str | None = None,
    collect: bool = False,
    untailed: str | None = None,
    started: subprocess.Popen[str] | None = None,
) -> Generator[LogLine, None, list[str]]:
    """Run ``cmd``, yielding each output line as it comes.

    With ``collect`` the lines are also returned (for short outputs such as a freeze); otherwise
    only the last few are kept, for the error message. Lines starting with ``untailed`` (a
    tool's machine-readable progress) are yielded but kept out of that tail. ``started`` is
    ``cmd`` already running (a :class:`Spare` taken for this build): streamed the same way.

    stderr is merged into the stream (uv reports progress on stderr). Raises
    :class:`BuildError` with the log tail on a non-zero exit and :class:`BuildCancelledError`
    when ``cancel`` is set; in both cases, and if the consumer stops iterating (e.g. on
    KeyboardInterrupt), the whole process group is terminated.
    """
    # A call, not the property: mypy would narrow the property to False here and skip checking
    # the later "if cancel.cancelled" branch (a raise there counts as silently unreachable).
    if cancel.wait(0):
        if started is not None:
            _kill_group(started)
        raise BuildCancelledError("cancelled before it started", env_name=env_name)
    proc = started or subprocess.Popen(
        _dies_with_this_thread(cmd),
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
            if untailed is None or not line.startswith(untailed):
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
        summary = summarize_failure(list(tail))
        raise BuildError(
            summary or f"{what} exited with status {returncode}",
            env_name=env_name,
            command=cmd,
            returncode=returncode,
            # The explanation is the message: the tail shows what came before it, not it again.
            log_tail=_before_summary(list(tail)) if summary else list(tail),
        )
    return collected


def summarize_failure(lines: Sequence[str]) -> str:
    """The tool's own explanation, with its line breaks kept: from uv's first ``error:`` line
    (or the cross of its fancy output) to the end: "No solution found...", then its ``cause:``
    lines. Empty if there is none."""
    start = next(
        (i for i, ln in enumerate(lines) if ln.strip().startswith(("error:", "\u00d7"))), None
    )
    if start is None:
        return ""
    block = [ln.rstrip() for ln in lines[start:] if ln.strip()]
    block[0] = block[0].strip().removeprefix("error:").strip()
    text = "\n".join(block)
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "\u2026"


def _before_summary(lines: Sequence[str]) -> list[str]:
    """The log lines before the explanation :func:`summarize_failure` took (no repeats)."""
    for i, ln in enumerate(lines):
        if ln.strip().startswith(("error:", "\u00d7")):
            return list(lines[:i])
    return list(lines)
