"""Malformed input: every entry point refuses it with a message naming the field (and the line,
for text), and the registry, the store's files and the kernelspecs are left exactly as they were.

Each case goes through an entry point users use: ``Environment(...).build(ws=...)``,
``Environment.from_text`` / the file constructors, :class:`EnvManager`, or the CLI's ``main``.
Specs that would (wrongly) get as far as a build use the fake builder, so nothing here touches
the network, except the one integration test at the end, which asks the real index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_envs import (
    BackendUnavailableError,
    BuildError,
    Environment,
    EnvManager,
    EnvsError,
    SpecError,
    Workspace,
)
from jupyter_envs.frontends.cli import main

Run = Callable[[Workspace, Path], object]


@dataclass(frozen=True)
class Bad:
    """One malformed input: how to submit it, and what the refusal must say."""

    id: str
    run: Run
    field: str | None
    line: int | None = None
    says: tuple[str, ...] = ()
    never_says: tuple[str, ...] = ()
    error: type[EnvsError] = SpecError


# -- entry points ----------------------------------------------------------------------------------
def text(spec: str, fmt: str | None = None) -> Run:
    """Spec text, as a %%env cell or the REST API submits it, then built."""

    def run(ws: Workspace, tmp: Path) -> object:
        env = Environment.from_text("bad", spec, format=fmt)
        env.backend = "fake"  # never reached; if it were, no real install would start
        return env.build(ws=ws)

    return run


def req_file(spec: str) -> Run:
    def run(ws: Workspace, tmp: Path) -> object:
        path = tmp / "requirements.txt"
        path.write_text(spec)
        env = Environment.from_pip_requirements("bad", path)
        env.backend = "fake"
        return env.build(ws=ws)

    return run


def yml_file(spec: str) -> Run:
    def run(ws: Workspace, tmp: Path) -> object:
        path = tmp / "environment.yml"
        path.write_text(spec)
        env = Environment.from_conda_specification("bad", path)
        env.backend = "fake"
        return env.build(ws=ws)

    return run


def ctor(name: str = "bad", **kwargs: Any) -> Run:
    """The direct constructor, then a build."""
    kwargs.setdefault("backend", "fake")
    return lambda ws, tmp: Environment(name, **kwargs).build(ws=ws)


def then(change: Callable[[Environment], None]) -> Run:
    """A valid spec, changed by assignment (as AzureML users do), then built."""

    def run(ws: Workspace, tmp: Path) -> object:
        env = Environment("bad", pip=["six"], backend="fake")
        change(env)
        return env.build(ws=ws)

    return run


PIP_OPTIONS = "supported: --index-url"

CASES = [
    # requirements.txt text: bad requirement lines
    Bad("req-double-operator", text("pandas>=>1\n"), "pip", 1, ("pandas>=>1",)),
    Bad("req-empty-arbitrary-equality", text("six\npandas===\n"), "pip", 2, ("pandas===",)),
    Bad("req-dangling-marker", text("numpy;\n"), "pip", 1, ("numpy;",)),
    Bad("req-empty-url", text("x @ \n"), "pip", 1, ("URL",)),
    Bad("req-space-version", text("six\npandas 2.0\n"), "pip", 2, ("pandas 2.0",)),
    Bad("req-caret", text("pandas^2\n"), "pip", 1, ("pandas^2",)),
    Bad("req-continued-line", text("six\npandas \\\n  >=>1\n"), "pip", 2, ("pandas",)),
    # requirements.txt text: shell metacharacters
    Bad("req-shell-semicolon", text("pandas; rm -rf /\n"), "pip", 1, ("rm -rf /",)),
    Bad("req-command-substitution", text("six\n$(reboot)\n"), "pip", 2, ("$(reboot)",)),
    Bad("req-pipe", text("a|b\n"), "pip", 1, ("a|b",)),
    Bad("req-backticks", text("six\n`reboot`\n"), "pip", 2, ("`reboot`",)),
    Bad("req-and-and", text("pandas && curl x | sh\n"), "pip", 1, ("&&",)),
    Bad("req-redirect", text("pandas > /etc/passwd\n"), "pip", 1, ("/etc/passwd",)),
    # requirements.txt text: conflicts and options
    Bad(
        "req-conflicting-pins",
        text("six==1.16\nnumpy\nsix==1.17\n"),
        "pip",
        3,
        ("'six'", "six==1.16' (line 1)", "six==1.17' (line 3)"),
    ),
    Bad("req-pin-vs-range", text("six>=1.17\nsix==1.16\n"), "pip", 2, ("(line 1)", "(line 2)")),
    Bad("req-editable", text("-e .\n"), "pip", 1, ("'-e .'", "relative path")),
    Bad(
        "req-constraints",
        text("six\n-c constraints.txt\n"),
        "pip",
        2,
        ("'-c constraints.txt'", "relative path"),
    ),
    Bad("req-trusted-host", text("--trusted-host example.org\nsix\n"), "pip", 1, ("'--trusted",)),
    Bad("req-include-in-text", text("-r other.txt\n"), "pip", 1, ("'-r other.txt'", "no folder")),
    Bad("req-index-without-url", text("--index-url\nsix\n"), "pip", 1, ("needs a value",)),
    Bad("req-only-options", text("-i https://example.org/simple\n"), "pip", None, ("no req",)),
    # empty specs
    Bad("empty-text", text(""), "text", None, ("the spec is empty",)),
    Bad("blank-and-comments", text("# nothing yet\n\n   \n"), "text", None, ("empty",)),
    # files: the message also names the file
    Bad("req-file-bad-line", req_file("six\nnumpy==\n"), "pip", 2, ("requirements.txt, line 2",)),
    Bad("req-file-constraints", req_file("-c c.txt\n"), "pip", 1, ("requirements.txt, line 1",)),
    Bad(
        "yml-file-unknown-key",
        yml_file("name: x\nbuild: fast\ndependencies: [numpy]\n"),
        "conda",
        2,
        ("environment.yml, line 2", "unknown key 'build'"),
    ),
    # environment.yml text
    Bad("yaml-unclosed-bracket", text("name: x\ndependencies: [numpy, pandas\n"), "conda", 3),
    Bad(
        "yaml-bad-indent",
        text("name: x\ndependencies:\n  - numpy\n - pandas\n"),
        "conda",
        4,
        ("YAML",),
    ),
    Bad("yaml-is-a-list", text("- numpy\n- pandas\n"), "conda", None, ("must be a mapping",)),
    Bad("yaml-is-a-scalar", text("numpy\n", "conda"), "conda", None, ("must be a mapping",)),
    Bad(
        "yaml-unknown-top-level-key",
        text("name: x\ndependencies:\n  - numpy\nbuild: fast\n"),
        "conda",
        4,
        ("unknown key 'build'", "known keys: name, channels, dependencies"),
    ),
    Bad(
        "yaml-pip-not-a-list",
        text("name: x\ndependencies:\n  - python=3.11\n  - pip: requests\n"),
        "conda",
        4,
        ("'pip' must be a list",),
    ),
    Bad("yaml-deps-not-a-list", text("name: x\ndependencies: numpy\n"), "conda", 2, ("list",)),
    Bad("yaml-channels-string", text("channels: conda-forge\ndependencies: [numpy]\n"), "conda", 1),
    Bad(
        "yaml-two-pip-lists",
        text("dependencies:\n  - pip\n  - pip:\n    - six\n  - pip:\n    - requests\n"),
        "conda",
        5,
        ("only one nested 'pip:' list",),
    ),
    Bad("yaml-dependency-number", text("dependencies:\n  - 3.11\n"), "conda", 2, ("string",)),
    Bad(
        "yaml-conda-shell",
        text("dependencies:\n  - numpy; rm -rf /\n"),
        "conda_dependencies",
        2,
        ("numpy; rm -rf /",),
    ),
    Bad(
        "yaml-conda-substitution",
        text("dependencies:\n  - python=3.11\n  - $(reboot)\n"),
        "conda_dependencies",
        3,
    ),
    Bad(
        "yaml-pip-shell",
        text("dependencies:\n  - pip:\n    - 'six; rm -rf /'\n"),
        "pip",
        3,
        ("six; rm -rf /",),
    ),
    Bad(
        "yaml-conflicting-pins",
        text("dependencies:\n  - pip:\n    - six==1.16\n    - requests\n    - six==1.17\n"),
        "pip",
        5,
        ("(line 3)", "(line 5)"),
    ),
    Bad(
        "yaml-duplicate-key",
        text("name: a\ndependencies: [numpy]\ndependencies: [pandas]\n"),
        "conda",
        3,
        ("duplicate key 'dependencies'",),
    ),
    Bad(
        "yaml-bad-python",
        text("dependencies:\n  - python=abc\n  - numpy\n"),
        "conda_dependencies",
        2,
        ("invalid Python version",),
    ),
    Bad("yaml-python2", text("dependencies:\n  - python=2.7\n"), "conda_dependencies", 2),
    Bad(
        "yaml-bad-variable-name",
        text("dependencies:\n  - numpy\nvariables:\n  1BAD: x\n"),
        "variables",
        4,
        ("'1BAD'",),
    ),
    Bad("yaml-variables-list", text("dependencies: [numpy]\nvariables: [A]\n"), "conda", 2),
    Bad(
        "yaml-bad-channel",
        text("channels:\n  - bad channel\ndependencies: [numpy]\n"),
        "channels",
        2,
    ),
    Bad("yaml-no-dependencies", text("name: x\nchannels: [conda-forge]\n"), "conda", None, ("no",)),
    # Dockerfile text
    Bad(
        "dockerfile-without-from",
        text("RUN pip install six\n"),
        "docker.base_dockerfile",
        1,
        ("must start with FROM",),
    ),
    Bad(
        "dockerfile-from-after-other",
        text("# base\n\nCOPY . /app\nFROM python:3.12\n", "dockerfile"),
        "docker.base_dockerfile",
        3,
        ("COPY . /app",),
    ),
    Bad("unknown-format", text("six\n", "rpm"), "format", None, ("unknown format 'rpm'",)),
    # names
    Bad("name-dotdot", ctor("../x"), "name", None, ("'../x'",)),
    Bad("name-space", ctor("a b"), "name", None, ("'a b'",)),
    Bad("name-upper", ctor("A"), "name", None, ("'A'",)),
    Bad("name-empty", ctor(""), "name", None, ("''",)),
    Bad("name-64-chars", ctor("a" * 64), "name", None, ("1-63",)),
    Bad("name-leading-dash", ctor("-x"), "name", None, ("'-x'",)),
    Bad("name-slash", ctor("x/y"), "name", None, ("no path separators",)),
    Bad("name-from-text", lambda ws, tmp: Environment.from_text("../x", "six"), "name"),
    # the other constructor fields
    Bad("pip-list-entry", ctor(pip=["six", "pandas>=>1"]), "pip", None, ("pandas>=>1",)),
    Bad("python-2", ctor(python="2.7"), "python", None, ("'2.7'",)),
    Bad("python-garbage", ctor(python=">=banana"), "python", None, ("'>=banana'",)),
    Bad("env-var-digit", ctor(env_vars={"1BAD": "x"}), "env_vars", None, ("'1BAD'",)),
    Bad("env-var-dash", ctor(env_vars={"A-B": "x"}), "env_vars", None, ("'A-B'",)),
    Bad("env-var-none", ctor(env_vars={"A": None}), "env_vars", None, ("value of A",)),
    Bad(
        "secrets-with-values",
        ctor(secrets={"API_TOKEN": "s3cr3t"}),
        "secrets",
        None,
        ("names only",),
        ("s3cr3t",),
    ),
    Bad(
        "secret-assignment",
        ctor(secrets=["API_TOKEN=s3cr3t"]),
        "secrets",
        None,
        ("API_TOKEN=",),
        ("s3cr3t",),
    ),
    Bad("cpu-negative", ctor(resources={"cpu": -1}), "resources.cpu", None, ("-1",)),
    Bad("cpu-zero", ctor(resources={"cpu": 0}), "resources.cpu"),
    Bad("memory-words", ctor(resources={"memory": "lots"}), "resources.memory", None, ("lots",)),
    Bad("gpu-negative", ctor(resources={"gpu": -1}), "resources.gpu"),
    Bad("resources-unknown", ctor(resources={"cpus": 2}), "resources", None, ("cpus",)),
    Bad("depends-on-path", ctor(depends_on=["../base"]), "depends_on", None, ("'../base'",)),
    Bad("depends-on-itself", ctor(depends_on=["bad"]), "depends_on", None, ("itself",)),
    Bad("image-shell", ctor(base_image="python:3.12;rm -rf /"), "docker.base_image"),
    Bad("image-subst", ctor(image="$(reboot)"), "image", None, ("$(reboot)",)),
    Bad("apt-shell", ctor(apt_packages=["curl && reboot"]), "docker.apt_packages"),
    Bad("pip-option-editable", ctor(pip_options=["-e ."]), "pip_options", None, ("'-e .'",)),
    Bad("backend-not-identifier", ctor(backend="no way"), "backend"),
    Bad(
        "interpreter-relative",
        then(lambda env: setattr(env.python, "interpreter_path", "python3")),
        "python.interpreter_path",
        None,
        ("absolute",),
    ),
    Bad(
        "conda-not-conda",
        then(lambda env: setattr(env.python, "conda_dependencies", "numpy")),
        "python.conda_dependencies",
    ),
    Bad(
        "dict-python-string",
        lambda ws, tmp: Environment.from_dict({"name": "bad", "python": "3.11"}).build(ws=ws),
        "python",
    ),
    # backends that cannot build here
    Bad(
        "backend-unknown",
        ctor(pip=["six"], backend="nope"),
        None,
        None,
        ("'nope' builder", "no builder of that name"),
        error=BackendUnavailableError,
    ),
    Bad(
        "backend-docker",
        ctor(pip=["six"], base_image="python:3.12", backend=None),
        None,
        None,
        ("'docker' builder", "needed by environment 'bad'"),
        error=BackendUnavailableError,
    ),
    # the manager façade
    Bad("manager-build-path", lambda ws, tmp: EnvManager(ws).build_named("../x"), "name"),
    Bad("manager-remove-upper", lambda ws, tmp: EnvManager(ws).remove("Demo"), "name"),
    Bad("get-slash", lambda ws, tmp: Environment.get("x/y", ws=ws), "name"),
]


def _state(ws: Workspace) -> tuple[object, ...]:
    """Everything a refused input must leave alone."""
    files = sorted(
        str(p.relative_to(ws.root)) for sub in ("envs", "logs") for p in (ws.root / sub).rglob("*")
    )
    kernels = sorted(p.name for p in ws.kernels_dir.iterdir()) if ws.kernels_dir.is_dir() else []
    builds = {name: ws.builds(name) for name in ("demo", "bad", "x")}
    return ws.snapshot(), files, kernels, builds


@pytest.fixture
def populated(workspace: Workspace) -> Workspace:
    """A registry that already holds a built environment, so "unchanged" means something."""
    Environment("demo", pip=["six==1.17.0"], backend="fake").build(ws=workspace)
    assert workspace.snapshot()["versions"]
    return workspace


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_refused_and_changes_nothing(
    populated: Workspace, tmp_path: Path, case: Bad, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Docker specs must be refused here as on a machine without an engine.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    before = _state(populated)
    with pytest.raises(case.error) as info:
        case.run(populated, tmp_path)
    err = info.value
    message = str(err)
    if isinstance(err, SpecError):
        assert err.field == case.field, message
        if case.line is not None:
            assert err.line == case.line, message
            assert f"line {case.line}" in message
        else:
            assert err.line is None, message
            assert f"field '{case.field}'" in message
    for fragment in case.says:
        assert fragment in message
    for secret in case.never_says:
        assert secret not in message
    assert "Traceback" not in message
    assert _state(populated) == before


# -- the CLI ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadCli:
    id: str
    argv: list[str]
    code: int
    says: tuple[str, ...]
    file: str | None = None  # written to SPEC before running


SPEC = "{spec}"

CLI_CASES = [
    BadCli(
        "create-bad-line",
        ["create", "-f", SPEC, "bad"],
        1,
        ("line 2", "pandas>=>1"),
        "six\npandas>=>1\n",
    ),
    BadCli(
        "create-conflict",
        ["create", "-f", SPEC, "bad"],
        1,
        ("line 1", "line 2", "six==1.17"),
        "six==1.16\nsix==1.17\n",
    ),
    BadCli(
        "create-shell",
        ["create", "-f", SPEC, "bad"],
        1,
        ("line 1", "$(reboot)"),
        "$(reboot)\n",
    ),
    BadCli(
        "create-unknown-yaml-key",
        ["create", "-f", SPEC, "bad"],
        1,
        ("line 2", "unknown key 'build'"),
        "name: x\nbuild: fast\ndependencies: [numpy]\n",
    ),
    BadCli(
        "create-broken-yaml",
        ["create", "-f", SPEC, "bad"],
        1,
        ("line 4", "not valid YAML"),
        "name: x\ndependencies:\n  - numpy\n - pandas\n",
    ),
    BadCli(
        "create-dockerfile-without-from",
        ["create", "-f", SPEC, "bad", "--format", "dockerfile"],
        1,
        ("line 1", "must start with FROM"),
        "RUN echo hi\n",
    ),
    BadCli("create-empty-file", ["create", "-f", SPEC, "bad"], 1, ("field 'text'", "empty"), ""),
    BadCli(
        "create-missing-file",
        ["create", "-f", "/nonexistent/requirements.txt", "bad"],
        1,
        ("field 'file'", "file not found"),
    ),
    BadCli(
        "create-unknown-format",
        ["create", "-f", SPEC, "bad", "--format", "rpm"],
        1,
        ("field 'format'", "unknown format 'rpm'"),
        "six\n",
    ),
    BadCli(
        "create-bad-name",
        ["create", "-f", SPEC, "../x"],
        1,
        ("field 'name'", "'../x'"),
        "six\n",
    ),
    BadCli(
        "create-bad-python",
        ["create", "-f", SPEC, "bad", "--python", "banana"],
        1,
        ("field 'python'", "'banana'"),
        "six\n",
    ),
    BadCli("build-bad-name", ["build", "A"], 1, ("field 'name'", "'A'")),
    BadCli("remove-bad-name", ["remove", "x/y"], 1, ("field 'name'",)),
    BadCli("create-without-file", ["create", "bad"], 2, ("-f/--file",)),
    BadCli("unknown-verb", ["destroy", "demo"], 2, ("invalid choice: 'destroy'",)),
    BadCli("version-zero", ["show", "demo", "--version", "0"], 2, ("versions start at 1",)),
    BadCli("export-unknown-format", ["export", "demo", "--format", "rpm"], 2, ("invalid choice",)),
    BadCli("no-verb", [], 2, ("usage",)),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_refuses_malformed_input(
    populated: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: BadCli
) -> None:
    spec = tmp_path / "spec.txt"
    if case.file is not None:
        spec.write_text(case.file)
    argv = [str(spec) if word == SPEC else word for word in case.argv]
    capsys.readouterr()
    before = _state(populated)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.code, err
    stream = err if argv else out + err  # no verb: the usage goes to stdout
    for fragment in case.says:
        assert fragment in stream
    if code == 1:
        assert err.startswith("error: ")
        assert "Traceback" not in err
    assert _state(populated) == before


# -- a real index ----------------------------------------------------------------------------------
@pytest.mark.integration
def test_real_build_of_a_missing_package_fails_cleanly(workspace: Workspace) -> None:
    """uv against the real index: an unknown project fails the build and changes nothing."""
    Environment("demo", pip=["six==1.17.0"], backend="fake").build(ws=workspace)
    before = workspace.snapshot()
    missing = "jupyter-envs-no-such-package-xyz"
    env = Environment("ghost", pip=[f"{missing}==1.0"])
    assert env.backend == "venv"
    with pytest.raises(BuildError) as info:
        env.build(ws=workspace)
    # The summary line itself (not only the log tail) names the package the index lacks.
    assert missing in info.value.message
    assert missing in str(info.value)
    assert info.value.env_name == "ghost"
    assert info.value.log_path is not None
    assert Path(info.value.log_path).is_file()
    assert workspace.snapshot() == before
    assert [b.status for b in workspace.builds("ghost")] == ["failed"]
    env_dir = workspace.env_dir("ghost")
    leftovers = list(env_dir.iterdir()) if env_dir.is_dir() else []
    assert leftovers == [], leftovers
    assert not list(workspace.kernels_dir.glob("jenv-ghost-*"))
