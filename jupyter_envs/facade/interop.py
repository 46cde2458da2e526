"""Environments carried the way other tools carry them, read as ours, and ours written their way.

- juv: a PEP 723 ``# /// script`` block in a notebook's first code cells, and its
  ``uv lock --script`` lock in ``metadata["uv.lock"]``. :func:`from_juv_notebook` reads one
  (from the lock when there is one); :func:`juv_parts` makes both from our record, so a juv user
  can open our notebooks.
- marimo sandboxes and ``uv run`` scripts: a ``.py`` file with the same block
  (:func:`from_script`); uv keeps a script's lock beside it as ``<script>.py.lock``.
- :func:`pep723_block`: an environment as a block (``export --format pep723``).

A notebook or script read this way becomes a :class:`Carried` record like one we wrote, so
the plan, the checks and the restore are the same for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engines.uvlock import requirements_of_script_lock, script_lock
from ..errors import SpecError
from ..spec._carried import Carried
from ..spec._environment import Environment
from ..spec._pep723 import find_block, render_block

__all__ = ["JUV_LOCK_KEY", "from_juv_notebook", "from_script", "juv_parts", "pep723_block"]

#: Where juv keeps a notebook's lock.
JUV_LOCK_KEY = "uv.lock"


def env_name_for(path: Path) -> str:
    """An environment name made from a file name (``My Analysis.ipynb`` → ``my-analysis``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")[:63]
    return name or "notebook"


def _carried(env: Environment, lock: str | None) -> Carried:
    return Carried(
        env=env.name,
        version=1,
        spec_hash=env.spec_hash,
        backend="venv",
        spec=env.to_dict(),
        lock=lock,
        python=None,
        platform=None,
    )


def from_script(path: Path) -> Carried:
    """The environment a PEP 723 script declares (a marimo sandbox notebook, a ``uv run``
    script), locked by ``<script>.lock`` when uv wrote one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}", field="notebook") from None
    block = find_block(text, str(path))
    if block is None:
        raise SpecError(
            f"{path} has no '# /// script' block (PEP 723) declaring its dependencies",
            field="notebook",
        )
    env = Environment.from_text(env_name_for(path), block, "pep723", source=str(path))
    lock_file = path.with_name(path.name + ".lock")
    lock = None
    if lock_file.is_file():
        lock = requirements_of_script_lock(block, lock_file.read_text())
    return _carried(env, lock)


def _sources(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def juv_block(cells: Any) -> str | None:
    """The PEP 723 block of the first code cell that has one (where juv puts it)."""
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            block = find_block(_sources(cell), "the notebook's first code cells")
            if block is not None:
                return block
    return None


def from_juv_notebook(path: Path, notebook: Mapping[str, Any]) -> Carried | None:
    """The environment a juv notebook declares, locked by its ``metadata["uv.lock"]`` when it
    has one; None when it has no PEP 723 cell."""
    block = juv_block(notebook.get("cells"))
    if block is None:
        return None
    env = Environment.from_text(
        env_name_for(path), block, "pep723", source=f"{path}'s PEP 723 cell"
    )
    metadata = notebook.get("metadata")
    uv_lock = metadata.get(JUV_LOCK_KEY) if isinstance(metadata, dict) else None
    if uv_lock is not None and not isinstance(uv_lock, str):
        raise SpecError("must be the text of a uv lock", field=f"metadata.{JUV_LOCK_KEY}")
    lock = requirements_of_script_lock(block, uv_lock) if uv_lock else None
    return _carried(env, lock)


def _python_requirement(version: str | None) -> str | None:
    """``3.11.7`` or ``3.11`` → ``==3.11.*``; a specifier stays as it is."""
    if not version:
        return None
    if version[0].isdigit():
        return "==" + ".".join(version.split(".")[:2]) + ".*"
    return version


def pep723_block(env: Environment, lock: str | None, python: str | None = None) -> str:
    """``env`` as a PEP 723 block; with ``lock``, its exact versions as uv constraints (so
    ``uv run``, juv and marimo install the same versions)."""
    pins = [
        ln.split(" --hash", 1)[0].strip()
        for ln in (lock or "").splitlines()
        if "==" in ln and not ln.startswith(("-", "#"))
    ]
    return render_block(
        env.all_pip_requirements(),
        requires_python=_python_requirement(env.effective_python() or python),
        pip_options=env.all_pip_options(),
        constraints=[*env.pip_constraints, *pins] if pins else env.pip_constraints,
    )


def juv_parts(record: Carried) -> tuple[str, str]:
    """The PEP 723 cell source and the ``uv.lock`` text that make our record readable by juv
    (the lock pins the same versions as ours)."""
    if record.backend == "conda":
        raise SpecError(
            "a conda environment has no PEP 723 form (juv and uv install pip packages only)",
            field="backend",
        )
    env = record.environment()
    block = pep723_block(env, record.lock, record.python)
    return block, script_lock(block)
