"""A catalogue of many environments, written straight into a store (no builds): for listing
tests and ``benchmarks/list.py``.

The records look like real ones: a spec of a few requirements, a lock of ~40 pinned packages.
"""

from __future__ import annotations

from jupyter_envs.engines.store import Workspace

__all__ = ["fill"]

_LOCK = "\n".join(f"package-{i}=={i}.{i % 7}.{i % 3}" for i in range(40)) + "\n"
_BACKENDS = ("uv", "uv", "uv", "docker")


def fill(ws: Workspace, count: int, prefix: str = "env") -> list[str]:
    """Register ``count`` environments named ``<prefix>-00000``...; every fourth is a Docker one,
    every fifth only registered (not built), every third has two versions. Returns the names."""
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    with ws.transaction() as db:
        for i, name in enumerate(names):
            backend = _BACKENDS[i % len(_BACKENDS)]
            for version in range(1 + (i % 3 == 0)):
                description = f"environment number {i}"
                spec = {
                    "name": name,
                    "description": description,
                    "pip": ["pandas>=2", "numpy", f"scikit-learn=={version}.{i % 10}"],
                    "python": {"version": "3.11"},
                }
                built = i % 5 != 0
                ws.upsert_version(
                    db,
                    name=name,
                    description=description,
                    spec_hash=f"{i:08x}{version:08x}" * 4,
                    spec=spec,
                    backend=backend,
                    status="ready" if built else "registered",
                    lock=_LOCK if built else None,
                    kernel_name=f"jupyter-envs-{name}" if built else None,
                    python_version="3.11.7" if built else None,
                    build_seconds=1.5 if built else None,
                )
    return names
