"""``CondaDependencies``: the environment.yml layout as AzureML users know it. Offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jupyter_envs import CondaDependencies, Environment, SpecError, Workspace

# The layout of AzureML's seed conda_dependencies.yml, with a variables section added.
AZUREML_SEED = """\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

name: project_environment
dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.5.2 and later.
- python=3.7
- pip

- pip:
    # Required packages for AzureML execution, history, and data preparation.
  - azureml-defaults

channels:
- conda-forge
- defaults
variables:
  AZUREML_FLAG: "1"
"""


def test_create_from_lists() -> None:
    cd = CondaDependencies.create(
        pip_packages=["Requests==2.32.3", "six"],
        conda_packages=["numpy=1.26", "scipy"],
        python_version="3.11",
        channels=["conda-forge", "defaults"],
    )
    assert cd.name == "project_environment"
    assert cd.channels == ("conda-forge", "defaults")
    assert cd.conda_packages == ("python=3.11", "numpy=1.26", "scipy")
    assert cd.pip_packages == ("requests==2.32.3", "six")
    assert cd.get_python_version() == "3.11"
    assert cd.variables == {}
    assert cd.needs_conda()
    empty = CondaDependencies.create()
    assert (empty.channels, empty.conda_packages, empty.pip_packages) == ((), (), ())
    assert empty.get_python_version() is None
    assert not empty.needs_conda()


def test_channels_keep_order_without_duplicates() -> None:
    cd = CondaDependencies()
    cd.add_channel("conda-forge")
    cd.add_channel(" defaults ")
    cd.add_channel("conda-forge")
    cd.add_channel("https://conda.example.org/private")
    assert cd.channels == ("conda-forge", "defaults", "https://conda.example.org/private")
    cd.remove_channel("defaults")
    cd.remove_channel("not-there")  # absent: no error
    assert list(cd.channels) == ["conda-forge", "https://conda.example.org/private"]


@pytest.mark.parametrize("channel", ["bad channel", "", "conda-forge; rm -rf /", "$(reboot)"])
def test_invalid_channels(channel: str) -> None:
    cd = CondaDependencies()
    with pytest.raises(SpecError) as info:
        cd.add_channel(channel)
    assert info.value.field == "channels"
    assert "not a valid conda channel" in str(info.value)
    assert cd.channels == ()


def test_conda_packages_add_replace_and_remove() -> None:
    cd = CondaDependencies()
    cd.add_conda_package("numpy")
    cd.add_conda_package("scipy>=1.11")
    cd.add_conda_package("numpy=1.26")  # replaces the earlier numpy spec
    cd.add_conda_package("conda-forge::gdal 3.8.* py311*")
    assert cd.conda_packages == ("scipy>=1.11", "numpy=1.26", "conda-forge::gdal 3.8.* py311*")
    cd.remove_conda_package("NumPy=1.0")  # by name, whatever the version
    cd.remove_conda_package("gdal")
    cd.remove_conda_package("not-there")
    assert list(cd.conda_packages) == ["scipy>=1.11"]


@pytest.mark.parametrize(
    "spec", ["", "numpy; rm -rf /", "$(reboot)", "numpy && ls", "`id`", "numpy > /tmp/x"]
)
def test_invalid_conda_packages(spec: str) -> None:
    cd = CondaDependencies()
    with pytest.raises(SpecError) as info:
        cd.add_conda_package(spec)
    assert info.value.field == "conda_dependencies"
    assert cd.conda_packages == ()


def test_pip_packages_add_replace_and_remove() -> None:
    cd = CondaDependencies()
    cd.add_pip_package("Requests")
    cd.add_pip_package("six==1.16.0")
    cd.add_pip_package("requests>=2.31")  # replaces the earlier requests
    cd.add_pip_package("six==1.17.0")  # the AzureML API replaces rather than conflicts
    assert cd.pip_packages == ("requests>=2.31", "six==1.17.0")
    cd.remove_pip_package("REQUESTS")
    assert list(cd.pip_packages) == ["six==1.17.0"]
    with pytest.raises(SpecError) as info:
        cd.add_pip_package("six>=>1")
    assert info.value.field == "pip"
    assert list(cd.pip_packages) == ["six==1.17.0"]


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        ("python=3.11", "3.11"),
        ("python==3.12.1", "3.12.1"),
        ("python>=3.10", "3.10"),
        ("python=3.11.*", "3.11"),
        ("python 3.11", "3.11"),
        ("conda-forge::python=3.12", "3.12"),
        ("python", None),
    ],
)
def test_get_python_version(spec: str, version: str | None) -> None:
    cd = CondaDependencies.create(conda_packages=[spec])
    assert cd.get_python_version() == version


def test_set_python_version_replaces_the_pin() -> None:
    cd = CondaDependencies.create(conda_packages=["numpy"])
    cd.set_python_version("3.10")
    cd.set_python_version("3.12")
    assert cd.conda_packages == ("numpy", "python=3.12")
    assert cd.get_python_version() == "3.12"


@pytest.mark.parametrize("version", ["abc", "2.7", "3.x", "latest"])
def test_invalid_python_versions(version: str) -> None:
    cd = CondaDependencies()
    with pytest.raises(SpecError) as info:
        cd.set_python_version(version)
    assert info.value.field == "conda_dependencies"
    assert "invalid Python version" in str(info.value)
    assert cd.get_python_version() is None
    with pytest.raises(SpecError):
        CondaDependencies.create(python_version=version)


def test_variables() -> None:
    cd = CondaDependencies()
    cd.set_variable("MY_FLAG", "1")
    got = cd.variables
    got["OTHER"] = "2"
    assert cd.variables == {"MY_FLAG": "1"}  # a copy
    with pytest.raises(SpecError) as info:
        cd.set_variable("1 BAD", "x")
    assert info.value.field == "variables"
    assert cd.variables == {"MY_FLAG": "1"}


def test_serialize_to_string_is_the_env_yml_layout() -> None:
    cd = CondaDependencies.create(
        pip_packages=["six==1.17.0"], python_version="3.11", channels=["conda-forge"]
    )
    cd.set_variable("A", "1")
    text = cd.serialize_to_string()
    assert yaml.safe_load(text) == {
        "name": "project_environment",
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip", {"pip": ["six==1.17.0"]}],
        "variables": {"A": "1"},
    }
    assert text.index("name:") < text.index("channels:") < text.index("dependencies:")
    # pip is written once, whether or not it was listed, and only when there are pip packages.
    with_pip = CondaDependencies.create(conda_packages=["pip=24"], pip_packages=["six"])
    assert yaml.safe_load(with_pip.serialize_to_string())["dependencies"] == [
        "pip=24",
        {"pip": ["six"]},
    ]
    no_pip = CondaDependencies.create(conda_packages=["numpy"])
    assert yaml.safe_load(no_pip.serialize_to_string()) == {
        "name": "project_environment",
        "channels": [],
        "dependencies": ["numpy"],
    }


def test_save_to_a_file_or_a_directory(tmp_path: Path) -> None:
    cd = CondaDependencies.create(pip_packages=["six"], conda_packages=["numpy"])
    target = cd.save(tmp_path / "my-env.yml")
    assert target == tmp_path / "my-env.yml"
    into_dir = cd.save(tmp_path)
    assert into_dir == tmp_path / "environment.yml"
    for path in (target, into_dir):
        assert path.read_text() == cd.serialize_to_string()
        assert CondaDependencies(path) == cd
        assert CondaDependencies(conda_dependencies_file_path=str(path)) == cd


def test_reading_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        CondaDependencies(tmp_path / "missing.yml")
    assert info.value.field == "conda"
    assert "missing.yml" in str(info.value)


def test_from_string_errors_name_the_source_and_line() -> None:
    with pytest.raises(SpecError) as info:
        CondaDependencies.from_string(
            "name: x\ndependencies:\n  - numpy\n  - pip:\n    - six>=>1\n", source="env.yml"
        )
    assert (info.value.field, info.value.line, info.value.source) == ("pip", 5, "env.yml")
    assert str(info.value).startswith("env.yml, line 5, field 'pip': not a valid requirement")


def test_azureml_seed_layout_round_trips(tmp_path: Path) -> None:
    cd = CondaDependencies.from_string(AZUREML_SEED)
    assert cd.name == "project_environment"
    assert cd.channels == ("conda-forge", "defaults")
    assert cd.conda_packages == ("python=3.7", "pip")
    assert cd.pip_packages == ("azureml-defaults",)
    assert cd.variables == {"AZUREML_FLAG": "1"}
    assert cd.get_python_version() == "3.7"
    assert not cd.needs_conda()
    expected = {
        "name": "project_environment",
        "channels": ["conda-forge", "defaults"],
        "dependencies": ["python=3.7", "pip", {"pip": ["azureml-defaults"]}],
        "variables": {"AZUREML_FLAG": "1"},
    }
    assert cd.to_dict() == expected
    text = cd.serialize_to_string()
    assert yaml.safe_load(text) == expected
    again = CondaDependencies.from_string(text)
    assert again == cd
    assert again.serialize_to_string() == text  # stable: a second trip changes nothing
    path = cd.save(tmp_path)
    assert CondaDependencies(path).to_dict() == expected
    # As an Environment: python from the pin, pip packages, variables as env vars, venv builder.
    env = Environment.from_text("seed", AZUREML_SEED)
    assert env.detected_format == "environment.yml"
    assert env.effective_python() == "3.7"
    assert env.all_pip_requirements() == ("azureml-defaults",)
    assert env.env_vars == {"AZUREML_FLAG": "1"}
    assert env.backend == "venv"


def test_attaching_to_an_environment() -> None:
    env = Environment("demo", pip=["six"])
    plain = env.spec_hash
    conda = CondaDependencies.create(pip_packages=["requests", "six==1.17.0"])
    conda.set_python_version("3.12")
    env.python.conda_dependencies = conda
    assert env.python.conda_dependencies is conda
    # The spec's own pip requirement wins over the conda one for the same project.
    assert env.all_pip_requirements() == ("six", "requests")
    assert env.effective_python() == "3.12"
    assert env.backend == "venv"
    assert env.spec_hash != plain
    assert env.to_dict()["python"]["conda_dependencies"] == conda.to_dict()
    # A direct python version takes precedence over the conda pin.
    env.python.version = "3.11"
    assert env.effective_python() == "3.11"
    conda.add_conda_package("gdal")
    assert env.backend == "conda"
    env.python.conda_dependencies = None
    assert env.backend == "venv"
    assert env.all_pip_requirements() == ("six",)
    with pytest.raises(SpecError) as info:
        env.python.conda_dependencies = "numpy"  # type: ignore[assignment]
    assert info.value.field == "python.conda_dependencies"


@pytest.mark.parametrize(
    ("packages", "needs"),
    [
        ([], False),
        (["python=3.11"], False),
        (["pip"], False),
        (["python=3.11", "pip=24"], False),
        (["PYTHON=3.11"], False),
        (["numpy"], True),
        (["python=3.11", "numpy"], True),
        (["conda-forge::numpy"], True),
        (["pip", "r-base"], True),
    ],
)
def test_needs_conda(packages: list[str], needs: bool) -> None:
    cd = CondaDependencies.create(conda_packages=packages, pip_packages=["six"])
    assert cd.needs_conda() is needs
    env = Environment("x", conda_dependencies=cd)
    assert env.backend == ("conda" if needs else "venv")
    assert ("conda" in env.ingredients()) is needs


def test_pip_only_env_yml_hashes_like_requirements() -> None:
    from_yml = Environment.from_text(
        "x", "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - six\n"
    )
    direct = Environment("x", python="3.11", pip=["six"])
    assert from_yml.spec_hash == direct.spec_hash


def test_conda_spec_hash_survives_the_registry(workspace: Workspace) -> None:
    # to_dict() writes an implied "pip" that reads back as a conda package; the hash must not
    # change across that round trip, or an unchanged spec would be built again.
    conda = CondaDependencies.create(conda_packages=["numpy"], pip_packages=["six"])
    env = Environment("geo", conda_dependencies=conda)
    registered = env.register(ws=workspace)
    assert registered.spec_hash == env.spec_hash
    assert Environment.get("geo", ws=workspace).spec_hash == env.spec_hash
    assert env.register(ws=workspace).version == 1
    assert [v.version for v in workspace.versions("geo")] == [1]


def test_equality_and_repr() -> None:
    a = CondaDependencies.create(pip_packages=["six"], conda_packages=["numpy"])
    b = CondaDependencies.create(pip_packages=["six"], conda_packages=["numpy"])
    assert a == b
    b.add_channel("conda-forge")
    assert a != b
    assert a != "not conda"
    assert repr(a) == (
        "CondaDependencies(channels=[], conda_packages=['numpy'], pip_packages=['six'])"
    )
