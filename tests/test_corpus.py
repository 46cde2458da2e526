"""Environment files of public projects (``tests/corpus/``, each with its source in its first
line; trimmed), read the way a ``%%env`` cell reads them: ``Environment.from_text`` with the
notebook's folder. Each parses and builds, or fails with a clear error naming its line where it
truly cannot work here (issue #12).

Builds go through the registry with the fake builder (what every venv spec of the corpus does
up to the installer); a sample is built for real with uv. Conda specs wait for the conda builder
(issue #11): they must parse, and the builder's absence is said clearly. Dockerfiles are
rendered into the image build (where BuildKit-only steps are refused, naming the line).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_envs import Environment, EnvManager, Workspace
from jupyter_envs.engines.builders.dockerfile import render_dockerfile
from jupyter_envs.errors import SpecError

CORPUS = Path(__file__).resolve().parent / "corpus"
SUPPORT = {"constraints.txt"}  # files the corpus names, not entries of it
FILES = sorted(p.name for p in CORPUS.iterdir() if p.name not in SUPPORT)

# What each file must give: "build" (a venv spec, built), "conda" (parsed, for the conda
# builder), "image" (a Dockerfile that renders), or (line, words) of a clear error.
EXPECTED: dict[str, str | tuple[int, str]] = {
    "Dockerfile.binder-minimal": "image",
    "Dockerfile.docker-stacks-scipy": "image",
    "Dockerfile.micromamba": "image",
    "Dockerfile.pypi-publish": "image",
    # BuildKit cache mounts, on an engine that builds with the classic builder.
    "Dockerfile.uv-docker-example": (9, "RUN --mount needs BuildKit"),
    "Dockerfile.vllm-cache-mount": (9, "RUN --mount needs BuildKit"),
    "environment-binder-conda.yml": "conda",
    "environment-dask-tutorial.yml": "conda",
    "environment-fibonacci-pip-only.yml": "conda",
    "environment-geopandas-indent4.yml": "conda",
    # "tensorflow-data-validation=0.15.0" in a pip section: pip refuses it too.
    "environment-handson-ml2.yml": (12, "not a valid requirement"),
    "environment-matplotlib-docstart.yml": "conda",
    "environment-numpy-dev.yml": "conda",
    "environment-pandas-dev.yml": "conda",
    "environment-pangeo-one-space.yml": "conda",
    "environment-stable-diffusion.yml": "conda",
    "environment-xarray-ci.yml": "conda",
    "requirements-a1111-duplicates.txt": "build",
    "requirements-bedrock-hashes.txt": "build",
    "requirements-binder-pip-compile.txt": "build",
    "requirements-clip-compatible.txt": "build",
    "requirements-clip-git.txt": "build",
    "requirements-cpython-docs.txt": "build",
    "requirements-deepspeed-prerelease.txt": "build",
    "requirements-django-markers.txt": "build",
    "requirements-fastbook.txt": "build",
    "requirements-flask-dev.txt": "build",
    "requirements-handbook-old-pins.txt": "build",
    # Its -c and -r files live in the project's repository, not next to a notebook.
    "requirements-home-assistant-test.txt": (5, "not found, looked for"),
    "requirements-ipython-docs.txt": "build",
    "requirements-lightning-spaces.txt": "build",
    "requirements-mlflow-lint.txt": "build",
    "requirements-pytorch-mnist.txt": "build",
    "requirements-requests-dev.txt": "build",
    "requirements-sigstore-hashes.txt": "build",
    "requirements-skimage.txt": "build",
    "requirements-sphinx-docs.txt": "build",
    "requirements-textgen-wheel-urls.txt": "build",
    "requirements-transformers-example.txt": "build",
    "requirements-whisper.txt": "build",
    "requirements-yolov5.txt": "build",
    "requirements-z2jh-hub.txt": "build",
}


def test_the_corpus_is_large_and_every_file_names_its_source() -> None:
    assert len(FILES) >= 40
    assert sorted(EXPECTED) == FILES
    for name in FILES:
        first = (CORPUS / name).read_text().splitlines()[0]
        assert first.startswith("# Source: https://github.com/"), name


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """A notebook's folder: the project (for ``-e .``) and the files the corpus names."""
    folder = tmp_path / "notebook"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "project"\nversion = "0.1"\n')
    for name in SUPPORT:
        shutil.copy(CORPUS / name, folder / name)
    return folder


def read_cell(name: str, notebook: Path) -> Environment:
    """The path a ``%%env`` cell takes: its text, the notebook's folder."""
    return Environment.from_text("corpus", (CORPUS / name).read_text(), base_dir=notebook)


@pytest.mark.parametrize("name", FILES)
def test_each_file_parses_and_builds_or_says_why_not(
    name: str, notebook: Path, workspace: Workspace
) -> None:
    expected = EXPECTED[name]
    if isinstance(expected, tuple):
        line, words = expected

        def attempt() -> None:
            env = read_cell(name, notebook)
            render_dockerfile(env, environ={})  # Dockerfile errors come with the image build

        with pytest.raises(SpecError) as info:
            attempt()
        assert info.value.line == line, str(info.value)
        assert words in str(info.value)
        assert "Traceback" not in str(info.value)
        return
    env = read_cell(name, notebook)
    if expected == "image":
        assert env.detected_format == "Dockerfile"
        assert "# --- jupyter-envs layers ---" in render_dockerfile(env, environ={})
    elif expected == "conda":
        assert env.detected_format == "environment.yml"
        # Built by the conda builder (test_conda_build.py builds such files for real).
        assert EnvManager(workspace).builder_for(env).name == "conda"
    else:
        assert (env.detected_format, env.backend) == ("requirements.txt", "venv")
        fake = env.clone_with(backend="fake")
        result = fake.build(ws=workspace)
        assert result.version == 1
        record = workspace.get("corpus")
        assert record.spec["pip"] == list(env.pip_requirements)


@pytest.mark.integration
@pytest.mark.parametrize(
    "name", ["requirements-sigstore-hashes.txt", "requirements-binder-pip-compile.txt"]
)
def test_a_sample_builds_for_real_with_uv(name: str, notebook: Path, workspace: Workspace) -> None:
    env = read_cell(name, notebook)
    result = env.build(ws=workspace)
    lock = workspace.get("corpus").lock or ""
    for req in env.pip_requirements:
        pinned = req.split(" ", 1)[0]  # "six==1.16.0", hashes left out
        assert pinned in lock, (pinned, lock)
    assert result.kernel_name
