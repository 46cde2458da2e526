"""Builder subprocesses: streamed lines, a failing command, cancel before and during a run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from jupyter_envs.engines.builders._process import CancelToken, Spare, run_streaming
from jupyter_envs.errors import BuildCancelledError, BuildError
from jupyter_envs.events import LogLine

ROOT = Path(__file__).resolve().parent.parent


def _drain(gen: Generator[LogLine, None, list[str]]) -> list[str]:
    """Every line the command printed (the generator's own events)."""
    return [event.text for event in gen]


def test_lines_stream_and_failures_carry_the_command() -> None:
    code = "print('one'); print('two', flush=True); raise SystemExit(3)"
    with pytest.raises(BuildError) as info:
        _drain(run_streaming([sys.executable, "-c", code], env=dict(os.environ),
                             cancel=CancelToken(), what="the probe", env_name="demo"))  # fmt: skip
    assert info.value.env_name == "demo"
    assert info.value.returncode == 3
    assert "one" in info.value.log_tail


def test_cancel_before_and_during_a_run() -> None:
    early = CancelToken()
    early.cancel()
    with pytest.raises(BuildCancelledError, match="cancelled before it started") as info:
        _drain(run_streaming(["true"], env=dict(os.environ), cancel=early, what="x",
                             env_name="demo"))  # fmt: skip
    assert info.value.env_name == "demo"

    cancel = CancelToken()
    code = "import time; print('started', flush=True); time.sleep(60)"
    threading.Timer(0.5, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(BuildCancelledError, match="the sleeper was cancelled") as info:
        _drain(run_streaming([sys.executable, "-c", code], env=dict(os.environ), cancel=cancel,
                             what="the sleeper", env_name="demo"))  # fmt: skip
    assert info.value.env_name == "demo"
    assert time.monotonic() - started < 30


UV_CONFLICT = [
    "Using Python 3.11.7 environment at: /store/envs/demo/.staging-1",
    "Resolved 3 packages in 12ms",
    "error: No solution found when resolving dependencies",
    "  cause: Because only the following versions of foo are available:",
    "          foo==1.0",
    "          foo==2.0",
    "      and you require foo>3, we can conclude that your requirements are unsatisfiable.",
]


def test_uvs_explanation_keeps_its_line_breaks() -> None:
    code = "import sys; print(sys.argv[1]); raise SystemExit(1)"
    with pytest.raises(BuildError) as info:
        _drain(run_streaming([sys.executable, "-c", code, "\n".join(UV_CONFLICT)],
                             env=dict(os.environ), cancel=CancelToken(), what="uv pip install",
                             env_name="demo"))  # fmt: skip
    assert info.value.message == "\n".join(
        ["No solution found when resolving dependencies", *UV_CONFLICT[3:]]
    )
    # The explanation is the message; the tail shows what came before it, not it again.
    assert info.value.log_tail == tuple(UV_CONFLICT[:2])
    assert str(info.value).startswith(
        "building 'demo' failed: No solution found when resolving dependencies\n"
        "  cause: Because only the following versions of foo are available:\n"
    )


# A "build" whose command starts a grandchild (as uv starts build backends), prints both pids
# and keeps running.
_PARENT = """
import os, sys
from jupyter_envs.engines.builders._process import CancelToken, Spare, run_streaming
child = (
    "import subprocess, sys, time;"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
    "import os; print(os.getpid(), g.pid, flush=True); time.sleep(120)"
)
for line in run_streaming([sys.executable, "-c", child], env=dict(os.environ),
                          cancel=CancelToken(), what="the probe"):
    print(line.text, flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signals are Linux's")
def test_a_killed_build_process_takes_its_commands_with_it() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)  # as the OOM killer or `kill -9` would
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in pids if _alive(pid)], "the build's commands outlived it"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in pids if "pids" in locals() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_spare_waits_for_its_job_and_is_replaced_when_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    echo = [sys.executable, "-c", "import sys; print('job:', sys.stdin.readline().strip())"]
    spare = Spare(echo)
    assert spare.take() is None  # none yet: this starts one
    deadline = time.monotonic() + 30
    while (proc := spare.take()) is None:
        assert time.monotonic() < deadline, "no spare was started"
        time.sleep(0.05)
    out, _ = proc.communicate("one\n", timeout=30)
    assert out.strip() == "job: one"
    # A spare started under other environment variables is not used (then replaced).
    time.sleep(0.5)
    monkeypatch.setenv("JENVS_SPARE_TEST", "changed")
    assert spare.take() is None
    deadline = time.monotonic() + 30
    while (proc := spare.take()) is None:
        assert time.monotonic() < deadline, "no spare was started"
        time.sleep(0.05)
    out, _ = proc.communicate("two\n", timeout=30)
    assert out.strip() == "job: two"
