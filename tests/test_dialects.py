"""Environment files as people write them (issue #12): what pip, uv and conda accept, read the
way a ``%%env`` cell reads it (``Environment.from_text`` with the notebook's folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_envs import Environment, Workspace
from jupyter_envs.engines.builders.dockerfile import render_dockerfile
from jupyter_envs.errors import BuildError, SpecError

SIX_HASH = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"
OTHER_HASH = "sha256:" + "0" * 64


def cell(text: str, folder: Path | None = None, fmt: str | None = None) -> Environment:
    return Environment.from_text("demo", text, fmt, base_dir=folder)


# -- hashes ---------------------------------------------------------------------------------------
def test_hash_pins_are_kept_sorted_and_enter_the_spec_hash() -> None:
    env = cell(f"six==1.17.0 \\\n    --hash={SIX_HASH} \\\n    --hash {OTHER_HASH.upper()}\n")
    assert env.pip_requirements == (f"six==1.17.0 --hash={OTHER_HASH} --hash={SIX_HASH}",)
    assert env.spec_hash != cell("six==1.17.0\n").spec_hash
    again = Environment.from_dict(env.to_dict())
    assert again.pip_requirements == env.pip_requirements
    assert again.spec_hash == env.spec_hash


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("six==1.17.0 --hash=md5:abc\n", "invalid hash 'md5:abc'"),
        ("six==1.17.0 --hash=sha256:xyz\n", "invalid hash"),
        ("six==1.17.0 --global-option=--x\n", "'--global-option=--x' is not supported"),
        ("six==1.17.0 --hash\n", "'--hash' is not supported"),
    ],
)
def test_bad_per_requirement_options_name_the_line(text: str, says: str) -> None:
    with pytest.raises(SpecError, match="line 2") as info:
        cell("pandas\n" + text)
    assert says in str(info.value)


def test_conflicts_are_still_found_under_hashes() -> None:
    with pytest.raises(SpecError, match="conflicting requirements for 'six'"):
        cell(f"six==1.17.0 --hash={SIX_HASH}\nsix==1.16.0\n")


# -- URLs, VCS, local paths -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "git+https://github.com/psf/requests@v2.31.0#egg=requests",
            "requests @ git+https://github.com/psf/requests@v2.31.0",
        ),
        (
            "git+https://github.com/pallets/click.git@8.1.7",
            "click @ git+https://github.com/pallets/click.git@8.1.7",
        ),
        (
            "git+https://github.com/org/mono@main#egg=pkg&subdirectory=python",
            "pkg @ git+https://github.com/org/mono@main#subdirectory=python",
        ),
        (
            "https://example.org/wheels/tqdm-4.66.1-py3-none-any.whl",
            "tqdm @ https://example.org/wheels/tqdm-4.66.1-py3-none-any.whl",
        ),
        (
            "https://example.org/src/attrs-23.2.0.tar.gz",
            "attrs @ https://example.org/src/attrs-23.2.0.tar.gz",
        ),
        (
            "-e git+https://github.com/psf/requests@v2.31.0#egg=requests",
            "requests @ git+https://github.com/psf/requests@v2.31.0",
        ),
    ],
)
def test_bare_urls_and_vcs_references_become_named_requirements(line: str, expected: str) -> None:
    assert cell(line + "\n").pip_requirements == (expected,)
    # The same line in an environment.yml's pip section reads the same.
    yml = f"name: x\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - {line}\n"
    assert cell(yml).all_pip_requirements() == (expected,)


def test_a_url_whose_project_cannot_be_told_asks_for_its_name() -> None:
    with pytest.raises(SpecError, match="write it as 'NAME @ "):
        cell("https://example.org/download?id=3\n")


def _package(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools"]\n\n[project]\nname = "{name}"\n'
        'version = "0.1"\n'
    )
    return folder


def test_editable_and_local_paths_resolve_against_the_notebooks_folder(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "src" / "mypkg", "my-package")
    wheel = tmp_path / "dist" / "tool-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"")
    env = cell("-e ./src/mypkg\n./src/mypkg\ndist/tool-1.0-py3-none-any.whl\n", tmp_path)
    assert env.pip_options == (f"-e {pkg}",)
    assert env.pip_requirements == (
        f"my-package @ {pkg.as_uri()}",
        f"tool @ {wheel.as_uri()}",
    )
    assert env.local_paths() == (str(pkg), pkg.as_uri(), wheel.as_uri())
    # Without a folder to read them from (text sent as is), say so; a missing one says where.
    with pytest.raises(SpecError, match=r"'-e \./src/mypkg': '\./src/mypkg' is a relative path"):
        cell("-e ./src/mypkg\n")
    with pytest.raises(SpecError, match=f"'-e ./nope': not found, looked for {tmp_path}/nope"):
        cell("six\n-e ./nope\n", tmp_path)


def test_include_and_constraints_files_enter_the_spec(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("pandas>=2\n--pre\n")
    (tmp_path / "constraints.txt").write_text("numpy<2\n")
    env = cell("-r base.txt\n-c constraints.txt\nsix\n", tmp_path)
    assert env.pip_requirements == ("pandas>=2", "six")
    assert env.pip_options == ("--pre",)
    assert env.pip_constraints == ("numpy<2",)
    before = env.spec_hash
    (tmp_path / "constraints.txt").write_text("numpy<1.26\n")
    assert cell("-r base.txt\n-c constraints.txt\nsix\n", tmp_path).spec_hash != before
    again = Environment.from_dict(env.to_dict())
    assert (again.pip_constraints, again.spec_hash) == (env.pip_constraints, env.spec_hash)
    written = {p.name for p in env.save(tmp_path / "saved")}
    assert {"requirements.txt", "constraints.txt"} <= written
    assert "-c constraints.txt" in (tmp_path / "saved" / "requirements.txt").read_text()
    (tmp_path / "bad.txt").write_text("--pre\nsix\n")
    with pytest.raises(SpecError, match="a constraints file holds requirements only"):
        cell("-c bad.txt\nsix\n", tmp_path)


def test_specs_without_constraints_keep_their_hash() -> None:
    """Adding the pip_constraints field must not rebuild every registered environment."""
    env = Environment("x", pip=["six==1.17.0"], python="3.11")
    assert "pip_constraints" not in env.ingredients()


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("--pre", "--pre"),
        ("--prefer-binary", "--prefer-binary"),
        ("--no-index", "--no-index"),
        ("--require-hashes", "--require-hashes"),
        ("--no-binary :all:", "--no-binary :all:"),
        ("--only-binary=:all:", "--only-binary :all:"),
        ("-i https://pypi.example/simple", "--index-url https://pypi.example/simple"),
        (
            "--extra-index-url=https://x.example/simple",
            "--extra-index-url https://x.example/simple",
        ),
        ("-f https://x.example/wheels", "--find-links https://x.example/wheels"),
    ],
)
def test_installer_options_are_kept(line: str, option: str) -> None:
    assert cell(f"{line}\nsix\n").pip_options == (option,)
    # Quoted, as YAML needs for "--no-binary :all:" (else it is a mapping), and conda too.
    yml = f"name: x\ndependencies:\n  - pip:\n    - '{line}'\n    - six\n"
    assert cell(yml).all_pip_options() == (option,)


def test_an_unsupported_option_lists_the_supported_ones() -> None:
    with pytest.raises(SpecError, match="line 2") as info:
        cell("six\n--trusted-host example.org\n")
    assert "'--trusted-host' is not supported" in str(info.value)
    assert "--pre" in str(info.value)


def test_env_yml_pip_section_reads_files_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    pkg = _package(tmp_path / "lib", "lib")
    yml = tmp_path / "environment.yml"
    yml.write_text(
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
        "  - pip:\n    - -r requirements.txt\n    - -e ./lib\n"
        f"    - tqdm==4.66.1 --hash={SIX_HASH}\n"
    )
    env = Environment.from_conda_specification("x", yml)
    assert env.all_pip_requirements() == ("six==1.17.0", f"tqdm==4.66.1 --hash={SIX_HASH}")
    assert env.all_pip_options() == (f"-e {pkg}",)
    # Options survive the round trip through to_dict (the registry keeps specs that way).
    assert Environment.from_dict(env.to_dict()).all_pip_options() == (f"-e {pkg}",)


# -- format detection -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "# Conda environment of the project\n# see README\n---\nname: x\ndependencies: [numpy]\n",
        "%YAML 1.2\n---\ndependencies:\n  - numpy\n",
        "channels:\n  - conda-forge\nname: x\ndependencies:\n  - numpy\n",
        "name: x\r\nchannels:\r\n  - conda-forge\r\ndependencies:\r\n  - numpy\r\n",
        "name: x\ndependencies:\n\t- numpy\n\t- pip:\n\t\t- six\n",
        "\n\n# comment\n\nname: x\ndependencies: [numpy]\n",
    ],
)
def test_environment_files_are_recognised_however_they_start(text: str) -> None:
    env = cell(text)
    assert env.detected_format == "environment.yml"
    conda = env.python.conda_dependencies
    assert conda is not None
    assert "numpy" in conda.conda_packages


def test_the_magic_says_how_to_read_a_cell_otherwise() -> None:
    from jupyter_envs.spec._text import other_formats_hint

    assert other_formats_hint("environment.yml") == "--format requirements or --format dockerfile"


# -- Docker refuses what an image build cannot honour ---------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        f"six==1.17.0 --hash={SIX_HASH}\n",
        "--pre\nsix\n",
        "-c constraints.txt\nsix\n",
        "-e ./src/mypkg\n",
    ],
)
def test_docker_refuses_what_it_cannot_honour(text: str, tmp_path: Path) -> None:
    _package(tmp_path / "src" / "mypkg", "mypkg")
    (tmp_path / "constraints.txt").write_text("six<2\n")
    env = cell(text, tmp_path)
    env.backend = "docker"
    with pytest.raises(BuildError, match="a Docker environment cannot use"):
        render_dockerfile(env, environ={})


# -- real builds with uv --------------------------------------------------------------------------
@pytest.mark.integration
def test_real_builds_of_hashes_constraints_and_an_editable(
    tmp_path: Path, workspace: Workspace
) -> None:
    """uv installs what the dialects mean: verified hashes (the kernel's own packages in a step
    of their own under --require-hashes), constraints, an editable folder of the notebook's."""
    import subprocess

    notebook = tmp_path / "notebook"
    pkg = notebook / "mypkg"
    (pkg / "src" / "mypkg").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '\n[project]\nname = "mypkg"\nversion = "0.1"\n'
    )
    (pkg / "src" / "mypkg" / "__init__.py").write_text("VALUE = 42\n")
    (notebook / "constraints.txt").write_text("six<1.17\n")

    hashed = Environment.from_text(
        "hashed", f"--require-hashes\nsix==1.17.0 \\\n    --hash={SIX_HASH}\n", base_dir=notebook
    ).build(ws=workspace)
    assert "six==1.17.0" in (workspace.get("hashed").lock or "")
    assert "ipykernel==" in (workspace.get("hashed").lock or "")  # installed in its own step
    assert hashed.kernel_name

    tampered = f"six==1.17.0 --hash={OTHER_HASH}\n"
    with pytest.raises(BuildError, match="hash"):
        Environment.from_text("tampered", tampered).build(ws=workspace)
    assert not workspace.versions("tampered")

    local = Environment.from_text(
        "local", "-c constraints.txt\nsix\n-e ./mypkg\n", base_dir=notebook
    ).build(ws=workspace)
    assert local.artifact is not None
    probe = "import mypkg, six; print(mypkg.VALUE, six.__version__, mypkg.__file__)"
    done = subprocess.run(
        [f"{local.artifact}/bin/python", "-c", probe], capture_output=True, text=True, check=True
    )
    value, six_version, where = done.stdout.split()
    assert (value, where) == ("42", str(pkg / "src" / "mypkg" / "__init__.py"))  # editable
    assert six_version.startswith("1.16")  # the constraint held


# -- BuildKit-only Dockerfiles --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "feature"),
    [
        ("RUN --mount=type=cache,target=/root/.cache pip install numpy", "RUN --mount"),
        ("RUN --network=none make", "RUN --network"),
        ("COPY --link . /app", "COPY --link"),
        ("COPY --chown=1000 --chmod=755 run.sh /", "COPY --chmod"),
        ("ADD --checksum=sha256:abc https://x.example/a.tgz /", "ADD --checksum"),
        ("RUN <<EOF\napt-get update\nEOF", "a heredoc"),
        ("COPY <<-'EOT' /etc/app.conf\nkey=1\nEOT", "a heredoc"),
    ],
)
def test_buildkit_only_steps_are_refused_naming_the_line(step: str, feature: str) -> None:
    text = f"# syntax=docker/dockerfile:1\nFROM python:3.12-slim\n\n{step}\n"
    env = cell(text)
    with pytest.raises(SpecError) as info:
        render_dockerfile(env, environ={})
    assert info.value.line == 4
    assert info.value.field == "docker.base_dockerfile"
    assert str(info.value).startswith(f"line 4, field 'docker.base_dockerfile': {feature}")


def test_classic_steps_pass() -> None:
    text = "FROM python:3.12-slim\nCOPY --chown=1000 . /app\nRUN pip install --no-cache-dir six\n"
    assert "COPY --chown=1000 . /app" in render_dockerfile(cell(text), environ={})


# -- the AzureML entry points ---------------------------------------------------------------------
def test_base_dockerfile_takes_a_path_or_text(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.12-slim\nRUN echo hi\n")
    env = Environment("x")
    env.docker.base_dockerfile = str(dockerfile)
    assert env.docker.base_dockerfile == dockerfile.read_text()
    env.docker.base_dockerfile = dockerfile  # a Path too
    assert env.docker.base_dockerfile == dockerfile.read_text()
    env.docker.base_dockerfile = "FROM python:3.12-slim"  # one line of text is text
    assert env.docker.base_dockerfile == "FROM python:3.12-slim"
    with pytest.raises(SpecError, match=r"cannot read the Dockerfile .*/missing"):
        env.docker.base_dockerfile = str(tmp_path / "missing")


def test_from_docker_image_and_the_directory_round_trip(tmp_path: Path) -> None:
    from jupyter_envs import Container  # noqa: F401  (exported at the top level, as asked)

    env = Environment.from_docker_image("img", "python:3.12-slim")
    assert (env.docker.base_image, env.detected_format) == ("python:3.12-slim", "Dockerfile")
    rich = Environment(
        "rich", pip=[f"six==1.17.0 --hash={SIX_HASH}"], pip_constraints=["numpy<2"], python="3.11"
    )
    written = rich.save_to_directory(tmp_path / "saved")
    assert (tmp_path / "saved" / "environment.json") in written
    back = Environment.load_from_directory(tmp_path / "saved")
    assert back.to_dict() == rich.to_dict()
    assert back.spec_hash == rich.spec_hash
    with pytest.raises(SpecError, match="pass overwrite=True"):
        rich.save_to_directory(tmp_path / "saved")
    rich.save_to_directory(tmp_path / "saved", overwrite=True)
    # A folder with only a requirements.txt (a project's own) loads too.
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("six\n")
    assert Environment.load_from_directory(project).pip_requirements == ("six",)
    with pytest.raises(SpecError, match=r"holds no environment\.json"):
        Environment.load_from_directory(tmp_path / "saved" / ".." / "project" / "..")
