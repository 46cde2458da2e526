"""``jupyter envs restore`` and ``jupyter envs run``: a notebook's carried environment, rebuilt
here (from its lock), and the notebook executed on it (nbclient) — for CI and scheduled jobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import EnvsError
from ..events import Event
from ..facade._types import BuildResult
from ..facade.carry import read_notebook, restore
from ..facade.manager import EnvManager

__all__ = ["restore_notebook", "run_notebook"]


def restore_notebook(
    manager: EnvManager,
    path: Path,
    *,
    name: str | None = None,
    re_resolve: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> tuple[BuildResult, list[str]]:
    """Build what the notebook at ``path`` carries; also returns what the user should know
    (what it installs from outside the default index, local paths)."""
    record = read_notebook(path)
    env = record.environment(name)
    notes = [f"the notebook carries {record.env} v{record.version} ({record.backend} builder"]
    notes[0] += f", Python {record.python}, built on {record.platform})" if record.python else ")"
    for option in env.all_pip_options():
        notes.append(f"installer option from the notebook: {option}")
    for local in env.local_paths():
        notes.append(f"installs from a local path of the first machine: {local}")
    if record.lock and not re_resolve:
        count = sum(1 for ln in record.lock.splitlines() if ln.strip())
        notes.append(f"installing its {count} locked versions (--re-resolve: from its spec)")
    result = restore(manager, record, name=name, re_resolve=re_resolve, on_event=on_event)
    return result, notes


def run_notebook(kernel_name: str, path: Path, output: Path | None, kernels_dir: Path) -> None:
    """Execute the notebook on ``kernel_name``; EnvsError naming the failing cell if one fails.
    The executed notebook (outputs included) goes to ``output`` when given, failed or not."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    specs = KernelSpecManager()
    specs.kernel_dirs = [str(kernels_dir), *specs.kernel_dirs]
    # The store's kernels directory first: it need not be on Jupyter's path (another store).
    manager = KernelManager(kernel_name=kernel_name, kernel_spec_manager=specs)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent.resolve())}},
        timeout=600,
    )
    failure: str | None = None
    try:
        client.execute()
    except CellExecutionError as exc:
        failure = f"{exc.ename}: {exc.evalue}"  # the str() has the colored traceback
    finally:
        if output is not None:
            output.write_text(json.dumps(notebook, indent=1) + "\n")
    if failure is not None:
        raise EnvsError(f"{path} failed on {kernel_name}: {failure}")
