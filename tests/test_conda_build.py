"""Conda environments built for real with py-rattler, against a local channel made by the tests.

The channel (tests/_conda_channel.py) holds a real ``python`` (this interpreter, packaged), so
kernels start from the conda prefix; pip sections are installed by uv from the index.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from jupyter_envs import Environment, Workspace
from jupyter_envs.engines import condalock
from jupyter_envs.engines.builders import CancelToken
from jupyter_envs.engines.builders.conda import CHANNEL_ALIAS_VAR, resolve_channels
from jupyter_envs.errors import (
    BuildCancelledError,
    BuildError,
    LockNotHonouredError,
    SpecError,
)
from jupyter_envs.events import Event, LogLine, Progress
from jupyter_envs.facade.carry import carried
from jupyter_envs.facade.manager import get_manager
from jupyter_envs.spec._conda import CondaDependencies
from tests._kernel import execute
from tests._wheels import tiny_wheel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def channel(conda_channel: Path) -> Path:
    return conda_channel


def _env_yml(channel: Path, *deps: str, pip: tuple[str, ...] = (), extra: str = "") -> str:
    lines = ["name: x", "channels:", f"  - {channel.as_uri()}", "dependencies:"]
    lines += [f"  - {d}" for d in deps]
    if pip:
        lines += ["  - pip:", *[f"      - {p}" for p in pip]]
    return "\n".join(lines) + "\n" + extra


def _ws(tmp: Path) -> Workspace:
    return Workspace(tmp / "store", tmp / "kernels")


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, channel: Path
) -> tuple[Workspace, Path, list[Event]]:
    """One conda env built once for the module: python, a tool and its dependency, pip, six."""
    data = tmp_path_factory.mktemp("conda-data")
    ws = _ws(data)
    text = _env_yml(
        channel,
        "python=3.11",
        "jenvs-tool",
        "pip",
        pip=("six==1.17.0",),
        extra="variables:\n  JENVS_FLAG: 'on'\n",
    )
    env = Environment.from_text("condasmoke", text)
    events: list[Event] = []
    result = env.build(ws=ws, on_event=events.append)
    assert not result.cache_hit
    assert result.backend == "conda"
    return ws, data, events


def test_the_lock_records_every_conda_record_and_pip_pin(
    built: tuple[Workspace, Path, list[Event]], channel: Path
) -> None:
    ws, _, _ = built
    record = ws.get("condasmoke")
    lock = condalock.parse(record.lock or "")
    names = {pin.name: pin for pin in lock.pins}
    assert set(names) == {"python", "jenvs-tool", "jenvs-hello", "pip"}
    assert names["jenvs-hello"].version == "1.0"  # jenvs-tool needs jenvs-hello <2
    assert names["python"].subdir == "linux-64"
    assert names["jenvs-hello"].subdir == "noarch"
    assert all(len(pin.sha256) == 64 and pin.url.startswith(channel.as_uri()) for pin in lock.pins)
    assert "six==1.17.0" in lock.pip
    assert any(p.startswith("ipykernel==") for p in lock.pip)
    # pip itself came from conda: not a pip pin.
    assert not any(p.startswith("pip==") for p in lock.pip)
    assert lock.platform == "linux-64"
    # Nothing left from the build beside the registered prefix.
    assert not [p for p in (ws.root / "envs" / "condasmoke").iterdir() if p.name.startswith(".")]


def test_progress_has_the_conda_phases(built: tuple[Workspace, Path, list[Event]]) -> None:
    _, _, events = built
    phases = [e.phase for e in events if isinstance(e, Progress)]
    for phase in ("solve", "download", "link", "pip", "lock", "done"):
        assert phase in phases, phases
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions)
    texts = [e.text for e in events if isinstance(e, LogLine)]
    assert any(t.startswith("Solved 4 packages") for t in texts)
    assert "Fetching 4 packages" in "\n".join(texts)
    assert "Fetched python" in texts


def test_a_kernel_runs_in_the_conda_prefix(
    built: tuple[Workspace, Path, list[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, data, _ = built
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    prefix = Path(ws.get("condasmoke").artifact or "")
    km = KernelManager(kernel_name="jenv-condasmoke-v1")
    km.start_kernel()
    try:
        out = execute(
            km,
            "import os, subprocess, sys, six\n"
            "print(sys.prefix); print(six.__version__); print(os.environ['JENVS_FLAG'])\n"
            "print(subprocess.run(['jenvs-tool'], capture_output=True, text=True).stdout)",
        )
    finally:
        km.shutdown_kernel(now=True)
    lines = out.split()
    assert Path(lines[0]).resolve() == prefix.resolve()
    assert lines[1:4] == ["1.17.0", "on", "jenvs-tool"]
    # Scripts uv installed point at the registered prefix, not the staging folder it used.
    assert (prefix / "bin" / "ipython").read_text().startswith(f"#!{prefix}/bin/python")


def test_a_second_env_links_from_the_shared_cache(
    built: tuple[Workspace, Path, list[Event]], channel: Path
) -> None:
    ws, _, _ = built
    events: list[Event] = []
    env = Environment.from_text("condasecond", _env_yml(channel, "python=3.11", "jenvs-hello=1.0"))
    env.build(ws=ws, on_event=events.append)
    texts = [e.text for e in events if isinstance(e, LogLine)]
    assert any(t.startswith("Fetching 0 packages (0 B)") for t in texts), texts
    assert not any(t.startswith(("Fetched", "Downloading")) for t in texts), texts
    assert any("linked" in e.message for e in events if isinstance(e, Progress))


def test_rebuilding_from_the_lock_gives_the_same_records(
    built: tuple[Workspace, Path, list[Event]], channel: Path, tmp_path: Path
) -> None:
    ws, _, _ = built
    lock = ws.get("condasmoke").lock or ""
    # The spec now asks for something else: the lock wins.
    env = Environment.from_text("condacopy", _env_yml(channel, "jenvs-hello"))
    other = _ws(tmp_path)
    get_manager(other).build(env, lock=lock)
    again = condalock.parse(other.get("condacopy").lock or "")
    first = condalock.parse(lock)
    assert sorted(again.pins, key=lambda p: p.name) == sorted(first.pins, key=lambda p: p.name)
    assert set(first.pip) <= set(again.pip)


def test_the_lock_is_an_explicit_spec_file(built: tuple[Workspace, Path, list[Event]]) -> None:
    ws, _, _ = built
    text = get_manager(ws).export("condasmoke", fmt="lock")
    assert "@EXPLICIT" in text.splitlines()
    # conda's explicit reader: every non-comment line after @EXPLICIT is URL#sha256:hash.
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert body[0] == "@EXPLICIT"
    assert all("#sha256:" in ln and ln.endswith(tuple("0123456789abcdef")) for ln in body[1:])
    with pytest.raises(SpecError, match="conda environment"):
        get_manager(ws).export("condasmoke", fmt="pylock")


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        (("jenvs-tool", "jenvs-hello>=2"), "jenvs-hello"),
        (("jenvs-no-such-package",), "jenvs-no-such-package"),
        (("jenvs-mac-only",), "not available for linux-64"),
        (("jenvs-needs-py2",), "python"),
    ],
)
def test_what_cannot_be_solved_is_explained_and_nothing_registered(
    channel: Path, tmp_path: Path, deps: tuple[str, ...], message: str
) -> None:
    ws = _ws(tmp_path)
    env = Environment.from_text("bad", _env_yml(channel, *deps))
    with pytest.raises(BuildError) as info:
        env.build(ws=ws)
    assert message in info.value.message
    assert ws.versions("bad") == []
    assert not list((ws.root / "envs").glob("bad/*"))


def test_an_unreachable_channel_is_named(tmp_path: Path) -> None:
    env = Environment.from_text(
        "bad", "channels: [http://127.0.0.1:9/team-channel]\ndependencies: [jenvs-hello]\n"
    )
    with pytest.raises(BuildError) as info:
        env.build(ws=_ws(tmp_path))
    assert "the channel 'http://127.0.0.1:9/team-channel' could not be read" in info.value.message


def test_a_channel_without_python_says_a_kernel_needs_one(channel: Path, tmp_path: Path) -> None:
    # A channel of its own with no python package at all.
    from tests._conda_channel import index, package

    bare = tmp_path / "bare"
    package(bare, "jenvs-lonely", "1.0")
    index(bare)
    env = Environment.from_text(
        "bad", f"channels: [{bare.as_uri()}, nodefaults]\ndependencies: [jenvs-lonely]\n"
    )
    with pytest.raises(BuildError, match="python"):
        env.build(ws=_ws(tmp_path))


def test_a_python_too_old_for_ipykernel_is_refused(channel: Path, tmp_path: Path) -> None:
    # An old file reads (its spec can be shown and edited); building it says why not.
    env = Environment.from_text("bad", _env_yml(channel, "python=3.7", "jenvs-hello"))
    with pytest.raises(
        SpecError, match=r"Python 3\.7 cannot run a kernel: ipykernel needs Python 3\.9"
    ):
        env.build(ws=_ws(tmp_path))


def test_a_failed_rebuild_keeps_the_last_good_version(channel: Path, tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    good = Environment.from_text("keep", _env_yml(channel, "jenvs-hello=1.0"))
    good.build(ws=ws)
    bad = Environment.from_text("keep", _env_yml(channel, "jenvs-hello=9.9"))
    with pytest.raises(BuildError):
        bad.build(ws=ws)
    versions = ws.versions("keep")
    assert [v.version for v in versions] == [1]
    assert (Path(versions[0].artifact or "") / "bin" / "python").exists()


def test_a_cancelled_build_leaves_nothing(channel: Path, tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    cancel = CancelToken()

    def on_event(event: Event) -> None:
        if isinstance(event, Progress) and event.phase == "pip":
            cancel.cancel()

    env = Environment.from_text("gone", _env_yml(channel, "jenvs-hello"))
    with pytest.raises(BuildCancelledError):
        get_manager(ws).build(env, on_event=on_event, cancel=cancel)
    assert ws.versions("gone") == []
    assert not list((ws.root / "envs").glob("gone/*"))


def test_concurrent_builds_of_one_spec_build_once(channel: Path, tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    text = _env_yml(channel, "jenvs-data")
    results = []

    def build() -> None:
        results.append(Environment.from_text("twice", text).build(ws=ws))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.cache_hit for r in results) == [False, True]
    assert [v.version for v in ws.versions("twice")] == [1]


def test_build_strings_and_channel_qualified_specs(channel: Path, tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    text = (
        f"channels: [{channel.as_uri()}]\n"
        f"dependencies:\n  - jenvs-data=1.0=a_*\n  - {channel.as_uri()}::jenvs-hello 2.0\n"
    )
    Environment.from_text("builds", text).build(ws=ws)
    pins = {p.name: p for p in condalock.parse(ws.get("builds").lock or "").pins}
    assert pins["jenvs-data"].build == "a_0"
    assert pins["jenvs-hello"].version == "2.0"


def test_a_local_folder_channel_relative_to_the_file(channel: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "channel").symlink_to(channel)
    spec = project / "environment.yml"
    spec.write_text("channels: [./channel]\ndependencies: [jenvs-hello=1.0]\n")
    env = Environment.from_conda_specification("local", str(spec))
    env.build(ws=_ws(tmp_path))


def test_the_azureml_seed_way(channel: Path, tmp_path: Path) -> None:
    conda = CondaDependencies()
    conda.add_channel(channel.as_uri())
    conda.add_conda_package("python=3.11")
    conda.add_conda_package("jenvs-hello=1.0")
    conda.add_pip_package("six==1.17.0")
    saved = conda.save(tmp_path / "env.yml")
    ws = _ws(tmp_path)
    result = Environment.from_conda_specification("seed", str(saved)).build(ws=ws)
    assert result.backend == "conda"
    # The same, attached to an Environment after construction.
    env = Environment("seed2")
    env.python.conda_dependencies = conda
    assert env.build(ws=ws).backend == "conda"
    shown = env.python.conda_dependencies.serialize_to_string()
    assert "jenvs-hello=1.0" in shown
    assert "six==1.17.0" in shown


def test_a_curated_conda_env_through_the_channel_alias(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "conda-forge").symlink_to(channel)
    monkeypatch.setenv(CHANNEL_ALIAS_VAR, str(mirror))
    ws = _ws(tmp_path)
    result = get_manager(ws).build_named("conda-python")
    assert result.backend == "conda"
    lock = condalock.parse(ws.get("conda-python").lock or "")
    assert {p.name for p in lock.pins} >= {"python", "pip"}
    assert all(p.url.startswith((mirror / "conda-forge").as_uri()) for p in lock.pins)


def test_resolve_channels() -> None:
    urls = resolve_channels(
        ["conda-forge", "nodefaults", "defaults", "https://x.org/ch/", "/srv/ch"],
        alias="https://mirror.example/",
    )
    assert list(urls.items()) == [
        ("https://mirror.example/conda-forge", "conda-forge"),
        ("https://repo.anaconda.com/pkgs/main", "defaults"),
        ("https://repo.anaconda.com/pkgs/r", "defaults"),
        ("https://x.org/ch", "https://x.org/ch/"),
        ("file:///srv/ch", "/srv/ch"),
    ]


def test_a_conda_env_without_rattler_installed_says_so(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['rattler'] = None\n"
        "from jupyter_envs.engines.builders.conda import CondaBuilder\n"
        "print(CondaBuilder().unavailable_reason())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "py-rattler is not installed" in out.stdout


def test_a_notebook_carries_a_conda_env_to_another_store(
    built: tuple[Workspace, Path, list[Event]], tmp_path: Path
) -> None:
    ws, _, _ = built
    record = carried(ws.get("condasmoke"))
    assert record.backend == "conda"
    here = get_manager(_ws(tmp_path))
    plan = here.restore_plan(record)
    assert plan.from_lock
    assert plan.lock_usable
    assert any(i.startswith("jenvs-hello 1.0 0 (file://") for i in plan.installs)
    assert "six==1.17.0" in plan.installs
    assert not plan.warnings
    result = here.restore(record)
    assert not result.cache_hit
    restored = condalock.parse(here.ws.get("condasmoke").lock or "")
    assert restored.pins == condalock.parse(record.lock or "").pins


def test_a_local_channel_missing_here_is_pointed_out(
    built: tuple[Workspace, Path, list[Event]], tmp_path: Path
) -> None:
    ws, _, _ = built
    record = carried(ws.get("condasmoke"))
    lock = (record.lock or "").replace("conda-channel-py", "gone-channel-py")
    moved = dataclasses.replace(record, lock=lock)
    plan = get_manager(_ws(tmp_path)).restore_plan(moved)
    assert any("is a folder of the first machine" in w for w in plan.warnings)
    with pytest.raises(LockNotHonouredError) as info:
        get_manager(_ws(tmp_path)).restore(moved)
    assert "could not be read" in str(info.value)


def test_the_pip_section_takes_url_requirements_and_options(channel: Path, tmp_path: Path) -> None:
    """Everything a requirements.txt may hold: here an option (--find-links) and a direct URL."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "1.0")
    wheel = wheels / "jenvs_tinypkg-1.0-py3-none-any.whl"
    text = _env_yml(
        channel,
        "jenvs-hello",
        pip=(f"--find-links {wheels}", f"jenvs-tinypkg @ {wheel.as_uri()}"),
    )
    ws = _ws(tmp_path)
    Environment.from_text("urls", text).build(ws=ws)
    lock = condalock.parse(ws.get("urls").lock or "")
    assert any(p.startswith("jenvs-tinypkg @ file://") for p in lock.pip), lock.pip
    prefix = Path(ws.get("urls").artifact or "")
    out = subprocess.run(
        [
            str(prefix / "bin" / "python"),
            "-c",
            "import jenvs_tinypkg; print(jenvs_tinypkg.VERSION)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1.0"
