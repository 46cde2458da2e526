"""Registry semantics and atomicity, with the fake builder (no installs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jupyter_envs import CancelToken, Environment, EnvManager, Workspace
from jupyter_envs.errors import BuildCancelledError, BuildError, NotFoundError
from jupyter_envs.events import Event, LogLine, Progress


def fake(name: str = "demo", *pip: str, **kw: object) -> Environment:
    return Environment(name, pip=pip or ("six",), backend="fake", **kw)  # type: ignore[arg-type]


def test_build_registers_version_lock_and_kernelspec(workspace: Workspace) -> None:
    result = fake("demo", "six==1.17.0", "requests").build(ws=workspace)
    assert (result.version, result.cache_hit, result.kernel_name) == (1, False, "jenv-demo-v1")
    record = workspace.get("demo")
    assert record.status == "ready"
    assert record.lock == "requests==0.0.0\nsix==1.17.0\n"
    assert record.build_seconds is not None
    spec = json.loads((workspace.kernels_dir / "jenv-demo-v1" / "kernel.json").read_text())
    assert spec["metadata"]["jupyter_envs"] == {
        "env": "demo",
        "version": 1,
        "spec_hash": result.spec_hash,
        "backend": "fake",
        "runtime": "local",
        "description": "",
    }
    assert spec["display_name"].startswith("demo v1")
    assert Path(result.log_path or "").read_text().count("+ six") == 1


def test_unchanged_spec_is_a_hit_without_subprocess(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake().build(ws=workspace)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    again = fake().build(ws=workspace)
    assert again.cache_hit
    assert again.version == 1


def test_new_version_only_when_hash_changes(workspace: Workspace) -> None:
    assert fake("demo", "six").build(ws=workspace).version == 1
    assert fake("demo", "six", "requests").build(ws=workspace).version == 2
    # Back to the first spec: its version is reused, no third one appears.
    hit = fake("demo", "six").build(ws=workspace)
    assert (hit.version, hit.cache_hit) == (1, True)
    assert [v.version for v in workspace.versions("demo")] == [1, 2]
    assert Environment.get("demo", ws=workspace).version == 2
    assert Environment.get("demo", version=1, ws=workspace).pip_requirements == ("six",)


def test_force_rebuild_replaces_artifact_in_place(workspace: Workspace) -> None:
    first = fake().build(ws=workspace)
    forced = fake().build(ws=workspace, force=True)
    assert (forced.version, forced.cache_hit) == (1, False)
    assert forced.artifact != first.artifact
    assert not Path(first.artifact).exists()
    assert Path(forced.artifact).exists()


def test_force_rebuild_keeps_an_artifact_a_kernel_runs_from(workspace: Workspace) -> None:
    """Deleting a venv under a running kernel breaks its next import: it stays until the kernel
    has stopped, and a later build of the name removes it."""
    first = fake().build(ws=workspace)
    program = Path(first.artifact) / "bin" / "python"
    program.parent.mkdir()
    program.symlink_to(sys.executable)
    kernel = subprocess.Popen([str(program), "-c", "import time; time.sleep(60)"])
    try:
        events: list[Event] = []
        forced = fake().build(ws=workspace, force=True, on_event=events.append)
        assert forced.artifact != first.artifact
        assert Path(first.artifact).is_dir()
        lines = [e.text for e in events if isinstance(e, LogLine)]
        assert any(
            line.startswith(f"The replaced build {first.artifact} is kept while its kernel runs")
            and f"pid {kernel.pid}" in line
            for line in lines
        ), lines
        # Still in use: a build of the name leaves it alone.
        fake("demo", "requests").build(ws=workspace)
        assert Path(first.artifact).is_dir()
    finally:
        kernel.kill()
        kernel.wait()
    fake("demo", "tomli").build(ws=workspace)
    assert not Path(first.artifact).exists()
    assert Path(forced.artifact).is_dir()


def test_register_without_building_then_build_promotes(workspace: Workspace) -> None:
    registered = fake().register(ws=workspace)
    assert registered.version == 1
    assert workspace.get("demo").status == "registered"
    assert not (workspace.kernels_dir / "jenv-demo-v1").exists()
    assert fake().register(ws=workspace).version == 1  # idempotent
    result = fake().build(ws=workspace)
    assert (result.version, result.cache_hit) == (1, False)
    assert workspace.get("demo").status == "ready"


def test_list_get_and_remove(workspace: Workspace) -> None:
    fake("alpha").build(ws=workspace)
    fake("beta", "six", "requests").build(ws=workspace)
    listed = Environment.list(ws=workspace)
    assert sorted(listed) == ["alpha", "beta"]
    assert listed["beta"].version == 1
    mgr = EnvManager(workspace)
    artifact = Path(workspace.get("alpha").artifact or "")
    mgr.remove("alpha")
    assert sorted(Environment.list(ws=workspace)) == ["beta"]
    assert not (workspace.kernels_dir / "jenv-alpha-v1").exists()
    assert not artifact.exists()
    with pytest.raises(NotFoundError, match="no environment named 'alpha'"):
        Environment.get("alpha", ws=workspace)
    with pytest.raises(NotFoundError, match="has no version 7"):
        Environment.get("beta", version=7, ws=workspace)


def test_remove_one_version_keeps_the_others(workspace: Workspace) -> None:
    fake("demo", "six").build(ws=workspace)
    fake("demo", "requests").build(ws=workspace)
    EnvManager(workspace).remove("demo", 1)
    assert [v.version for v in workspace.versions("demo")] == [2]
    assert not (workspace.kernels_dir / "jenv-demo-v1").exists()
    assert (workspace.kernels_dir / "jenv-demo-v2").exists()


def test_failed_build_keeps_previous_version(workspace: Workspace) -> None:
    good = fake().build(ws=workspace)
    before = workspace.snapshot()
    with pytest.raises(BuildError, match="asked to fail") as info:
        fake("demo", "six", "fail-build").build(ws=workspace)
    assert info.value.log_path
    assert Path(info.value.log_path).is_file()
    assert workspace.snapshot() == before
    assert Path(good.artifact).exists()
    assert [b.status for b in workspace.builds("demo")] == ["succeeded", "failed"]
    assert not [p for p in workspace.env_dir("demo").iterdir() if p.name.startswith(".staging")]


def test_events_stream_in_order(workspace: Workspace) -> None:
    events: list[Event] = []
    fake("demo", "six", "requests").build(ws=workspace, on_event=events.append)
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert [e.text for e in events if isinstance(e, LogLine)] == [" + six", " + requests"]


def test_cancel_stops_build_and_registers_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_ENVS_FAKE_DELAY", "30")
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(BuildCancelledError):
        EnvManager(workspace).build(fake(), cancel=token)
    assert workspace.snapshot() == {"environments": [], "versions": []}
    assert [b.status for b in workspace.builds("demo")] == ["cancelled"]


_BUILD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from jupyter_envs import Environment, Workspace
    ws = Workspace(sys.argv[1], sys.argv[2])
    r = Environment("demo", pip=["six"], backend="fake").build(ws=ws)
    print(json.dumps({"version": r.version, "hit": r.cache_hit}))
    """
)


def _spawn_build(workspace: Workspace, delay: str) -> subprocess.Popen[str]:
    env = {**os.environ, "JUPYTER_ENVS_FAKE_DELAY": delay}
    return subprocess.Popen(
        [sys.executable, "-c", _BUILD_SCRIPT, str(workspace.root), str(workspace.kernels_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_same_spec_build_once(workspace: Workspace) -> None:
    procs = [_spawn_build(workspace, "1.5") for _ in range(2)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(r["hit"] for r in results) == [False, True]
    assert {r["version"] for r in results} == {1}
    assert len(workspace.builds("demo")) == 1


def _wait_for_running_build(workspace: Workspace, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(b.status == "running" for b in workspace.builds("demo")):
            return
        time.sleep(0.05)
    raise AssertionError("the build never started")


def test_killed_build_leaves_previous_version_and_is_swept(workspace: Workspace) -> None:
    fake("demo", "requests").build(ws=workspace)
    before = workspace.snapshot()
    proc = _spawn_build(workspace, "60")
    try:
        _wait_for_running_build(workspace)
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert workspace.snapshot() == before
    # The next build of that name notices the dead build, sweeps its leftovers and succeeds.
    result = fake("demo", "six").build(ws=workspace)
    assert result.version == 2
    statuses = [b.status for b in workspace.builds("demo")]
    assert statuses == ["succeeded", "failed", "succeeded"]
    assert "interrupted" in (workspace.builds("demo")[1].error or "")
    leftovers = [p.name for p in workspace.env_dir("demo").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_deleted_artifact_is_rebuilt_not_reused(workspace: Workspace) -> None:
    first = fake().build(ws=workspace)
    import shutil

    shutil.rmtree(first.artifact)
    events: list[Event] = []
    again = fake().build(ws=workspace, on_event=events.append)
    assert not again.cache_hit
    assert Path(again.artifact).exists()
    lines = [e.text for e in events if isinstance(e, LogLine)]
    assert f"demo v1 cannot be reused (its directory {first.artifact} is gone); rebuilding" in lines
    # Same spec, same version number: the rebuilt artifact replaces the lost one.
    assert again.version == first.version
    assert fake().build(ws=workspace).cache_hit


def test_a_venv_without_its_interpreter_cannot_be_reused(tmp_path: Path) -> None:
    from jupyter_envs.engines.builders.uv import UvBuilder

    venv = tmp_path / "v1"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    assert UvBuilder().artifact_problem(venv) == f"its interpreter {python} is gone"
    (venv / "bin" / "python").symlink_to(sys.executable)
    assert UvBuilder().artifact_problem(venv) is None
    assert UvBuilder().artifact_problem(tmp_path / "nope") == (
        f"its directory {tmp_path / 'nope'} is gone"
    )


def test_missing_kernelspec_is_restored_on_hit(workspace: Workspace) -> None:
    fake().build(ws=workspace)
    import shutil

    shutil.rmtree(workspace.kernels_dir / "jenv-demo-v1")
    assert fake().build(ws=workspace).cache_hit
    assert (workspace.kernels_dir / "jenv-demo-v1" / "kernel.json").is_file()


def test_export_formats(workspace: Workspace) -> None:
    fake("demo", "six==1.17.0", python="3.11").build(ws=workspace)
    mgr = EnvManager(workspace)
    assert mgr.export("demo", fmt="lock") == "six==1.17.0\n"
    assert mgr.export("demo", fmt="requirements") == "six==1.17.0\n"
    assert "- python=3.11" in mgr.export("demo", fmt="conda")
    assert json.loads(mgr.export("demo", fmt="json"))["pip"] == ["six==1.17.0"]
    fake("other").register(ws=workspace)
    with pytest.raises(NotFoundError, match="has not been built"):
        mgr.export("other", fmt="lock")


def test_curated_environments_build_by_name(workspace: Workspace) -> None:
    from jupyter_envs.spec import curated

    assert {"minimal", "scientific", "ml-cpu"} <= set(curated.names())
    env = curated.get("scientific")
    assert "numpy" in env.pip_requirements
    assert env.description
    with pytest.raises(NotFoundError, match="curated: "):
        EnvManager(workspace).build_named("no-such-env")


def test_a_failed_first_build_leaves_no_folder_and_remove_cleans_leftovers(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from jupyter_envs.frontends.cli import main

    with pytest.raises(BuildError):
        fake("never", "fail-build").build(ws=workspace)
    assert not workspace.env_dir("never").exists()  # was an empty envs/never/ left behind
    assert [b.status for b in workspace.builds("never")] == ["failed"]  # its log is kept
    assert main(["logs", "never"]) == 0
    assert "asked to fail" in capsys.readouterr().out

    # What a build killed before it could clean up leaves: `remove` deletes it.
    staging = workspace.env_dir("never") / ".staging-killed"
    staging.mkdir(parents=True)
    (staging / "half-written").write_text("x")
    assert main(["remove", "never"]) == 0
    out = capsys.readouterr().out
    assert "Removed what failed builds of never left (it was never registered)." in out
    assert not workspace.env_dir("never").exists()
    assert not (workspace.root / "logs" / "never").exists()
    assert main(["remove", "never"]) == 1  # nothing left: the usual "not registered"
    assert "no environment named 'never'" in capsys.readouterr().err
