"""Shared fixtures.

Every test gets its own Jupyter data dir (so the default workspace and kernelspecs live in a
temporary folder) and the manager cache is cleared. A session check makes sure the suite left
no kernelspec in the real data dir and no kernel process of a test environment running.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from jupyter_envs.engines.store import Workspace
from jupyter_envs.facade import manager

# CI sets this so that a test skipped for a missing component (Docker engine, Chromium, ...) fails
# instead: CI must always run those tests for real. Locally they skip with their reason.
REQUIRE_ALL = os.environ.get("JUPYTER_ENVS_REQUIRE_ALL", "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but JUPYTER_ENVS_REQUIRE_ALL=1 forbids skips: {reason}"
    return report


# Where tests must never write: the data dir of whoever runs the suite.
_REAL_DATA_DIR = Path(os.environ.get("JUPYTER_DATA_DIR", Path.home() / ".local/share/jupyter"))


def _real_kernelspecs() -> set[str]:
    kernels = _REAL_DATA_DIR / "kernels"
    return {p.name for p in kernels.glob("jenv-*")} if kernels.is_dir() else set()


def _test_kernel_processes(marker: str) -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False
    ).stdout
    return [ln for ln in out.splitlines() if marker in ln and "ipykernel" in ln]


@pytest.fixture(scope="session", autouse=True)
def _no_leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = _real_kernelspecs()
    base = str(tmp_path_factory.getbasetemp())
    yield
    leaked = _real_kernelspecs() - before
    assert not leaked, f"tests left kernelspecs in the real data dir: {sorted(leaked)}"
    running = _test_kernel_processes(base)
    assert not running, f"tests left kernels running: {running}"


@pytest.fixture(autouse=True)
def isolated_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Jupyter data dir for every test; returns it."""
    data = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.delenv("JUPYTER_ENVS_STORE", raising=False)
    monkeypatch.delenv("JUPYTER_ENVS_KERNELS_DIR", raising=False)
    monkeypatch.setattr(manager, "_managers", {})
    return data


@pytest.fixture
def workspace(isolated_jupyter: Path) -> Workspace:
    """The default workspace of the isolated data dir."""
    return Workspace()


@pytest.fixture(scope="session")
def run_base() -> Iterator[str]:
    """The Docker base image of this run (see tests/_engine.py); at the end, everything this run
    made on the engine is removed, and a leak fails the session."""
    from tests import _engine

    tag = _engine.ensure_run_base()
    yield tag
    containers = _engine.run_containers()
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, check=False)
    left = _engine.remove_run_images(keep_base=False)
    assert not containers, f"tests left containers: {containers}"
    assert not left, f"tests left images: {left}"


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local conda channel of tests/_conda_channel.py (a packaged Python and small
    packages), made once per session."""
    from tests._conda_channel import make_channel

    return make_channel(tmp_path_factory.getbasetemp())
