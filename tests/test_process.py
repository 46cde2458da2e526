"""Builder subprocesses: streamed lines, a failing command, cancel before and during a run."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Generator

import pytest

from jupyter_envs.engines.builders._process import CancelToken, run_streaming
from jupyter_envs.errors import BuildCancelledError, BuildError
from jupyter_envs.events import LogLine


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
