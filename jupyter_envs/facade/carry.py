"""A registered version as a notebook carries it, and rebuilding one from a notebook.

:func:`carried` makes the record the notebook gets when it switches to a version;
:func:`restore` builds the environment a notebook carries, from its lock (the same resolved
versions, even when newer ones were published since), or from its spec when asked to re-resolve.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..engines.store import VersionRecord
from ..errors import SpecError
from ..events import Event
from ..spec._carried import METADATA_KEY, Carried
from ._types import BuildResult

if TYPE_CHECKING:
    from .manager import EnvManager

__all__ = ["carried", "read_notebook", "restore"]


def carried(record: VersionRecord) -> Carried:
    """The notebook record of a built version (on this machine, which built it)."""
    return Carried(
        env=record.name,
        version=record.version,
        spec_hash=record.spec_hash,
        backend=record.backend,
        spec=record.spec,
        lock=record.lock,
        python=record.python_version,
        platform=f"{sys.platform}-{platform.machine()}",
    )


def read_notebook(path: str | Path) -> Carried:
    """The environment record of a notebook file; SpecError when it has none or a bad one."""
    notebook = Path(path)
    try:
        data = json.loads(notebook.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read {notebook}: {exc.strerror}", field="notebook") from None
    except ValueError as exc:
        raise SpecError(
            f"{notebook} is not a notebook (not JSON: {exc})", field="notebook"
        ) from None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        raise SpecError(
            f"{notebook} carries no environment: switch it to one with %%env or "
            "%envs activate, and save it",
            field="notebook",
        )
    return Carried.from_metadata(metadata[METADATA_KEY])


def restore(
    manager: EnvManager,
    record: Carried,
    *,
    name: str | None = None,
    re_resolve: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> BuildResult:
    """Build the environment ``record`` describes.

    From the lock by default, so the versions are those of the first machine; with
    ``re_resolve``, from the spec (newest versions the spec allows). An environment already
    registered here with the same spec hash is reused as it is.
    """
    env = record.environment(name)
    lock = None if re_resolve else record.lock
    return manager.build(env, on_event=on_event, lock=lock)
