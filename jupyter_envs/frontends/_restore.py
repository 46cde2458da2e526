"""``jupyter envs restore`` and ``jupyter envs run``: a notebook's carried environment, rebuilt
here (from its lock), and the notebook executed on it (nbclient) — for CI and scheduled jobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import EnvsError, UsageError

__all__ = ["notebook_path", "run_notebook"]


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
