"""``Environment``: construction, validation of every field, constructors, hashing, detection.

Fast and offline: nothing here installs anything; builds use the fake builder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_envs import (
    BackendUnavailableError,
    CondaDependencies,
    Environment,
    Resources,
    SpecError,
    Workspace,
)


def spec_error(fn: Callable[[], object], field: str) -> SpecError:
    """Run ``fn``, which must raise a SpecError about ``field``; return it."""
    with pytest.raises(SpecError) as info:
        fn()
    assert info.value.field == field, str(info.value)
    if info.value.line is None:
        assert f"field '{field}'" in str(info.value)
    return info.value


# -- the direct constructor ----------------------------------------------------------------------
def test_constructor_normalises_and_keeps_every_field() -> None:
    env = Environment(
        "demo",
        description="a demo",
        python="3.11",
        pip=["Pandas>=2", "requests[Socks,security]", "Zope.Interface"],
        pip_options=["-i https://example.org/simple"],
        env_vars={"MODE": "fast", "N": 2, "RATIO": 0.5},  # type: ignore[dict-item]
        secrets=["API_TOKEN"],
        resources=Resources(cpu=2, memory="2Gi", gpu=1),
        depends_on=["base"],
        interruptible=True,
        pod_template={"spec": {"nodeSelector": {"pool": "gpu"}}},
    )
    assert env.name == "demo"
    assert env.description == "a demo"
    assert env.python.version == "3.11"
    assert env.pip_requirements == ("pandas>=2", "requests[security,socks]", "zope-interface")
    assert env.pip_options == ("--index-url https://example.org/simple",)
    assert env.env_vars == {"MODE": "fast", "N": "2", "RATIO": "0.5"}
    assert env.secrets == ("API_TOKEN",)
    assert env.resources == Resources(cpu=2, memory="2Gi", gpu=1)
    assert env.depends_on == ("base",)
    assert env.interruptible is True
    assert env.pod_template == {"spec": {"nodeSelector": {"pool": "gpu"}}}
    assert env.detected_format is None
    assert env.version is None
    assert repr(env) == (
        "Environment('demo', python='3.11', "
        "pip=['pandas>=2', 'requests[security,socks]', 'zope-interface'])"
    )


def test_minimal_environment_has_empty_defaults() -> None:
    env = Environment("x")
    assert (env.pip_requirements, env.pip_options, env.secrets, env.depends_on) == ((),) * 4
    assert env.env_vars == {}
    assert env.python.version is None
    assert env.python.conda_dependencies is None
    assert env.resources == Resources()
    assert env.image is None
    assert not env.docker.enabled


def test_pip_requirements_accepts_text_and_validates_on_assignment() -> None:
    env = Environment("x", pip="pandas\n\nNumPy>=1.26\n")
    assert env.pip_requirements == ("pandas", "numpy>=1.26")
    env.pip_requirements = ["six==1.17.0"]
    assert env.pip_requirements == ("six==1.17.0",)
    spec_error(lambda: setattr(env, "pip_requirements", ["six>=>1"]), "pip")
    assert env.pip_requirements == ("six==1.17.0",)  # a refused assignment changes nothing


def test_marker_and_url_requirements_are_normalised() -> None:
    env = Environment(
        "x", pip=["Pandas ; python_version < '3.12'", "pkg @ https://example.org/pkg-1.0.tar.gz"]
    )
    assert env.pip_requirements == (
        'pandas; python_version < "3.12"',
        "pkg @ https://example.org/pkg-1.0.tar.gz",
    )


# -- name ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "0", "my-env", "my_env.v2", "3d-tools", "a" * 63])
def test_valid_names(name: str) -> None:
    assert Environment(name).name == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "Demo", "-x", ".x", "_x", "../x", "x/y", "a b", "a" * 64, "a..b", "x\n", "é", "x:y"],
)
def test_invalid_names(name: str) -> None:
    err = spec_error(lambda: Environment(name), "name")
    assert repr(name) in str(err)
    assert "1-63 lowercase letters" in str(err)


def test_name_must_be_a_string_and_is_checked_on_assignment() -> None:
    spec_error(lambda: Environment(5), "name")  # type: ignore[arg-type]
    env = Environment("good")
    spec_error(lambda: setattr(env, "name", "Not Good"), "name")
    assert env.name == "good"
    env.name = "better"
    assert env.name == "better"


# -- env_vars and secrets --------------------------------------------------------------------------
def test_env_vars_are_copied_and_checked_on_assignment() -> None:
    env = Environment("x", env_vars={"_PRIVATE": "1", "A1": 3})  # type: ignore[dict-item]
    got = env.env_vars
    got["INJECTED"] = "1"
    assert "INJECTED" not in env.env_vars  # a copy: changes need an assignment
    env.env_vars = {"B": "2"}
    assert env.env_vars == {"B": "2"}
    assert env.environment_variables == {"B": "2"}  # AzureML's spelling
    env.environment_variables = {"C": "3"}
    assert env.env_vars == {"C": "3"}
    env.env_vars = None
    assert env.env_vars == {}


@pytest.mark.parametrize("key", ["1A", "A-B", "A B", "", "A\n", "$HOME"])
def test_invalid_env_var_names(key: str) -> None:
    err = spec_error(lambda: Environment("x", env_vars={key: "v"}), "env_vars")
    assert repr(key) in str(err)


@pytest.mark.parametrize("value", [None, True, ["a"], {"b": 1}])
def test_invalid_env_var_values(value: object) -> None:
    err = spec_error(lambda: Environment("x", env_vars={"KEY": value}), "env_vars")  # type: ignore[dict-item]
    assert "value of KEY" in str(err)


def test_env_vars_must_be_a_mapping() -> None:
    spec_error(lambda: Environment("x", env_vars=[("A", "1")]), "env_vars")  # type: ignore[arg-type]


def test_secrets_are_names_only() -> None:
    env = Environment("x", secrets=["API_TOKEN", "DB_PASSWORD", "API_TOKEN"])
    assert env.secrets == ("API_TOKEN", "DB_PASSWORD")
    assert Environment("x", secrets="API_TOKEN").secrets == ("API_TOKEN",)
    assert env.to_dict()["secrets"] == ["API_TOKEN", "DB_PASSWORD"]
    assert "API_TOKEN" not in env.env_vars


@pytest.mark.parametrize(
    "secrets",
    [{"API_TOKEN": "s3cr3t"}, ["API_TOKEN=s3cr3t"], ["1TOKEN"], ["TOKEN\n"], [""], [3]],
)
def test_secrets_with_values_or_bad_names_are_refused(secrets: Any) -> None:
    err = spec_error(lambda: Environment("x", secrets=secrets), "secrets")
    assert "name" in str(err)
    assert "s3cr3t" not in str(err)  # a refused secret value is never echoed back


# -- python ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("3", "3"),
        ("3.11", "3.11"),
        ("3.12.1", "3.12.1"),
        ("3.11.*", "3.11.*"),
        (">=3.10", ">=3.10"),
        (">=3.10,<3.13", ">=3.10,<3.13"),
        ("~=3.11", "~=3.11"),
        (" 3.11 ", "3.11"),
        (None, None),
    ],
)
def test_valid_python_versions(given: str | None, stored: str | None) -> None:
    assert Environment("x", python=given).python.version == stored


@pytest.mark.parametrize(
    "version",
    ["2.7", "python3", "3.x", "latest", "", "   ", ">=banana", "==; rm -rf /", "3.11.7.1", "=3.11"],
)
def test_invalid_python_versions(version: str) -> None:
    err = spec_error(lambda: Environment("x", python=version), "python")
    assert "invalid Python version" in str(err)


def test_python_version_must_be_a_string_and_is_checked_on_assignment() -> None:
    spec_error(lambda: Environment("x", python=3.11), "python")  # type: ignore[arg-type]
    env = Environment("x", python="3.11")
    spec_error(lambda: setattr(env.python, "version", "2.7"), "python")
    assert env.python.version == "3.11"


def test_user_managed_dependencies_and_interpreter_path() -> None:
    env = Environment("x")
    plain_hash = env.spec_hash
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = "/opt/conda/bin/python"
    assert env.ingredients()["user_managed"] == "/opt/conda/bin/python"
    assert env.spec_hash != plain_hash
    back = Environment.from_dict(env.to_dict())
    assert back.python.user_managed_dependencies is True
    assert back.python.interpreter_path == "/opt/conda/bin/python"
    spec_error(
        lambda: setattr(env.python, "interpreter_path", "bin/python"), "python.interpreter_path"
    )
    spec_error(lambda: setattr(env.python, "interpreter_path", 3), "python.interpreter_path")
    assert env.python.interpreter_path == "/opt/conda/bin/python"
    env.python.interpreter_path = None
    assert env.ingredients()["user_managed"] is True


def test_conda_dependencies_must_be_a_conda_dependencies() -> None:
    env = Environment("x")
    spec_error(
        lambda: setattr(env.python, "conda_dependencies", {"dependencies": ["numpy"]}),
        "python.conda_dependencies",
    )
    assert env.python.conda_dependencies is None


# -- resources -------------------------------------------------------------------------------------
def test_resources_valid_forms() -> None:
    assert Resources(cpu=0.5, memory="512Mi", gpu=2).to_dict() == {
        "cpu": 0.5,
        "memory": "512Mi",
        "gpu": 2,
    }
    assert Resources(memory=" 2Gi ").memory == "2Gi"
    assert Resources.coerce({"cpu": 4}) == Resources(cpu=4)
    assert Resources.coerce(None) == Resources()
    res = Resources(cpu=1)
    assert Resources.coerce(res) is res
    assert Environment("x", resources={"memory": "1g"}).resources.memory == "1g"
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.cpu = 2  # type: ignore[misc]


@pytest.mark.parametrize("cpu", [0, -1, -0.5, True, "2", math.nan, math.inf])
def test_invalid_cpu(cpu: Any) -> None:
    spec_error(lambda: Resources(cpu=cpu), "resources.cpu")


@pytest.mark.parametrize("memory", ["", "-1Gi", "0", "lots", "2 gigabytes", "1Gi; reboot", 2048])
def test_invalid_memory(memory: Any) -> None:
    err = spec_error(lambda: Environment("x", resources={"memory": memory}), "resources.memory")
    assert "invalid memory size" in str(err)


@pytest.mark.parametrize("gpu", [-1, 1.5, True, "1"])
def test_invalid_gpu(gpu: Any) -> None:
    spec_error(lambda: Resources(gpu=gpu), "resources.gpu")


def test_resources_must_be_resources_or_a_dict_of_its_fields() -> None:
    err = spec_error(lambda: Environment("x", resources={"cpus": 2}), "resources")
    assert "cpus" in str(err)
    spec_error(lambda: Environment("x", resources=[2]), "resources")  # type: ignore[arg-type]


def test_resources_change_the_hash_only_when_set() -> None:
    assert "resources" not in Environment("x").ingredients()
    with_cpu = Environment("x", resources=Resources(cpu=2))
    assert with_cpu.ingredients()["resources"] == {"cpu": 2, "memory": None, "gpu": 0}
    assert with_cpu.spec_hash != Environment("x").spec_hash


# -- depends_on ------------------------------------------------------------------------------------
def test_depends_on_takes_environments_and_names() -> None:
    base = Environment("base")
    env = Environment("app", depends_on=[base, "tools", "base"])
    assert list(env.depends_on) == ["base", "tools"]
    env.add_dependency("extra")
    env.add_dependency(base)
    assert list(env.depends_on) == ["base", "tools", "extra"]
    # A lone name is one dependency, not one per character.
    assert Environment("app", depends_on="base").depends_on == ("base",)
    # Dependencies do not change what is built.
    assert env.spec_hash == Environment("app").spec_hash


@pytest.mark.parametrize("dep", ["../base", "Base", "", "a b"])
def test_invalid_dependencies(dep: str) -> None:
    spec_error(lambda: Environment("app", depends_on=[dep]), "depends_on")


def test_an_environment_cannot_depend_on_itself() -> None:
    err = spec_error(lambda: Environment("app", depends_on=["app"]), "depends_on")
    assert "itself" in str(err)
    env = Environment("app")
    spec_error(lambda: env.add_dependency(Environment("app")), "depends_on")
    assert env.depends_on == ()


# -- the other scalar fields ----------------------------------------------------------------------
def test_description_interruptible_pod_template_and_backend_are_checked() -> None:
    spec_error(lambda: Environment("x", description=3), "description")  # type: ignore[arg-type]
    spec_error(lambda: Environment("x", interruptible="yes"), "interruptible")  # type: ignore[arg-type]
    spec_error(lambda: Environment("x", pod_template=["a"]), "pod_template")  # type: ignore[arg-type]
    spec_error(lambda: Environment("x", backend="a b"), "backend")
    env = Environment("x", backend="fake")
    assert env.backend == "fake"
    spec_error(lambda: setattr(env, "backend", "no-dashes"), "backend")
    env.backend = None
    assert env.backend == "venv"


@pytest.mark.parametrize(
    "options",
    [["-e ."], ["--editable=."], ["-c constraints.txt"], ["rm -rf /"], ["--index-url"], ["-r x"]],
)
def test_pip_options_are_limited_to_index_options(options: list[str]) -> None:
    spec_error(lambda: Environment("x", pip_options=options), "pip_options")


def test_pip_options_are_normalised() -> None:
    env = Environment(
        "x",
        pip_options=[
            "-i https://example.org/simple",
            "--extra-index-url=https://mirror.example.org/simple",
            "-f ./wheels",
        ],
    )
    assert env.pip_options == (
        "--index-url https://example.org/simple",
        "--extra-index-url https://mirror.example.org/simple",
        "--find-links ./wheels",
    )


# -- docker settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image",
    ["python:3.12-slim", "ubuntu", "ghcr.io/org/img:1.0", "localhost:5000/a/b@sha256:ab12cd"],
)
def test_valid_image_references(image: str) -> None:
    env = Environment("x", base_image=image, image=image)
    assert (env.docker.base_image, env.image) == (image, image)
    assert env.docker.enabled


@pytest.mark.parametrize(
    "image", ["", " ", "python 3.12", "python:3.12;rm -rf /", "$(reboot)", "a|b", "`id`", "a\n"]
)
def test_invalid_image_references(image: str) -> None:
    spec_error(lambda: Environment("x", base_image=image), "docker.base_image")
    spec_error(lambda: Environment("x", image=image), "image")


def test_apt_packages() -> None:
    env = Environment("x", apt_packages=["curl", "libpq-dev", "g++"])
    assert env.docker.apt_packages == ("curl", "libpq-dev", "g++")
    assert Environment("x", apt_packages="curl").docker.apt_packages == ("curl",)


@pytest.mark.parametrize("bad", ["curl && reboot", "", "curl\n", "-y", 5])
def test_invalid_apt_packages(bad: Any) -> None:
    err = spec_error(lambda: Environment("x", apt_packages=[bad]), "docker.apt_packages")
    assert "invalid entry" in str(err)


def test_base_dockerfile_must_start_with_from_or_arg() -> None:
    env = Environment("x")
    env.docker.base_dockerfile = "# syntax=docker/dockerfile:1\n\nARG V=3.12\nFROM python:${V}\n"
    assert env.docker.enabled
    err = spec_error(
        lambda: setattr(env.docker, "base_dockerfile", "# base\n\nRUN echo hi\n"),
        "docker.base_dockerfile",
    )
    assert err.line == 3  # the first instruction, after the comment and the blank line
    assert "line 3" in str(err)
    assert "RUN echo hi" in str(err)
    spec_error(lambda: setattr(env.docker, "base_dockerfile", "  "), "docker.base_dockerfile")
    env.docker.base_dockerfile = None
    assert not env.docker.enabled


# -- constructors ----------------------------------------------------------------------------------
def test_from_pip_requirements_reads_a_file_with_includes_and_options(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.17.0\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# project requirements\n"
        "--index-url https://example.org/simple\n"
        "-r base.txt\n"
        "Requests[socks] >= 2.31  # inline comment\n"
        "numpy \\\n"
        "  >=1.26\n"
        "pkg @ https://example.org/pkg.tar.gz#egg=pkg\n"
    )
    env = Environment.from_pip_requirements("demo", req)
    assert env.detected_format == "requirements.txt"
    assert env.pip_options == ("--index-url https://example.org/simple",)
    assert env.pip_requirements == (
        "six==1.17.0",
        "requests[socks]>=2.31",
        "numpy>=1.26",
        "pkg @ https://example.org/pkg.tar.gz#egg=pkg",
    )


def test_from_pip_requirements_errors_name_the_file_and_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    err = spec_error(lambda: Environment.from_pip_requirements("demo", missing), "file_path")
    assert str(missing) in str(err)
    (tmp_path / "base.txt").write_text("six\npandas>=>1\n")
    req = tmp_path / "requirements.txt"
    req.write_text("-r base.txt\n")
    with pytest.raises(SpecError) as info:
        Environment.from_pip_requirements("demo", req)
    assert (info.value.field, info.value.line) == ("pip", 2)
    assert str(info.value).startswith(f"{tmp_path / 'base.txt'}, line 2, field 'pip':")
    req.write_text("-r missing.txt\n")
    with pytest.raises(SpecError, match=r"'-r missing\.txt': not found, looked for"):
        Environment.from_pip_requirements("demo", req)


ENV_YML = """\
name: analysis
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
    - requests==2.32.3
variables:
  MY_FLAG: "1"
"""


def test_from_conda_specification_and_its_alias(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_text(ENV_YML)
    env = Environment.from_conda_specification("demo", path)
    # AzureML spells it both ways; both are the same constructor.
    assert Environment.from_conda_specifications.__func__ is (  # type: ignore[attr-defined]
        Environment.from_conda_specification.__func__  # type: ignore[attr-defined]
    )
    alias = Environment.from_conda_specifications("demo", path)
    assert alias == env
    assert env.detected_format == "environment.yml"
    conda = env.python.conda_dependencies
    assert conda is not None
    assert conda.channels == ("conda-forge",)
    assert conda.pip_packages == ("requests==2.32.3",)
    assert env.env_vars == {"MY_FLAG": "1"}
    assert env.effective_python() == "3.11"
    assert env.all_pip_requirements() == ("requests==2.32.3",)
    assert env.backend == "venv"  # only python and pip: no conda builder needed


def test_from_conda_specification_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("name: x\ndependencies:\n  - numpy; rm -rf /\n")
    with pytest.raises(SpecError) as info:
        Environment.from_conda_specification("demo", path)
    assert (info.value.field, info.value.line, info.value.source) == (
        "conda_dependencies",
        3,
        str(path),
    )
    assert str(info.value).startswith(f"{path}, line 3, field 'conda_dependencies':")
    spec_error(lambda: Environment.from_conda_specification("d", tmp_path / "no.yml"), "file_path")


def test_from_dockerfile_takes_a_path_or_text(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.12-slim\nRUN pip install six\n")
    from_path = Environment.from_dockerfile("demo", path)
    from_str_path = Environment.from_dockerfile("demo", str(path))
    from_text = Environment.from_dockerfile("demo", path.read_text())
    for env in (from_path, from_str_path, from_text):
        assert env.docker.base_dockerfile == "FROM python:3.12-slim\nRUN pip install six\n"
        assert env.detected_format == "Dockerfile"
        assert env.backend == "docker"
    err = spec_error(
        lambda: Environment.from_dockerfile("demo", tmp_path / "Missing.dockerfile"), "dockerfile"
    )
    assert "file not found" in str(err)


@pytest.mark.parametrize(
    ("text", "detected"),
    [
        ("six\n", "requirements.txt"),
        ("# pinned\nsix==1.17.0\n", "requirements.txt"),
        ("--index-url https://example.org/simple\nsix\n", "requirements.txt"),
        ("name: x\ndependencies: [numpy]\n", "environment.yml"),
        ("channels: [conda-forge]\ndependencies:\n  - numpy\n", "environment.yml"),
        ("dependencies:\n  - pip:\n    - six\n", "environment.yml"),
        ("FROM python:3.12\n", "Dockerfile"),
        ("from python:3.12\nrun echo hi\n", "Dockerfile"),
        ("# syntax=docker/dockerfile:1\nARG V=3.12\nFROM python:${V}\n", "Dockerfile"),
    ],
)
def test_from_text_detects_and_records_the_format(text: str, detected: str) -> None:
    env = Environment.from_text("demo", text)
    assert env.detected_format == detected
    if detected == "requirements.txt":
        assert env.pip_requirements[-1].startswith("six")
    elif detected == "environment.yml":
        assert env.python.conda_dependencies is not None
    else:
        assert (env.docker.base_dockerfile or "").rstrip("\n").endswith(text.rstrip("\n")[-10:])


@pytest.mark.parametrize(
    ("fmt", "text", "detected"),
    [
        ("requirements", "six\n", "requirements.txt"),
        ("pip", "six\n", "requirements.txt"),
        ("conda", "dependencies: [numpy]\n", "environment.yml"),
        ("yml", "dependencies: [numpy]\n", "environment.yml"),
        ("docker", "FROM python:3.12", "Dockerfile"),
        (" Dockerfile ", "FROM python:3.12", "Dockerfile"),
    ],
)
def test_from_text_with_a_forced_format(fmt: str, text: str, detected: str) -> None:
    assert Environment.from_text("demo", text, format=fmt).detected_format == detected


def test_a_forced_format_is_obeyed_even_against_the_content() -> None:
    with pytest.raises(SpecError) as info:
        Environment.from_text("demo", "name: x\ndependencies: [numpy]\n", format="pip")
    assert (info.value.field, info.value.line) == ("pip", 1)


# -- composition -----------------------------------------------------------------------------------
def test_clone_with_copies_and_changes() -> None:
    conda = CondaDependencies.create(pip_packages=["six"], python_version="3.11")
    base = Environment("base", pip=["numpy"], env_vars={"A": "1"}, conda_dependencies=conda)
    clone = base.clone_with("derived", pip=["numpy", "pandas"], env_vars={"B": "2"})
    assert (clone.name, clone.pip_requirements) == ("derived", ("numpy", "pandas"))
    assert clone.env_vars == {"B": "2"}
    assert (base.name, base.pip_requirements, base.env_vars) == ("base", ("numpy",), {"A": "1"})
    # Deep copy: editing the clone's conda dependencies leaves the original alone.
    assert clone.python.conda_dependencies == conda
    assert clone.python.conda_dependencies is not conda
    assert clone.python.conda_dependencies is not None
    clone.python.conda_dependencies.add_pip_package("requests")
    assert conda.pip_packages == ("six",)
    same_name = base.clone_with(python="3.12", depends_on="base-tools", description="d")
    assert (same_name.name, same_name.python.version) == ("base", "3.12")
    assert same_name.depends_on == ("base-tools",)


def test_clone_with_validates_like_the_constructor() -> None:
    base = Environment("base")
    with pytest.raises(SpecError, match="unknown field 'colour'"):
        base.clone_with(colour="red")
    spec_error(lambda: base.clone_with(python="2.7"), "python")
    spec_error(lambda: base.clone_with("Bad Name"), "name")
    spec_error(lambda: base.clone_with(interruptible="no"), "interruptible")
    spec_error(lambda: base.clone_with(description=1), "description")
    spec_error(lambda: base.clone_with(secrets={"T": "v"}), "secrets")
    spec_error(lambda: base.clone_with(depends_on=["base"]), "depends_on")
    spec_error(lambda: base.clone_with(image="a b"), "image")
    spec_error(lambda: base.clone_with(pip_options=["-e ."]), "pip_options")


# -- serialisation ---------------------------------------------------------------------------------
def _full_env() -> Environment:
    conda = CondaDependencies.create(
        pip_packages=["requests"], conda_packages=["numpy"], python_version="3.11"
    )
    conda.add_channel("conda-forge")
    conda.set_variable("FROM_CONDA", "1")
    env = Environment(
        "full",
        description="every field",
        python="3.11",
        pip=["six==1.17.0"],
        pip_options=["--extra-index-url https://example.org/simple"],
        conda_dependencies=conda,
        base_image="python:3.11-slim",
        apt_packages=["curl"],
        image="ghcr.io/org/full:1",
        env_vars={"A": "1"},
        secrets=["TOKEN"],
        resources={"cpu": 1.5, "memory": "1Gi", "gpu": 1},
        depends_on=["base"],
        interruptible=True,
        pod_template={"metadata": {"labels": {"team": "x"}}},
        backend="fake",
    )
    env.docker.base_dockerfile = "FROM python:3.11-slim\nRUN true\n"
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = "/usr/bin/python3"
    return env


def test_to_dict_from_dict_round_trip() -> None:
    env = _full_env()
    data = env.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON-able data
    back = Environment.from_dict(data)
    assert back == env
    assert back.to_dict() == data
    assert back.spec_hash == env.spec_hash
    assert Environment.from_dict(Environment("tiny").to_dict()) == Environment("tiny")


def test_from_dict_refuses_unknown_keys_and_malformed_data() -> None:
    with pytest.raises(SpecError, match=r"unknown keys \['colour'\]"):
        Environment.from_dict({"name": "x", "colour": "red"})
    spec_error(lambda: Environment.from_dict({"pip": ["six"]}), "name")
    spec_error(lambda: Environment.from_dict({"name": "x", "python": "3.11"}), "python")
    spec_error(lambda: Environment.from_dict({"name": "x", "docker": ["a"]}), "docker")
    spec_error(lambda: Environment.from_dict(["x"]), "spec")  # type: ignore[arg-type]
    spec_error(lambda: Environment.from_dict({"name": "x", "pip": ["a|b"]}), "pip")


def test_save_writes_the_files_a_spec_needs(tmp_path: Path) -> None:
    env = _full_env()
    written = env.save(tmp_path / "out")
    names = [p.name for p in written]
    assert names == ["environment.json", "requirements.txt", "environment.yml", "Dockerfile"]
    assert all(p.is_file() for p in written)
    saved = json.loads((tmp_path / "out" / "environment.json").read_text())
    assert Environment.from_dict(saved) == env
    assert (tmp_path / "out" / "requirements.txt").read_text() == (
        "--extra-index-url https://example.org/simple\nsix==1.17.0\n"
    )
    conda = CondaDependencies(tmp_path / "out" / "environment.yml")
    assert conda == env.python.conda_dependencies
    assert (tmp_path / "out" / "Dockerfile").read_text() == env.docker.base_dockerfile
    # Read back through the file constructors, the ingredients survive.
    reread = Environment.from_pip_requirements("full", tmp_path / "out" / "requirements.txt")
    assert reread.pip_requirements == env.pip_requirements
    assert reread.pip_options == env.pip_options


def test_save_of_a_minimal_spec_writes_only_the_json(tmp_path: Path) -> None:
    written = Environment("tiny").save(tmp_path)
    assert written == [tmp_path / "environment.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["environment.json"]


# -- spec_hash and explain -------------------------------------------------------------------------
def test_spec_hash_is_a_sha256_hex() -> None:
    digest = Environment("x", pip=["six"]).spec_hash
    assert len(digest) == 64
    int(digest, 16)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (["pandas", "numpy"], ["numpy", "pandas"]),
        (["Pandas"], ["pandas"]),
        (["Zope.Interface"], ["zope_interface"]),
        (["pandas>=1,<2"], ["pandas <2 , >=1"]),
        (["requests[socks,security]"], ["Requests[Security,Socks]"]),
        (["six", "six"], ["six"]),
    ],
)
def test_spec_hash_ignores_order_and_spelling(a: list[str], b: list[str]) -> None:
    assert Environment("x", pip=a).spec_hash == Environment("x", pip=b).spec_hash


def test_spec_hash_ignores_what_does_not_change_the_build() -> None:
    env = Environment("one", pip=["six"], env_vars={"A": "1", "B": "2"}, secrets=["S", "T"])
    same = Environment(
        "two",
        description="other words",
        pip=["six"],
        env_vars={"B": "2", "A": "1"},
        secrets=["T", "S"],
        depends_on=["base"],
        interruptible=True,
        pod_template={"x": 1},
    )
    assert env.spec_hash == same.spec_hash


@pytest.mark.parametrize(
    "change",
    [
        {"python": "3.12"},
        {"pip": ["six==1.17.0"]},
        {"env_vars": {"A": "2"}},
        {"secrets": ["OTHER"]},
        {"pip_options": ["--index-url https://example.org/simple"]},
        {"resources": {"gpu": 1}},
        {"backend": "fake"},
    ],
)
def test_spec_hash_changes_with_each_ingredient(change: dict[str, Any]) -> None:
    base = Environment("x", python="3.11", pip=["six"], env_vars={"A": "1"})
    assert base.clone_with(**change).spec_hash != base.spec_hash


def test_spec_hash_covers_file_contents_not_paths(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b" / "deeper"
    second.mkdir(parents=True)
    first.mkdir()
    for folder in (first, second):
        (folder / "base.txt").write_text("six==1.17.0\n")
        (folder / "requirements.txt").write_text("-r base.txt\nrequests\n")
    a = Environment.from_pip_requirements("x", first / "requirements.txt")
    b = Environment.from_pip_requirements("x", second / "requirements.txt")
    assert a.spec_hash == b.spec_hash
    # Same paths, new contents of the included file: a new hash.
    (second / "base.txt").write_text("six==1.16.0\n")
    c = Environment.from_pip_requirements("x", second / "requirements.txt")
    assert c.spec_hash != a.spec_hash
    # The same requirements typed in as text hash the same as the file.
    typed = Environment.from_text("x", "requests\nsix==1.17.0\n")
    assert typed.spec_hash == a.spec_hash


def test_conda_python_pin_and_direct_python_hash_alike() -> None:
    via_conda = Environment(
        "x",
        conda_dependencies=CondaDependencies.create(pip_packages=["six"], python_version="3.11"),
    )
    direct = Environment("x", python="3.11", pip=["six"])
    assert via_conda.spec_hash == direct.spec_hash


def test_explain_names_the_differing_ingredients() -> None:
    old = Environment("x", python="3.11", pip=["six", "numpy"], secrets=["A"])
    new = Environment("x", python="3.12", pip=["six", "pandas"], secrets=["A", "B"])
    assert new.explain(old) == [
        "pip: +pandas, -numpy",
        "python: '3.11' -> '3.12'",
        "secrets: +B",
    ]
    assert new.explain(new.clone_with()) == []
    with_gpu = old.clone_with(resources={"gpu": 1})
    assert with_gpu.explain(old) == ["resources: None -> {'cpu': None, 'memory': None, 'gpu': 1}"]


# -- backend detection -----------------------------------------------------------------------------
def _with_dockerfile() -> Environment:
    env = Environment("x")
    env.docker.base_dockerfile = "FROM python:3.12\n"
    return env


@pytest.mark.parametrize(
    ("make", "backend"),
    [
        (lambda: Environment("x", pip=["six"]), "venv"),
        (lambda: Environment("x", base_image="python:3.12"), "docker"),
        (lambda: Environment("x", apt_packages=["curl"]), "docker"),
        (lambda: Environment("x", image="python:3.12"), "docker"),
        (_with_dockerfile, "docker"),
        (
            lambda: Environment(
                "x", conda_dependencies=CondaDependencies.create(conda_packages=["numpy"])
            ),
            "conda",
        ),
        (
            lambda: Environment(
                "x",
                conda_dependencies=CondaDependencies.create(
                    python_version="3.11", conda_packages=["pip"], pip_packages=["six"]
                ),
            ),
            "venv",
        ),
        # Docker comes first in the chain.
        (
            lambda: Environment(
                "x",
                base_image="python:3.12",
                conda_dependencies=CondaDependencies.create(conda_packages=["numpy"]),
            ),
            "docker",
        ),
        # An explicit backend is never second-guessed.
        (lambda: Environment("x", base_image="python:3.12", backend="fake"), "fake"),
    ],
)
def test_detect_chain(make: Callable[[], Environment], backend: str) -> None:
    assert make().backend == backend


@pytest.mark.parametrize(
    ("make", "backend"),
    [
        (lambda: Environment("needs-docker", pip=["six"], base_image="python:3.12"), "docker"),
        (
            lambda: Environment(
                "needs-conda", conda_dependencies=CondaDependencies.create(conda_packages=["gdal"])
            ),
            "conda",
        ),
    ],
)
def test_unavailable_backend_fails_clearly_and_registers_nothing(
    workspace: Workspace,
    make: Callable[[], Environment],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Docker specs must be refused here as on a machine without an engine, conda specs as on
    # one without py-rattler.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setitem(sys.modules, "rattler", None)
    Environment("kept", pip=["six"], backend="fake").build(ws=workspace)
    before = workspace.snapshot()
    env = make()
    with pytest.raises(BackendUnavailableError) as info:
        env.build(ws=workspace)
    assert info.value.backend == backend
    message = str(info.value)
    assert f"the '{backend}' builder is not available" in message
    assert f"needed by environment '{env.name}'" in message
    assert workspace.snapshot() == before
    assert workspace.builds(env.name) == []
    assert not (workspace.kernels_dir / f"jenv-{env.name}-v1").exists()


def test_fake_build_of_text_specs_round_trips_through_the_registry(workspace: Workspace) -> None:
    env = Environment.from_text("demo", "name: demo\ndependencies:\n  - pip:\n    - six==1.17.0\n")
    env.backend = "fake"
    result = env.build(ws=workspace)
    assert (result.version, result.cache_hit) == (1, False)
    stored = Environment.get("demo", ws=workspace)
    assert stored.version == 1
    assert stored.spec_hash == env.spec_hash
    assert stored.to_dict() == env.to_dict()
    # The same requirements as requirements.txt hash alike, so they are a registry hit.
    again = Environment.from_text("demo", "six==1.17.0\n")
    again.backend = "fake"
    assert again.build(ws=workspace).cache_hit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pip", {"a": 1}),
        ("pip", [1]),
        ("pip", 5),
        ("pip_options", {"--index-url": "https://x"}),
        ("depends_on", {"base": 1}),
        ("depends_on", ["base", 3]),
    ],
)
def test_wrong_types_are_refused_not_coerced(field: str, value: Any) -> None:
    """A mapping used to be read as its keys (spec.pip {"a": 1} built "a")."""
    spec_error(lambda: Environment.from_dict({"name": "x", field: value}), field)
    spec_error(
        lambda: Environment.from_dict({"name": "x", "docker": {"apt_packages": {"curl": True}}}),
        "docker.apt_packages",
    )
