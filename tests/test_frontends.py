"""The CLI and the magics, in-process, on the fake builder."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from jupyter_envs import Environment, Workspace
from jupyter_envs.errors import SpecError
from jupyter_envs.frontends._commands import make_parser
from jupyter_envs.frontends.cli import main
from tests._catalogue import fill


def test_cli_create_list_show_export_remove(
    tmp_path: Path, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.17.0\n")
    # The fake builder is chosen by the spec: write it as a JSON-free path via from_text + backend.
    Environment.from_text("demo", req.read_text()).clone_with(backend="fake").build(ws=workspace)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out
    assert "jenv-demo-v1" in out
    assert main(["show", "demo"]) == 0
    assert "six==1.17.0" in capsys.readouterr().out
    assert main(["export", "demo", "--format", "lock"]) == 0
    assert capsys.readouterr().out.strip() == "six==1.17.0"
    assert main(["versions", "demo"]) == 0
    assert "jenv-demo-v1" in capsys.readouterr().out
    assert main(["logs", "demo"]) == 0
    assert "+ six" in capsys.readouterr().out
    assert main(["remove", "demo"]) == 0
    assert "Removed demo (v1)" in capsys.readouterr().out
    assert main(["show", "demo"]) == 1
    assert "no environment named 'demo'" in capsys.readouterr().err


def test_cli_reports_bad_input_with_status(
    tmp_path: Path, workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bogus"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    bad = tmp_path / "requirements.txt"
    bad.write_text("six\npandas>=>1\n")
    assert main(["create", "-f", str(bad), "demo"]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err
    assert "pandas>=>1" in err
    assert main(["create", "-f", str(tmp_path / "missing.txt"), "demo"]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["show", "demo", "--version", "x"]) == 2
    assert workspace.snapshot() == {"environments": [], "versions": []}


def test_cli_list_filters_and_pages(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    names = fill(workspace, 30)

    def listed(*words: str) -> tuple[list[str], list[str]]:
        assert main(["list", *words]) == 0
        lines = capsys.readouterr().out.splitlines()
        rows = [ln.split()[0] for ln in lines[1:] if ln.startswith("env-")]
        return rows, [ln for ln in lines if ln.startswith("(more")]

    assert listed() == (names, [])
    first, more = listed("--limit", "12")
    assert first == names[:12]
    assert more == ["(more: add --after env-00011)"]
    rest, more = listed("--limit", "12", "--after", "env-00011")
    assert rest == names[12:24]
    assert listed("--prefix", "env-0002") == (names[20:30], [])
    docker, _ = listed("--backend", "docker", "--status", "ready")
    assert docker == [n for i, n in enumerate(names) if i % 4 == 3 and i % 5 != 0]
    assert main(["list", "--prefix", "zzz"]) == 0
    assert capsys.readouterr().out.strip() == "No environment matches."
    assert main(["list", "--status", "gone"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["list", "--limit", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_every_cli_argument_has_help() -> None:
    parser = make_parser("jupyter envs")
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{verb} {action.dest}"
        for verb, sub in verbs.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []
    assert all(choice.help for choice in verbs._choices_actions)


def test_cli_curated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curated"]) == 0
    assert "scientific" in capsys.readouterr().out


@pytest.fixture
def shell(isolated_jupyter: Path) -> InteractiveShell:
    start_ipython()  # makes the global test shell once per process
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_envs")
    return ip


def test_env_cell_magic_builds_and_reports(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell_magic("env", "demo --backend fake --env FLAG=1", "six\n")
    out = capsys.readouterr().out
    assert "Reading the cell as requirements.txt" in out
    assert "demo v1 (built in" in out
    assert "jenv-demo-v1" in out
    assert Environment.get("demo").env_vars == {"FLAG": "1"}
    shell.run_cell_magic("env", "demo --backend fake --env FLAG=1", "six\n")
    assert "demo v1 (cache hit)" in capsys.readouterr().out


def test_env_cell_reads_files_next_to_the_notebook(
    shell: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-r, -c and -e in a cell are the notebook's neighbours (a kernel runs in its folder)."""
    notebook = tmp_path / "project"
    (notebook / "lib").mkdir(parents=True)
    (notebook / "lib" / "pyproject.toml").write_text('[project]\nname = "lib"\n')
    (notebook / "base.txt").write_text("six\n")
    (notebook / "constraints.txt").write_text("six<2\n")
    monkeypatch.chdir(notebook)
    cell = "-r base.txt\n-c constraints.txt\n-e ./lib\n"
    shell.run_cell_magic("env", "local --backend fake --no-activate", cell)
    out = capsys.readouterr().out
    assert "Reading the cell as requirements.txt (to read it otherwise: --format conda" in out
    assert "It installs from this machine's files" in out
    assert str(notebook / "lib") in out
    env = Environment.get("local")
    assert (env.pip_requirements, env.pip_constraints) == (("six",), ("six<2",))
    assert env.pip_options == (f"-e {notebook / 'lib'}",)
    result = shell.run_cell("%%env missing --backend fake\n-r nothere.txt\n")
    assert result.error_in_exec is not None
    assert f"looked for {notebook / 'nothere.txt'}" in str(result.error_in_exec)


def test_ipython_env_line_magic_still_works(shell: InteractiveShell) -> None:
    shell.run_line_magic("env", "JUPYTER_ENVS_TEST_FLAG=yes")
    assert shell.run_line_magic("env", "JUPYTER_ENVS_TEST_FLAG") == "yes"


def test_magic_errors_are_messages_not_tracebacks(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%%env demo --backend fake\nsix\npandas>=>1\n")
    assert isinstance(result.error_in_exec, SpecError)
    out = capsys.readouterr()
    shown = out.out + out.err
    assert "SpecError: line 2" in shown
    assert "Traceback" not in shown
    result = shell.run_cell("%%env ../x\nsix\n")
    assert isinstance(result.error_in_exec, SpecError)
    result = shell.run_cell("%%env demo --bogus\nsix\n")
    assert isinstance(result.error_in_exec, SpecError)
    assert "unrecognized arguments: --bogus" in str(result.error_in_exec)


def test_envs_line_magic_verbs(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell_magic("env", "demo --backend fake", "six==1.17.0\n")
    capsys.readouterr()
    shell.run_line_magic("envs", "list")
    assert "jenv-demo-v1" in capsys.readouterr().out
    shell.run_line_magic("envs", "export demo --format requirements")
    assert capsys.readouterr().out.strip() == "six==1.17.0"
    shell.run_line_magic("envs", "remove demo")
    assert "Removed demo" in capsys.readouterr().out
    result = shell.run_cell("%envs show demo")
    assert "no environment named 'demo'" in str(result.error_in_exec)


def test_env_cell_push_needs_a_registry_and_an_image(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTER_ENVS_REGISTRY", raising=False)
    result = shell.run_cell("%%env demo --backend fake --push --no-activate\nsix\n")
    assert isinstance(result.error_in_exec, SpecError)
    assert result.error_in_exec.field == "registry"
    assert "--push needs a registry" in str(result.error_in_exec)
    # A registry named (here through the variable): only Docker environments have an image.
    monkeypatch.setenv("JUPYTER_ENVS_REGISTRY", "127.0.0.1:5000/team")
    result = shell.run_cell("%%env demo --backend fake --push --no-activate\nsix\n")
    assert isinstance(result.error_in_exec, SpecError)
    assert "only Docker environments have an image to push" in str(result.error_in_exec)
    result = shell.run_cell("%%env demo --backend fake --registry http://x --no-activate\nsix\n")
    assert isinstance(result.error_in_exec, SpecError)
    assert "without a scheme" in str(result.error_in_exec)
