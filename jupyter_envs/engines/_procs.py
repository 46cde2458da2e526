"""Which running processes run from a directory (a built environment a kernel still uses)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["processes_running_from"]

_PROC = Path("/proc")


def processes_running_from(directory: Path) -> list[int]:
    """Pids of processes whose program (``argv[0]``) lies inside ``directory``.

    A kernel of a venv is started as ``<venv>/bin/python -m ipykernel_launcher ...``, so its
    command line names the venv even though ``/proc/<pid>/exe`` resolves to the base
    interpreter. Reads ``/proc`` (Linux); elsewhere it finds nothing. Processes that vanish
    or cannot be read while scanning are skipped.
    """
    if not _PROC.is_dir():
        return []
    prefix = os.fsencode(str(directory.resolve())) + b"/"
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0.startswith(prefix):
            found.append(int(entry.name))
    return sorted(found)
