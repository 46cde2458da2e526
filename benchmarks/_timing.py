"""Timing shared by the benchmarks: sides alternate run by run; medians and spreads are printed.

Timing one side in a block and then the other lets a burst of load on a shared machine land on
one side only (the build ratio ranged 0.85-1.93x over six such runs). Alternating the sides
within each round exposes both to the same conditions, and the spread (min-max) of each side
and of the per-round ratios says how much a figure can be trusted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def alternate(sides: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Run every side once per round, in turn, ``rounds`` times; the seconds each run took.

    A side may return its own measurement (seconds, a float); otherwise its wall time is used.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            started = time.perf_counter()
            measured = side()
            took = time.perf_counter() - started
            times[name].append(measured if isinstance(measured, float) else took)
    return times


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    """``median 1.23 s (1.10-1.40, n=5)``."""
    v = [x * scale for x in values]
    return f"median {statistics.median(v):.3f} {unit} ({min(v):.3f}-{max(v):.3f}, n={len(v)})"


def ratio(ours: list[float], base: list[float]) -> tuple[float, str]:
    """The ratio of the medians, and the spread of the per-round ratios as text."""
    per_round = [a / b for a, b in zip(ours, base, strict=True)]
    value = statistics.median(ours) / statistics.median(base)
    return value, f"{value:.2f}x (per round {min(per_round):.2f}-{max(per_round):.2f}x)"


def verdict(value: float, *, at_most: float | None = None, at_least: float | None = None) -> str:
    """``OK`` or ``MISSED`` against a target."""
    ok = (at_most is None or value <= at_most) and (at_least is None or value >= at_least)
    return "OK" if ok else "MISSED"
