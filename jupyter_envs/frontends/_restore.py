"""``jupyter envs restore``, ``run`` and ``juv``: a notebook's carried environment, rebuilt here
(from its lock); the notebook executed on it (nbclient) — for CI and scheduled jobs; and the same
environment written the way juv keeps it (a PEP 723 cell and ``metadata["uv.lock"]``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import EnvsError, SpecError, UsageError

__all__ = ["notebook_path", "run_notebook", "write_juv"]


def notebook_path(given: str | None) -> Path:
    """The notebook to restore: ``given``, else (in a kernel a Jupyter server started) the
    notebook this kernel belongs to; UsageError when there is neither."""
    if given:
        return Path(given)
    # jupyter_server gives every kernel it starts for a notebook the notebook's full path.
    session = os.environ.get("JPY_SESSION_NAME")
    if session and session.endswith(".ipynb"):
        return Path(session)
    raise UsageError("name the notebook to restore: jupyter envs restore NOTEBOOK.ipynb")


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


def write_juv(path: Path) -> tuple[str, int]:
    """Write (or refresh) juv's PEP 723 cell and ``metadata["uv.lock"]`` from the environment
    record the notebook carries, so juv opens it with the same versions. Returns the block and
    the number of packages the lock holds."""
    import nbformat
    from nbformat.v4 import new_code_cell

    from ..facade.interop import JUV_LOCK_KEY, juv_parts
    from ..spec._carried import METADATA_KEY, Carried
    from ..spec._pep723 import find_block

    notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    if METADATA_KEY not in notebook.metadata:
        raise SpecError(
            f"{path} carries no jupyter-envs environment record to write for juv: switch it to "
            "an environment with %%env or %envs activate, and save it",
            field="notebook",
        )
    record = Carried.from_metadata(notebook.metadata[METADATA_KEY])
    block, uv_lock = juv_parts(record)
    for cell in notebook.cells:
        old = find_block(cell.source, str(path)) if cell.cell_type == "code" else None
        if old is not None:
            cell.source = cell.source.replace(old, block.rstrip("\n"))
            break
    else:
        # Where juv puts it: a first code cell, its source hidden (it is only comments).
        hidden = {"jupyter": {"source_hidden": True}}
        cell = new_code_cell(block.rstrip("\n"), metadata=hidden)  # type: ignore[no-untyped-call]
        notebook.cells.insert(0, cell)
    notebook.metadata[JUV_LOCK_KEY] = uv_lock
    nbformat.write(notebook, str(path))  # type: ignore[no-untyped-call]
    return block, uv_lock.count("[[package]]")
