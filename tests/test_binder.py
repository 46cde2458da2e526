"""binder/ launches this repository on Binder with the extension enabled: its install, replayed.

repo2docker installs ``binder/environment.yml`` into an image that already has JupyterLab, then runs
``binder/postBuild`` from the repository root. The test does the same in a fresh venv in its tmp
dir: it installs the Python packages that environment.yml asks for, runs postBuild in a copy of the
repository as a fresh clone has it (no prebuilt labextension, so the wheel build really runs npm),
and checks with the venv's own ``jupyter`` that the server extension and the labextension are both
enabled and valid. Caches (pip, npm) and Jupyter's user dirs go to the tmp dir too.

Takes about two minutes (most of it the JupyterLab install and the npm build).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"

_NPM_MISSING = (
    None
    if shutil.which("npm")
    else "npm not found: binder/postBuild builds the JupyterLab extension with npm "
    "(on Binder, Node.js comes from binder/environment.yml)"
)

# Conda packages of environment.yml that are not Python packages: the venv is the Python, npm must
# be on the machine (checked above).
_NOT_FROM_PIP = {"python", "pip", "nodejs"}

# What a fresh clone does not have (see .gitignore); above all the prebuilt labextension, whose
# presence would let the wheel build skip npm.
_GENERATED = {
    ".git",
    ".venv",
    ".ci-cache",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
    "__pycache__",
    "node_modules",
    "build",
    "dist",
}
_GENERATED_PATHS = {
    "jupyter_envs/labextension",
    "labextension/lib",
    "labextension/tsconfig.tsbuildinfo",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _pip_requirements(environment_yml: Path) -> list[str]:
    """environment.yml's Python packages as pip requirements (conda ``x=1.2`` is ``x==1.2.*``)."""
    spec = yaml.safe_load(environment_yml.read_text())
    reqs: list[str] = []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            reqs.extend(str(r) for r in dep.get("pip", []))
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", str(dep).strip())
        assert m, f"unreadable dependency in {environment_yml}: {dep!r}"
        name, version = m.group(1), m.group(2).replace(" ", "")
        if name.lower() in _NOT_FROM_PIP:
            continue
        if re.fullmatch(r"=[^=].*", version):
            version = f"=={version[1:]}.*"
        reqs.append(name + version)
    return reqs


def _fresh_clone(dest: Path) -> Path:
    """Copy the work tree (uncommitted edits included) without what a build or a tool made."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(ROOT)
        return {
            n
            for n in names
            if n in _GENERATED
            or n.endswith(".egg-info")
            or (rel / n).as_posix() in _GENERATED_PATHS
        }

    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    assert not (dest / "jupyter_envs" / "labextension").exists()
    return dest


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run a command in its own process group; return stdout+stderr, failing with them on error.

    On a timeout (or any interruption) the whole group is killed: npm and the build it starts
    must not outlive the test.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    assert proc.returncode == 0, f"{' '.join(cmd)} exited with {proc.returncode}:\n{out}"
    return _ANSI.sub("", out)


def _sections(listing: str, header: re.Pattern[str]) -> dict[str, list[str]]:
    """Lines of a ``jupyter ... list`` output grouped under the header lines they follow."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in listing.splitlines():
        if m := header.match(line.strip()):
            current = m.group(1)
        else:
            sections.setdefault(current, []).append(line.strip())
    return sections


@pytest.mark.skipif(_NPM_MISSING is not None, reason=str(_NPM_MISSING))
def test_binder_install_enables_server_and_lab_extension(tmp_path: Path) -> None:
    started = time.monotonic()
    work = tmp_path / "binder"
    venv = work / "venv"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "PYTHON", "CONDA", "VIRTUAL_ENV"))
        and k != "HATCH_JUPYTER_BUILDER_SKIP_NPM"
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(work / "jupyter-config"),
        JUPYTER_DATA_DIR=str(work / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"),
        IPYTHONDIR=str(work / "ipython"),
        PIP_CACHE_DIR=str(work / "pip-cache"),
        npm_config_cache=str(work / "npm-cache"),
        npm_config_update_notifier="false",
    )

    # The image: Python and what environment.yml adds to it (JupyterLab).
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env, timeout=300)
    reqs = _pip_requirements(BINDER / "environment.yml")
    assert any(r.startswith("jupyterlab") for r in reqs), reqs
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-qq", *reqs], cwd=tmp_path, env=env, timeout=900)

    # repo2docker: `./binder/postBuild` from the root of the checked-out repository.
    repo = _fresh_clone(work / "repo")
    post_build = repo / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    _run(["./binder/postBuild"], cwd=repo, env=env, timeout=1200)
    assert (repo / "jupyter_envs" / "labextension" / "package.json").is_file()  # npm really ran

    jupyter = str(venv / "bin" / "jupyter")
    server = _run([jupyter, "server", "extension", "list"], cwd=repo, env=env, timeout=120)
    by_dir = _sections(server, re.compile(r"Config dir:\s*(.*)"))
    ours = by_dir.get(str(venv / "etc" / "jupyter"), [])
    assert "jupyter_envs enabled" in ours, server
    assert any(re.fullmatch(r"jupyter_envs\s+\S*\s*OK", ln) for ln in ours), server

    lab = _run([jupyter, "labextension", "list"], cwd=repo, env=env, timeout=120)
    by_dir = _sections(lab, re.compile(r"(/\S*/labextensions)$"))
    ours = by_dir.get(str(venv / "share" / "jupyter" / "labextensions"), [])
    assert any(re.match(r"jupyter-envs\s+v\S+\s+enabled\s+OK\b", ln) for ln in ours), lab

    print(f"binder install replayed in {time.monotonic() - started:.0f} s")
    shutil.rmtree(work)  # ~1 GB (node_modules, venv, npm cache); kept when the test fails
