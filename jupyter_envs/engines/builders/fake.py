"""A fake builder for fast tests, demos and frontend work.

Never a stand-in for uv in integration tests.

It installs nothing: the artifact is a directory with a lock derived from the requirements, and
its kernel runs on the Python that runs jupyter-envs. Behaviour is steered by environment
variables so tests in other processes can use it too:

- a requirement named ``fail-build`` makes the build fail (with a log);
- ``JUPYTER_ENVS_FAKE_DELAY`` (seconds) makes each build take that long (cancellable).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BuildCancelledError, BuildError
from ...events import Event, LogLine, Progress
from ...spec._requirements import requirement_of
from ..kernels.runtimes import KernelTarget
from .base import Builder, BuildOutput, BuildRequest

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = ["FakeBuilder"]


class FakeBuilder(Builder):
    """Pretends to build: fast, deterministic, no network. Selected with ``backend="fake"``."""

    name = "fake"

    def detect(self, env: Environment) -> bool:
        """Never detected: only an explicit ``backend="fake"`` selects it."""
        return False

    def kernel_target(self, artifact: Path) -> KernelTarget:
        """Kernels of fake envs run on the current interpreter."""
        return KernelTarget(python=sys.executable, magics=False)

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        """Write a marker file and a lock; honour the failure and delay switches."""
        env = request.env
        yield Progress("install", 0.1, "pretending to install")
        delay = float(os.environ.get("JUPYTER_ENVS_FAKE_DELAY", "0") or 0)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if request.cancel.wait(0.05):
                raise BuildCancelledError("cancelled", env_name=env.name)
        if request.lock is not None:  # installs exactly what the lock says
            lock = "\n".join(ln for ln in request.lock.splitlines() if ln.strip()) + "\n"
        else:
            lock_lines: list[str] = []
            for text in env.all_pip_requirements():
                req = requirement_of(text)
                yield LogLine(f" + {req.name}")
                if req.name == "fail-build":
                    raise BuildError(
                        "the fake build was asked to fail", env_name=env.name, log_tail=[text]
                    )
                pinned = next((s.version for s in req.specifier if s.operator == "=="), "0.0.0")
                lock_lines.append(f"{req.name}=={pinned}")
            lock = "\n".join(sorted(lock_lines)) + "\n"
        request.staging.mkdir(parents=True, exist_ok=True)
        (request.staging / "fake-env.txt").write_text(env.spec_hash + "\n")
        yield Progress("install", 0.9, "installed")
        return BuildOutput(lock=lock, python_version=sys.version.split()[0])
