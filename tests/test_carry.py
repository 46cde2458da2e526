"""A notebook carries its environment (issue #15, first part): the record written to
``metadata["jupyter_envs"]``, its checks, and rebuilding it on another machine from the lock
(``jupyter envs restore``), then running the notebook there (``jupyter envs run``).

Two stores (two Jupyter data dirs) play two machines; only the .ipynb travels between them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.store import KERNELS_DIR_VAR, STORE_VAR
from jupyter_envs.errors import SpecError
from jupyter_envs.facade.carry import carried, read_notebook
from jupyter_envs.frontends.activation import target_for
from jupyter_envs.frontends.cli import main
from jupyter_envs.spec._carried import Carried
from tests._wheels import tiny_wheel


def notebook_carrying(path: Path, record: dict[str, Any], sources: list[str]) -> Path:
    """An .ipynb whose metadata carries ``record`` (what the labextension writes)."""
    nb = new_notebook()
    nb.metadata["jupyter_envs"] = record
    nb.cells = [new_code_cell(src) for src in sources]
    nbformat.write(nb, str(path))
    return path


def machine(root: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """Make ``root`` the store the CLI uses (one "machine")."""
    monkeypatch.setenv(STORE_VAR, str(root / "store"))
    monkeypatch.setenv(KERNELS_DIR_VAR, str(root / "kernels"))
    return Workspace(root / "store", root / "kernels")


# -- the record ----------------------------------------------------------------------------------
def test_the_switch_carries_spec_lock_and_hash(workspace: Workspace) -> None:
    Environment("demo", pip=["six==1.17.0", "requests"], backend="fake").build(ws=workspace)
    record = workspace.get("demo")
    target = target_for(record)
    sent = target.message()["carried"]
    assert {k: sent[k] for k in ("format", "env", "version", "spec_hash", "backend")} == {
        "format": 1,
        "env": "demo",
        "version": 1,
        "spec_hash": record.spec_hash,
        "backend": "fake",
    }
    assert sent["lock"] == record.lock
    assert sent["spec"] == record.spec
    assert str(workspace.root) not in json.dumps(sent)  # no paths of this machine's store
    back = Carried.from_metadata(json.loads(json.dumps(sent)))
    assert back.environment().spec_hash == record.spec_hash
    assert carried(record).to_metadata() == carried(record).to_metadata()  # stable


BAD: list[tuple[str, Any, str]] = [
    ("not an object", [1], "field 'metadata.jupyter_envs': must be an object"),
    ("no format", {"env": "x"}, "has no 'format'"),
    ("future format", {"format": 2}, "format 2 is not one this version reads"),
    ("version as text", {"version": "1"}, "'metadata.jupyter_envs.version': must be an integer"),
    ("version as bool", {"version": True}, "must be an integer, got bool"),
    ("spec as list", {"spec": ["six"]}, "'metadata.jupyter_envs.spec': must be an object"),
    ("lock as number", {"lock": 5}, "'metadata.jupyter_envs.lock': must be a string"),
]


@pytest.mark.parametrize(("case", "change", "says"), BAD, ids=[c for c, _, _ in BAD])
def test_malformed_records_are_refused_naming_the_field(
    case: str, change: Any, says: str, workspace: Workspace
) -> None:
    Environment("demo", pip=["six"], backend="fake").build(ws=workspace)
    good = carried(workspace.get("demo")).to_metadata()
    data = change if not isinstance(change, dict) else {**good, **change}
    if case == "no format":
        data = {k: v for k, v in good.items() if k != "format"}
    with pytest.raises(SpecError) as info:
        Carried.from_metadata(data)
    assert says in str(info.value)


def test_a_tampered_spec_is_refused_and_nothing_is_built(
    tmp_path: Path, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    Environment("demo", pip=["six==1.17.0"], backend="fake").build(ws=workspace)
    record = carried(workspace.get("demo")).to_metadata()
    tampered = copy.deepcopy(record)
    tampered["spec"]["pip"] = ["evil==6.6.6"]
    nb = notebook_carrying(tmp_path / "t.ipynb", tampered, ["pass"])
    before = workspace.snapshot()
    assert main(["restore", str(nb), "--name", "other"]) == 1
    err = capsys.readouterr().err
    assert "does not match its spec hash" in err
    assert "metadata.jupyter_envs.spec_hash" in err
    assert workspace.snapshot() == before
    plain = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(), str(plain))
    with pytest.raises(SpecError, match="carries no environment"):
        read_notebook(plain)


# -- two machines ------------------------------------------------------------------------------
def test_restore_on_another_machine_installs_the_lock_not_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = machine(tmp_path / "a", monkeypatch)
    Environment("demo", pip=["six", "requests"], backend="fake").build(ws=a)
    record = a.get("demo")
    nb = notebook_carrying(tmp_path / "nb.ipynb", carried(record).to_metadata(), ["pass"])
    b = machine(tmp_path / "b", monkeypatch)
    assert main(["restore", str(nb)]) == 0
    out = capsys.readouterr().out
    assert "the notebook carries demo v1 (fake builder" in out
    assert "installing its 2 locked versions" in out
    restored = b.get("demo")
    assert (restored.spec_hash, restored.lock) == (record.spec_hash, record.lock)
    assert main(["restore", str(nb)]) == 0  # already here: reused as it is
    assert "demo v1 (cache hit)" in capsys.readouterr().out


@pytest.mark.integration
def test_two_machines_get_the_same_versions_and_run_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0")
    spec = f"--find-links {wheels}\njenvs-tinypkg\n"
    a = machine(tmp_path / "a", monkeypatch)
    Environment.from_text("tiny", spec).build(ws=a)
    record = a.get("tiny")
    assert "jenvs-tinypkg==1.0" in (record.lock or "")
    tiny_wheel(wheels, "2.0")  # published after the first machine built

    check = (
        "import jenvs_tinypkg, sys; assert jenvs_tinypkg.VERSION == '1.0', jenvs_tinypkg.VERSION"
    )
    meta = carried(record).to_metadata()
    good = notebook_carrying(tmp_path / "good.ipynb", meta, [check, "print('done')"])
    bad = notebook_carrying(tmp_path / "bad.ipynb", meta, ["raise ValueError('boom')"])

    b = machine(tmp_path / "b", monkeypatch)
    out_nb = tmp_path / "out.ipynb"
    assert main(["run", str(good), "-o", str(out_nb)]) == 0, capsys.readouterr().err
    assert "ran on jenv-tiny-v1" in capsys.readouterr().out
    restored = b.get("tiny")
    assert restored.lock == record.lock  # the same versions, 2.0 notwithstanding
    executed = json.loads(out_nb.read_text())
    assert executed["cells"][1]["outputs"][0]["text"] == "done\n"

    assert main(["run", str(bad)]) == 1
    assert "ValueError: boom" in capsys.readouterr().err

    # Re-resolving from the spec picks up what was published since.
    assert main(["restore", str(good), "--name", "tiny-new", "--re-resolve"]) == 0
    assert "jenvs-tinypkg==2.0" in (b.get("tiny-new").lock or "")


# -- what a restore shows first, and a lock that cannot be honoured -----------------------------
def test_restore_shows_sources_and_paths_that_differ_from_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL", "UV_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "https://known.example/simple/")
    here = tmp_path / "here"
    here.mkdir()
    spec = (
        "--index-url https://mirror.example/simple\n"
        "--extra-index-url https://known.example/simple\n"
        "--find-links /nonexistent/wheels\n"
        f"-e {here}\n"
        "six==1.17.0\n"
    )
    a = machine(tmp_path / "a", monkeypatch)
    env = Environment.from_text("src", spec)
    env.backend = "fake"
    env.build(ws=a)
    record = {**carried(a.get("src")).to_metadata(), "platform": "linux-riscv64"}
    nb = notebook_carrying(tmp_path / "nb.ipynb", record, ["pass"])
    machine(tmp_path / "b", monkeypatch)
    assert main(["restore", str(nb)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    notes = [line.strip() for line in out.splitlines() if line.strip().startswith("note:")]
    assert notes == [
        "note: it installs from the index https://mirror.example/simple, not this machine's "
        "(https://pypi.org/simple)",
        "note: it adds a package source this machine is not configured with: /nonexistent/wheels",
        f"note: it installs from the local path {here}, which exists here: check that it holds "
        "what the first machine had",
        "note: it was built on linux-riscv64 and this machine is "
        f"{carried(a.get('src')).platform}: a locked wheel made for that platform only cannot be "
        "installed here",
    ]  # the extra index this machine is configured with is not pointed out


@pytest.mark.integration
def test_a_lock_that_cannot_be_honoured_names_the_package_and_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0")
    a = machine(tmp_path / "a", monkeypatch)
    Environment.from_text("tiny", f"--find-links {wheels}\njenvs-tinypkg\n").build(ws=a)
    nb = notebook_carrying(tmp_path / "nb.ipynb", carried(a.get("tiny")).to_metadata(), ["pass"])
    # 1.0 is withdrawn from the index and 2.0 published: the lock pins a version gone.
    (wheels / "jenvs_tinypkg-1.0-py3-none-any.whl").unlink()
    tiny_wheel(wheels, "2.0")
    b = machine(tmp_path / "b", monkeypatch)
    assert main(["restore", str(nb)]) == 1
    err = capsys.readouterr().err
    assert "the notebook's lock cannot be honoured on this machine (jenvs-tinypkg==1.0)" in err
    assert "--re-resolve" in err
    assert b.names() == []  # nothing registered
    assert main(["restore", str(nb), "--re-resolve"]) == 0
    assert "jenvs-tinypkg==2.0" in (b.get("tiny").lock or "")


def test_envs_restore_in_a_notebook_reads_the_notebook_it_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    a = machine(tmp_path / "a", monkeypatch)
    Environment("demo", pip=["six", "requests"], backend="fake").build(ws=a)
    record = carried(a.get("demo")).to_metadata()
    nb = notebook_carrying(tmp_path / "nb.ipynb", record, ["pass"])
    b = machine(tmp_path / "b", monkeypatch)
    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_envs")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    result = shell.run_cell("%envs restore")
    assert "name the notebook to restore" in str(result.error_in_exec)
    # What jupyter_server tells a kernel it starts for a notebook: the notebook's path.
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    result = shell.run_cell("%envs restore")
    assert result.error_in_exec is None, result.error_in_exec
    out = capsys.readouterr().out
    assert "installing its 2 locked versions" in out
    assert "demo v1 (built in" in out
    assert "jenv-demo-v1" in out  # not in a kernel here: told which kernel to pick
    assert b.get("demo").lock == record["lock"]


def test_a_docker_lock_pins_the_base_image_digest_and_the_versions() -> None:
    from jupyter_envs.engines.builders.dockerfile import render_dockerfile

    env = Environment("img", pip=["six"], base_image="python:3.12-slim")
    digest = "python@sha256:" + "a" * 64
    lock = f"# base image: {digest}\nipykernel==6.29.5\nsix==1.16.0\n"
    text = render_dockerfile(env, environ={}, lock=lock)
    assert f"FROM {digest}\n" in text
    assert "six==1.16.0" in text
    assert "    six \\\n" not in text  # not the spec's bare "six"
    # Without a digest (a local base image), the spec's base stays.
    local = "# base image: python:3.12-slim (image sha256:" + "b" * 64 + ")\nsix==1.16.0\n"
    assert "FROM python:3.12-slim\n" in render_dockerfile(env, environ={}, lock=local)


def test_the_sources_this_machine_is_configured_with_are_not_pointed_out(
    workspace: Workspace,
) -> None:
    from jupyter_envs.facade.carry import plan
    from jupyter_envs.facade.manager import EnvManager

    env = Environment.from_text(
        "src",
        "--index-url https://mirror.example/simple/\n"
        "--extra-index-url https://extra.example/simple\n"
        "--find-links /data/wheels\nsix\n",
    )
    env.backend = "fake"
    env.build(ws=workspace)
    record = carried(workspace.get("src"))
    manager = EnvManager(workspace)
    configured = {
        "UV_DEFAULT_INDEX": "https://mirror.example/simple",
        "UV_INDEX": "team=https://extra.example/simple other=https://o.example/simple",
        "PIP_FIND_LINKS": "/data/wheels",
    }
    assert plan(manager, record, environ=configured).warnings == ()
    bare = plan(manager, record, environ={}).warnings
    assert bare == (
        "it installs from the index https://mirror.example/simple, not this machine's "
        "(https://pypi.org/simple)",
        "it adds a package source this machine is not configured with: "
        "https://extra.example/simple",
        "it adds a package source this machine is not configured with: /data/wheels",
    )
