"""What a build reports while it runs: log lines and progress.

Builders yield these as they happen; the manager forwards each to the caller's ``on_event`` and
appends log lines to the build's log file. Nobody keeps a whole build log in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Event", "LogLine", "Progress"]


@dataclass(frozen=True)
class LogLine:
    """One line of build output (without its newline)."""

    text: str
    stream: Literal["stdout", "stderr", "info"] = "info"


@dataclass(frozen=True)
class Progress:
    """A build phase and the overall fraction done (0.0-1.0)."""

    phase: str
    fraction: float
    message: str = ""


Event = LogLine | Progress
