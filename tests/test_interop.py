"""Environments carried the way other tools carry them (issue #15, interoperability): juv
notebooks (a PEP 723 cell, ``metadata["uv.lock"]``), marimo sandbox / ``uv run`` scripts, PEP 751
``pylock.toml``; and ours written their way (``jupyter envs juv``, ``export --format pep723``
and ``--format pylock``).

Real uv against a find-links folder of wheels made here (``tests/_wheels.py``): a version pinned
by a lock must survive a newer release published afterwards.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.builders.uv import find_uv
from jupyter_envs.engines.store import KERNELS_DIR_VAR, STORE_VAR
from jupyter_envs.errors import SpecError
from jupyter_envs.facade.carry import carried, read_notebook
from jupyter_envs.frontends.cli import main
from jupyter_envs.spec._pep723 import read_script_metadata, render_block
from tests._wheels import tiny_wheel


def machine(root: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv(STORE_VAR, str(root / "store"))
    monkeypatch.setenv(KERNELS_DIR_VAR, str(root / "kernels"))
    return Workspace(root / "store", root / "kernels")


def uv_lock_script(script: Path) -> str:
    """What juv and ``uv lock --script`` write: run uv itself, not our helper."""
    uv = find_uv()
    assert uv is not None
    subprocess.run([uv, "lock", "--script", str(script), "-q"], check=True)
    return script.with_name(script.name + ".lock").read_text()


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    tiny_wheel(folder, "1.0")
    return folder


def tiny_block(wheels: Path) -> str:
    return (
        "# /// script\n"
        '# requires-python = ">=3.10"\n'
        '# dependencies = ["jenvs-tinypkg"]\n'
        "#\n"
        "# [tool.uv]\n"
        f'# find-links = ["{wheels}"]\n'
        "# ///\n"
    )


def juv_notebook(path: Path, block: str, uv_lock: str | None) -> Path:
    """A notebook as juv writes one: the block in a hidden first code cell, the lock in the
    notebook's metadata."""
    nb = new_notebook()
    nb.cells = [
        new_code_cell(block.rstrip("\n"), metadata={"jupyter": {"source_hidden": True}}),
        new_code_cell("import jenvs_tinypkg\nprint(jenvs_tinypkg.VERSION)"),
    ]
    if uv_lock is not None:
        nb.metadata["uv.lock"] = uv_lock
    nbformat.write(nb, str(path))
    return path


# -- reading -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_juv_notebook_restores_from_its_uv_lock(
    tmp_path: Path,
    wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = tmp_path / "lockme.py"
    script.write_text(tiny_block(wheels))
    uv_lock = uv_lock_script(script)
    tiny_wheel(wheels, "2.0")  # published after juv locked the notebook
    nb = juv_notebook(tmp_path / "My Analysis.ipynb", tiny_block(wheels), uv_lock)
    store = machine(tmp_path / "b", monkeypatch)
    out_nb = tmp_path / "out.ipynb"
    assert main(["run", str(nb), "-o", str(out_nb)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "the notebook carries my-analysis v1 (venv builder)" in out
    assert "installing its 1 locked versions" in out
    assert "jenvs-tinypkg==1.0" in (store.get("my-analysis").lock or "")
    executed = json.loads(out_nb.read_text())
    assert executed["cells"][1]["outputs"][0]["text"] == "1.0\n"  # the lock's, not 2.0

    # Without its lock, the block is resolved anew: the newest release.
    bare = juv_notebook(tmp_path / "bare.ipynb", tiny_block(wheels), None)
    assert main(["restore", str(bare)]) == 0
    assert "resolving its spec anew: jenvs-tinypkg" in capsys.readouterr().out
    assert "jenvs-tinypkg==2.0" in (store.get("bare").lock or "")


@pytest.mark.integration
def test_a_marimo_sandbox_script_restores_from_its_block_and_its_lock(
    tmp_path: Path,
    wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        tiny_block(wheels)
        + "\nimport marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    return\n"
    )
    uv_lock_script(app)  # app.py.lock, where uv keeps a script's lock
    tiny_wheel(wheels, "2.0")
    store = machine(tmp_path / "b", monkeypatch)
    assert main(["restore", str(app)]) == 0, capsys.readouterr().err
    assert "jenvs-tinypkg==1.0" in (store.get("app").lock or "")
    app.with_name("app.py.lock").unlink()
    assert main(["restore", str(app), "--name", "app-new"]) == 0
    assert "jenvs-tinypkg==2.0" in (store.get("app-new").lock or "")


# -- writing -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_our_notebook_written_for_juv_and_exported_as_pep723_and_pylock(
    tmp_path: Path,
    wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = machine(tmp_path / "a", monkeypatch)
    Environment.from_text("tiny", f"--find-links {wheels}\njenvs-tinypkg\n").build(ws=a)
    record = a.get("tiny")
    nb = new_notebook()
    nb.metadata["jupyter_envs"] = carried(record).to_metadata()
    nb.cells = [new_code_cell("import jenvs_tinypkg")]
    path = tmp_path / "ours.ipynb"
    nbformat.write(nb, str(path))
    tiny_wheel(wheels, "2.0")

    assert main(["juv", str(path)]) == 0, capsys.readouterr().err
    assert main(["juv", str(path)]) == 0  # again: the cell is refreshed, not repeated
    assert "Wrote this PEP 723 cell and a uv.lock of 1 packages" in capsys.readouterr().out
    written = nbformat.read(str(path), as_version=4)
    blocks = [c for c in written.cells if "# /// script" in c.source]
    assert len(blocks) == 1
    assert written.cells[0].metadata["jupyter"] == {"source_hidden": True}
    meta = read_script_metadata(written.cells[0].source)
    assert meta is not None
    assert meta.dependencies == ("jenvs-tinypkg",)
    assert "jenvs-tinypkg==1.0" in meta.constraints  # the lock's versions, for uv and juv
    assert f"--find-links {wheels}" in meta.pip_options
    assert 'name = "jenvs-tinypkg"\nversion = "1.0"' in written.metadata["uv.lock"]

    # What juv sees: only its two things (our record removed): the same version, 2.0
    # notwithstanding.
    del written.metadata["jupyter_envs"]
    nbformat.write(written, str(path))
    b = machine(tmp_path / "b", monkeypatch)
    assert main(["restore", str(path)]) == 0, capsys.readouterr().err
    assert "jenvs-tinypkg==1.0" in (b.get("ours").lock or "")

    machine(tmp_path / "a", monkeypatch)
    assert main(["export", "tiny", "--format", "pep723"]) == 0
    exported = read_script_metadata(capsys.readouterr().out)
    assert exported is not None
    assert "jenvs-tinypkg==1.0" in exported.constraints
    pylock = tmp_path / "pylock.toml"
    assert main(["export", "tiny", "--format", "pylock", "-o", str(pylock)]) == 0
    text = pylock.read_text()
    assert 'name = "jenvs-tinypkg"\nversion = "1.0"' in text
    assert "sha256" in text
    # ... and a pylock.toml builds: the same version, its hash checked.
    assert main(["create", "-f", str(pylock), "from-pylock"]) == 0, capsys.readouterr().err
    assert "Read " + str(pylock) + " as pylock.toml." in capsys.readouterr().out
    assert "jenvs-tinypkg==1.0" in (a.get("from-pylock").lock or "")


def test_juv_needs_a_record_and_is_refused_in_a_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_jupyter: Path
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    path = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(), str(path))
    assert main(["juv", str(path)]) == 1
    assert "carries no jupyter-envs environment record" in capsys.readouterr().err
    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_envs")
    result = shell.run_cell(f"%envs juv {path}")
    assert "rewrites the notebook file" in str(result.error_in_exec)


# -- bad input -------------------------------------------------------------------------------------
def test_blocks_and_lock_files_that_are_wrong_say_where() -> None:
    with pytest.raises(SpecError, match=r"from line 2\) is not valid TOML"):
        read_script_metadata("x = 1\n# /// script\n# dependencies = [\n# ///\n")
    two = "# /// script\n# dependencies = []\n# ///\n"
    with pytest.raises(SpecError, match="has 2 '# /// script' blocks"):
        read_script_metadata(two + "\nx = 1\n\n" + two)
    with pytest.raises(SpecError, match=r"'script\.dependencies'"):
        read_script_metadata('# /// script\n# dependencies = "six"\n# ///\n')
    with pytest.raises(SpecError, match="line 2, field 'pip': not a valid requirement"):
        Environment.from_text("x", '# /// script\n# dependencies = ["six ==== 1"]\n# ///\n')
    with pytest.raises(SpecError, match=r"lock-version '2\.0' is not one this version reads"):
        Environment.from_text("x", 'lock-version = "2.0"\n[[packages]]\nname = "six"\n', "pylock")
    with pytest.raises(SpecError, match=r"'pylock.packages\[0\].version'"):
        Environment.from_text("x", 'lock-version = "1.0"\n[[packages]]\nname = "six"\n', "pylock")
    with pytest.raises(SpecError, match="lists no"):
        Environment.from_text("x", 'lock-version = "1.0"\npackages = []\n', "pylock")


def test_a_cell_or_file_with_a_block_or_a_pylock_is_detected() -> None:
    block = render_block(
        ["six", "requests<3"],
        requires_python=">=3.10",
        pip_options=["--index-url https://mirror.example/simple", "--find-links /w"],
        constraints=["six==1.17.0"],
    )
    env = Environment.from_text("x", "# a cell for uv run\n" + block)
    assert env.detected_format == "PEP 723 script block"
    assert (env.pip_requirements, env.python.version) == (("six", "requests<3"), ">=3.10")
    assert env.pip_options == ("--index-url https://mirror.example/simple", "--find-links /w")
    assert env.pip_constraints == ("six==1.17.0",)
    lock = (
        'lock-version = "1.0"\nrequires-python = ">=3.11"\n\n[[packages]]\nname = "six"\n'
        'version = "1.17.0"\nindex = "https://mirror.example/simple"\n'
        'wheels = [{ url = "https://x/six-1.17.0-py2.py3-none-any.whl", '
        'hashes = { sha256 = "' + "a" * 64 + '" } }]\n\n'
        '[[packages]]\nname = "pkg"\nvcs = { type = "git", url = "https://g/pkg", '
        'commit-id = "' + "b" * 40 + '" }\n'
    )
    env = Environment.from_text("y", lock)
    assert env.detected_format == "pylock.toml"
    assert env.pip_requirements[0].startswith("six==1.17.0 --hash=sha256:aaaa")
    assert env.pip_requirements[1] == f"pkg @ git+https://g/pkg@{'b' * 40}"
    assert env.pip_options == ("--index-url https://mirror.example/simple",)


def test_a_notebook_with_nothing_to_restore_says_so(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    nb = new_notebook()
    nb.cells = [new_code_cell("# just a comment")]
    nbformat.write(nb, str(path))
    with pytest.raises(SpecError, match="a juv notebook's PEP 723 cell is read too"):
        read_notebook(path)
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    with pytest.raises(SpecError, match=r"no '# /// script' block \(PEP 723\)"):
        read_notebook(script)
