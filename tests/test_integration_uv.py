"""Integration: real uv installs, real kernels, a real notebook run. Nothing here is faked."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from jupyter_envs import Environment, Workspace
from tests._kernel import execute

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    """One real env (six pinned) built once for the module, in its own data dir."""
    data = tmp_path_factory.mktemp("uv-data")
    ws = Workspace(data / "jupyter_envs", data / "kernels")
    result = Environment("smoke", pip=["six==1.17.0"]).build(ws=ws)
    assert not result.cache_hit
    return ws, data


def test_real_build_records_lock_and_venv(built: tuple[Workspace, Path]) -> None:
    ws, _ = built
    record = ws.get("smoke")
    assert "six==1.17.0" in (record.lock or "")
    assert "ipykernel==" in (record.lock or "")
    assert (Path(record.artifact or "") / "bin" / "python").exists()
    assert not [p for p in (ws.root / "envs" / "smoke").iterdir() if p.name.startswith(".")]


def test_kernel_runs_inside_the_env(
    built: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, data = built
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    specs = KernelSpecManager().find_kernel_specs()
    assert "jenv-smoke-v1" in specs
    km = KernelManager(kernel_name="jenv-smoke-v1")
    km.start_kernel()
    try:
        out = execute(km, "import sys, six; print(sys.prefix); print(six.__version__)")
    finally:
        km.shutdown_kernel(now=True)
    prefix, version = out.split()
    assert Path(prefix).resolve() == Path(ws.get("smoke").artifact or "").resolve()
    assert version == "1.17.0"


def test_magics_work_inside_a_built_env_kernel(
    built: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws, data = built
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    km = KernelManager(kernel_name="jenv-smoke-v1")
    # Not the repository as cwd: the checkout's jupyter_envs/ would shadow what the env has.
    km.start_kernel(cwd=str(tmp_path))
    try:
        out = execute(
            km,
            # No %load_ext: env kernels load the magics themselves.
            "%envs list\n"
            "import jupyter_envs, sys; print('FROM', jupyter_envs.__file__, sys.prefix)",
        )
    finally:
        km.shutdown_kernel(now=True)
    assert "smoke" in out
    assert "jenv-smoke-v1" in out
    # The kernel side comes from the store's runtime copy, not from the host's site-packages.
    assert f"{ws.root}/runtime/" in out


def test_notebook_with_env_cell_runs_under_nbclient(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_envs"),
        nbformat.v4.new_code_cell("%%env nbdemo --no-activate\nsix==1.17.0\n"),
        nbformat.v4.new_code_cell("%%env nbdemo\nsix==1.17.0\n"),
        nbformat.v4.new_code_cell("%envs show nbdemo"),
        nbformat.v4.new_code_cell("%env MY_FLAG=1\nimport os; print(os.environ['MY_FLAG'])"),
    ]
    # The notebook's kernel must see the same isolated data dir as this test.
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env={**os.environ})
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    second = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "Reading the cell as requirements.txt" in first
    assert "nbdemo v1 (built in" in first
    assert "jenv-nbdemo-v1" in first
    assert "nbdemo v1 (cache hit)" in second
    shown = "".join(o.get("text", "") for o in nb.cells[3].outputs)
    assert "six==1.17.0" in shown
    assert "1" in "".join(o.get("text", "") for o in nb.cells[4].outputs)
    kernels = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"
    assert (kernels / "jenv-nbdemo-v1" / "kernel.json").is_file()


def test_a_kernel_starts_from_bytecode_made_once_per_store(built: tuple[Workspace, Path]) -> None:
    """What a kernel imports at start has checked-hash bytecode in the env, compiled once per
    store: a second env links it and compiles nothing; the kernel's interpreter uses it."""
    import subprocess

    from jupyter_envs.events import Event, LogLine

    ws, _ = built
    lines: list[str] = []

    def keep(event: Event) -> None:
        if isinstance(event, LogLine) and "Bytecode for kernel start" in event.text:
            lines.append(event.text)

    second = Environment("smoke-two", pip=["six==1.17.0"]).build(ws=ws, on_event=keep)
    (line,) = lines
    assert "(0 compiled now" in line, line
    python = Path(second.artifact) / "bin" / "python"
    tag = subprocess.run(
        [str(python), "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    site = next((Path(second.artifact) / "lib").glob("python3*/site-packages"))
    pyc = site / "ipykernel" / "__pycache__" / f"kernelapp.{tag}.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b11, "a checked-hash pyc (PEP 552)"
    # The interpreter takes the module from it (and does not compile the source).
    verbose = subprocess.run(
        [str(python), "-v", "-c", "import ipykernel.kernelapp"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    assert f"code object from '{pyc}'" in verbose
    assert f"code object from '{site / 'ipykernel' / 'kernelapp.py'}'" not in verbose
    # The store holds one cache of them, not a copy per env.
    assert list((ws.root / "cache" / "bytecode" / tag).iterdir())
