"""The docker builder against a real engine: build, cache reuse, failures, credentials, Container.

Skipped (with the reason) when the engine is unreachable or the local base image is missing;
``JUPYTER_ENVS_REQUIRE_ALL=1`` turns that skip into a failure. The base image comes from
``JUPYTER_ENVS_DEFAULT_BASE_IMAGE`` (default ``jupyter-envs-test/python:bookworm``, made by
``scripts/docker/build-base-image.sh``); the builds use this run's labelled copy of it
(tests/_engine.py). Every test removes the images it tagged; the module removes the cache layers
its builds left and checks that none of its images or containers is left. It never looks at, or
removes, anything another run or server made on the engine.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_envs import Environment
from jupyter_envs.engines import condalock
from jupyter_envs.engines.builders import CancelToken
from jupyter_envs.engines.builders.docker import DockerBuilder, engine_unavailable_reason
from jupyter_envs.engines.builders.dockerfile import (
    VENV_PATH,
    image_details,
    render_dockerfile,
)
from jupyter_envs.engines.docker import LABEL_ENV, LABEL_SPEC_HASH, LABEL_VERSION
from jupyter_envs.engines.store import Workspace
from jupyter_envs.errors import BackendUnavailableError, BuildCancelledError, BuildError
from jupyter_envs.events import Event, LogLine
from jupyter_envs.facade.container import Container
from jupyter_envs.facade.manager import EnvManager
from tests import _engine

# Every build here is on this run's own base image (see tests/_engine.py), so the module knows
# exactly which images, cache layers and containers are its own.
BASE = _engine.RUN_BASE


def _skip_reason() -> str | None:
    reason = engine_unavailable_reason()
    if reason is not None:
        return f"no Docker engine: {reason}"
    return _engine.unavailable()


SKIP_REASON = _skip_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]


def _docker(*args: str) -> str:
    return _engine.docker(*args)


def _ids(*args: str) -> set[str]:
    return set(_docker(*args).split())


@pytest.fixture(scope="module", autouse=True)
def _engine_left_clean(run_base: str) -> Iterator[None]:
    """The module's images and cache layers are removed at its end; none of its containers or
    tagged images may be left. Nothing another run or server made is looked at."""
    yield
    ours = f"label={_engine.RUN_LABEL}={_engine.RUN_ID}"
    tags = _docker("images", "--filter", ours, "--format", "{{.Repository}}:{{.Tag}}").split()
    leaked_tags = [tag for tag in tags if tag.startswith("jupyter-envs/dt-")]
    containers = _engine.run_containers()
    left = _engine.remove_run_images()
    assert not leaked_tags, f"tests left tagged images: {leaked_tags}"
    assert not containers, f"tests left containers: {containers}"
    assert not left, f"tests left images: {left}"


@pytest.fixture(autouse=True)
def _base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_ENVS_DEFAULT_BASE_IMAGE", BASE)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique env name; its images are removed after the test (cache layers are kept)."""
    env_name = f"dt-{uuid.uuid4().hex[:8]}"
    yield env_name
    for image in _ids("images", "-q", "--no-trunc", "--filter", f"label={LABEL_ENV}={env_name}"):
        # --no-prune: the parent layers stay as cache for the next tests (the module removes them).
        subprocess.run(["docker", "rmi", "-f", "--no-prune", image], capture_output=True)


class Recorder:
    """Collects build events."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            self.lines.append(event.text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _labels(tag: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(
        _docker("image", "inspect", "-f", "{{json .Config.Labels}}", tag)
    )
    return labels


def _run(tag: str, code: str) -> str:
    return _docker("run", "--rm", "--network", "none", tag, "python", "-c", code).strip()


def _artifact_json(ws: Workspace, env_name: str, version: int | None = None) -> dict[str, Any]:
    record = EnvManager(ws).record(env_name, version)
    assert record.artifact is not None
    data: dict[str, Any] = json.loads((Path(record.artifact) / "image.json").read_text())
    return data


def test_build_small_env_then_add_a_package_reuses_layers(workspace: Workspace, name: str) -> None:
    env = Environment(name, pip=["six==1.17.0"], base_image=BASE)
    first = Recorder()
    started = time.perf_counter()
    result = env.build(ws=workspace, on_event=first)
    full = time.perf_counter() - started
    assert result.backend == "docker"
    info = _artifact_json(workspace, name)
    tag = info["tag"]
    assert tag == f"jupyter-envs/{name}:{result.spec_hash[:12]}"
    labels = _labels(tag)
    assert labels[LABEL_ENV] == name
    assert labels[LABEL_SPEC_HASH] == result.spec_hash
    assert labels[LABEL_VERSION]
    record = EnvManager(workspace).record(name)
    assert record.lock is not None
    assert "six==1.17.0" in record.lock.splitlines()
    assert (record.python_version or "").startswith("3.")
    out = _run(tag, "import six, jupyter_envs, ipykernel; print(six.__version__)")
    assert out == "1.17.0"
    # What is built is exactly what image_details() shows.
    assert info["dockerfile"] == image_details(env)["ingredients"]["dockerfile"]
    assert info["dockerfile"] == render_dockerfile(env)
    # The kernelspec starts the container launcher on this image.
    target = DockerBuilder().kernel_target(Path(record.artifact or ""))
    assert target.image == tag
    kernel = workspace.kernels_dir / (record.kernel_name or "") / "kernel.json"
    argv = json.loads(kernel.read_text())["argv"]
    assert argv[1:5] == ["-m", "jupyter_envs.engines.kernels.launcher", "--image", tag]
    assert any(line.startswith("Step 1/") for line in first.lines)

    # Add one package: every layer before the user's requirements comes from the cache.
    bigger = Environment(name, pip=["six==1.17.0", "tomli==2.0.1"], base_image=BASE)
    second = Recorder()
    started = time.perf_counter()
    bigger.build(ws=workspace, on_event=second)
    incremental = time.perf_counter() - started
    tag2 = _artifact_json(workspace, name)["tag"]
    assert _run(tag2, "import tomli, six; print(tomli.__name__)") == "tomli"
    cached = second.text.count("Using cache")
    assert cached >= 10, second.text
    old_layers = set(_docker("history", "-q", "--no-trunc", tag).split()) - {"<missing>"}
    new_layers = set(_docker("history", "-q", "--no-trunc", tag2).split()) - {"<missing>"}
    # venv + uv and the kernel-side layer are shared.
    assert len(old_layers & new_layers) >= 12
    ratio = incremental / full
    print(f"\nfull build {full:.1f} s, add one package {incremental:.1f} s, ratio {ratio:.2f}")
    if "Using cache" not in first.text:  # the first build was cold: the ratio means something
        assert ratio <= 0.5
    # v1 is still registered and its image still exists.
    assert EnvManager(workspace).record(name, 1).status == "ready"
    _docker("image", "inspect", tag)


def test_build_from_dockerfile_text(workspace: Workspace, name: str) -> None:
    text = f"FROM {BASE}\nRUN echo from-the-dockerfile > /opt/marker.txt\nENV MARK=1\n"
    env = Environment.from_text(name, text)
    assert env.backend == "docker"
    env.build(ws=workspace)
    info = _artifact_json(workspace, name)
    assert info["dockerfile"].startswith("# Generated by jupyter-envs")
    assert text.rstrip("\n") in info["dockerfile"]
    out = _run(
        info["tag"],
        "import jupyter_envs, ipykernel, os; print(open('/opt/marker.txt').read().strip(), "
        "os.environ['MARK'])",
    )
    assert out == "from-the-dockerfile 1"
    assert env.build(ws=workspace).cache_hit
    # The image removed behind our back (docker rmi, a prune): the next build rebuilds it rather
    # than handing out a kernel that cannot start.
    _docker("rmi", info["tag"])
    events = Recorder()
    again = env.build(ws=workspace, on_event=events)
    assert not again.cache_hit
    assert f"its image {info['tag']} is no longer on the Docker engine" in events.text
    _docker("image", "inspect", info["tag"])


def test_failing_step_keeps_the_previous_version(workspace: Workspace, name: str) -> None:
    Environment(name, pip=["six==1.17.0"], base_image=BASE).build(ws=workspace)
    good = _artifact_json(workspace, name)
    broken = Environment(
        name, pip=["six==1.17.0", "jupyter-envs-no-such-package-xyz==1.0"], base_image=BASE
    )
    with pytest.raises(BuildError) as info:
        broken.build(ws=workspace)
    message = str(info.value)
    assert "step " in message, message
    assert "RUN" in message, message
    assert "jupyter-envs-no-such-package-xyz" in message  # the log tail says why
    assert not isinstance(info.value, BuildCancelledError)
    record = EnvManager(workspace).record(name)
    assert (record.version, record.status) == (1, "ready")
    _docker("image", "inspect", good["tag"])  # still there


def test_missing_base_image_is_a_clear_error(workspace: Workspace, name: str) -> None:
    env = Environment(name, pip=["six"], base_image="jupyter-envs-test/no-such-image:0")
    with pytest.raises(BuildError, match="does not exist locally and cannot be pulled"):
        env.build(ws=workspace)
    text = Environment.from_text(name + "-df", "FROM jupyter-envs-test/no-such-image:0\n")
    with pytest.raises(BuildError, match="'jupyter-envs-test/no-such-image:0' does not exist"):
        text.build(ws=workspace)


class _AuthLog(http.server.SimpleHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bridge_host_address() -> str:
    """The address containers on the default bridge reach the host on.

    An engine that was just started reports only the bridge's ``Subnet`` (``Gateway`` appears
    later, or never, on Debian's 20.10): the gateway is then the subnet's first host, which is
    the address dockerd gives the ``docker0`` interface.
    """
    (config, *_) = json.loads(_docker("network", "inspect", "bridge"))[0]["IPAM"]["Config"]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"], strict=False).hosts()))


@pytest.fixture
def links_server(tmp_path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """An empty find-links page on the Docker bridge gateway; the Authorization headers seen."""
    gateway = _bridge_host_address()
    seen: list[str] = []
    handler: Callable[..., _AuthLog] = lambda *a, **k: _AuthLog(  # noqa: E731
        *a, directory=str(tmp_path), **k
    )
    _AuthLog.seen = seen
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gateway, server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_index_credentials_never_reach_history_labels_or_logs(
    workspace: Workspace,
    name: str,
    links_server: tuple[str, int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway, port, seen = links_server
    secret = f"s3cret-{uuid.uuid4().hex[:6]}"
    # find-links: the resolver reads it (so the credentials are really used) and still finds six
    # on the real index, so the build succeeds and there is an image to inspect.
    monkeypatch.setenv("PIP_FIND_LINKS", f"http://jenvuser:{secret}@{gateway}:{port}/")
    before = _ids("images", "-aq", "--no-trunc")
    events = Recorder()
    env = Environment(name, pip=["six==1.17.0"], base_image=BASE)
    details = json.dumps(image_details(env))
    assert secret not in details
    result = env.build(ws=workspace, on_event=events)
    assert any(h.startswith("Basic ") for h in seen), "the build never used the find-links URL"
    tag = _artifact_json(workspace, name)["tag"]
    assert secret not in events.text
    assert secret not in Path(result.log_path or "").read_text()
    assert secret not in _docker("history", "--no-trunc", tag)
    assert secret not in _docker("image", "inspect", tag)
    assert secret not in Path(result.artifact, "image.json").read_text()
    assert secret not in Path(result.artifact, "Dockerfile").read_text()
    # Nor in any image this build left in the engine (the install stage is dropped).
    for image in _ids("images", "-aq", "--no-trunc") - before:
        assert secret not in _docker("history", "--no-trunc", image), image
    assert _run(tag, "import six; print(six.__version__)") == "1.17.0"


def test_cancel_stops_the_build_and_its_container(workspace: Workspace, name: str) -> None:
    env = Environment.from_text(name, f"FROM {BASE}\nRUN echo sleeping && sleep 120\n")
    cancel = CancelToken()

    def on_event(event: Event) -> None:
        if isinstance(event, LogLine) and event.text.strip() == "sleeping":
            cancel.cancel()

    started = time.perf_counter()
    with pytest.raises(BuildCancelledError):
        EnvManager(workspace).build(env, on_event=on_event, cancel=cancel)
    assert time.perf_counter() - started < 60
    assert _engine.run_containers() == [], "the cancelled step's container is still there"


def test_container_api_builds_and_runs(tmp_path: Path, name: str) -> None:
    container = Container(BASE, python_dependencies=["six==1.17.0"], name=name)
    dockerfile = container.create_dockerfile(tmp_path / "ctx")
    assert dockerfile.read_text().splitlines()[1] == f"FROM {BASE}"
    assert (tmp_path / "ctx" / "jenv-build" / "runtime" / "jupyter_envs" / "__init__.py").is_file()
    tag, logs = container.build()
    assert tag == container.image_tag
    assert any("Successfully tagged" in line for line in logs)
    out = container.run(["python", "-c", "import six; print(six.__version__)"])
    assert out.strip() == "1.17.0"
    with pytest.raises(BuildError, match="exited with status 3"):
        container.run(["python", "-c", "raise SystemExit(3)"])
    with pytest.raises(BuildError, match="cannot be pulled"):
        Container("jupyter-envs-test/no-such-image:0").pull_image()


def test_unreachable_engine_is_backend_unavailable(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    reason = DockerBuilder().unavailable_reason()
    assert "not reachable" in (reason or "")
    with pytest.raises(BackendUnavailableError, match="'docker' builder"):
        Environment("dt-none", pip=["six"], base_image=BASE).build(ws=workspace)


def test_a_carried_docker_lock_rebuilds_the_same_versions_on_its_base(
    workspace: Workspace, name: str, tmp_path: Path
) -> None:
    """Issue #15: a Docker version's lock records its base image and every installed version;
    another store ("machine") restoring the notebook's record installs exactly those."""
    from jupyter_envs.facade.carry import carried, plan, restore

    Environment(name, pip=["six"], base_image=BASE).build(ws=workspace)
    first = EnvManager(workspace).record(name)
    lock = first.lock or ""
    base_id = _docker("image", "inspect", "-f", "{{.Id}}", BASE).strip()
    # A locally built base has no registry digest: recorded by name and image id.
    assert lock.splitlines()[0] == f"# base image: {BASE} (image {base_id})"
    record = carried(first)

    other = EnvManager(Workspace(tmp_path / "b" / "store", tmp_path / "b" / "kernels"))
    shown = plan(other, record)
    assert (shown.from_lock, shown.lock_usable, shown.base_image) == (
        True,
        True,
        f"{BASE} (image {base_id})",
    )
    assert "six==1.17.0" in shown.installs
    events = Recorder()
    restore(other, record, on_event=events)
    again = other.record(name)
    pins = [ln for ln in lock.splitlines() if not ln.startswith("#")]
    assert [ln for ln in (again.lock or "").splitlines() if not ln.startswith("#")] == pins
    dockerfile = json.loads((Path(again.artifact or "") / "image.json").read_text())["dockerfile"]
    assert "six==1.17.0" in dockerfile  # installed as locked, not as "six"
    ipykernel = next(p for p in pins if p.lower().startswith("ipykernel=="))
    assert ipykernel in dockerfile
    assert "is not the one the lock was made on" not in events.text

    # A lock made on another image of that name says so (the build goes on).
    moved = carried(first).to_metadata()
    moved["lock"] = lock.replace(base_id, "sha256:" + "0" * 64)
    notes = Recorder()
    third = EnvManager(Workspace(tmp_path / "c" / "store", tmp_path / "c" / "kernels"))
    restore(third, type(record).from_metadata(moved), on_event=notes)
    assert f"the base image {BASE} here is not the one the lock was made on" in notes.text


def test_a_docker_environment_gets_a_kubernetes_kernelspec(
    workspace: Workspace, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #14, on paper: the built image's kernel pod, checked, and the provisioner's
    kernelspec written; ``where`` says where it can run."""
    from jupyter_envs.frontends.cli import main

    Environment(name, pip=["six"], base_image=BASE, resources={"cpu": 1, "memory": "1Gi"}).build(
        ws=workspace
    )
    tag = _artifact_json(workspace, name)["tag"]
    assert main(["where", name]) == 0
    out = capsys.readouterr().out
    assert f"{name}  v1       no     yes        no     yes" in out
    assert main(["k8s", name]) == 0
    pod = yaml.safe_load(capsys.readouterr().out)
    assert pod["spec"]["containers"][0]["image"] == tag
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    image = "registry.example:5000/team/" + tag.split("/", 1)[1]
    kernels = tmp_path / "kernels"
    assert main(["k8s", name, "--image", image, "--namespace", "nlp", "-o", str(kernels)]) == 0
    spec = json.loads((kernels / f"jenv-{name}-v1-k8s" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"]["image_name"] == image
    assert spec["env"] == {"KERNEL_NAMESPACE": "nlp"}


def test_a_conda_environment_becomes_an_image_whose_prefix_runs(
    workspace: Workspace, name: str, conda_channel: Path, tmp_path: Path
) -> None:
    """Issue #11: a conda spec with a base image: the prefix is solved and installed by
    rattler on this machine for the image's path, copied in, and its Python runs there."""
    text = (
        f"channels: [{conda_channel.as_uri()}]\ndependencies:\n  - python=3.11\n"
        "  - jenvs-tool\n  - pip:\n      - six==1.17.0\nvariables:\n  JENVS_FLAG: 'on'\n"
    )
    env = Environment.from_text(name, text)
    env.docker.base_image = BASE
    events = Recorder()
    result = env.build(ws=workspace, on_event=events)
    assert result.backend == "docker"
    lock = EnvManager(workspace).record(name).lock or ""
    assert lock.startswith("# base image: ")
    pins = {p.name: p for p in condalock.parse(lock).pins}
    assert pins["jenvs-hello"].version == "1.0"
    assert "six==1.17.0" in condalock.parse(lock).pip
    info = _artifact_json(workspace, name)
    assert f"ADD jenv-conda.tar {VENV_PATH}/" in info["dockerfile"]
    out = _run(
        info["tag"],
        "import os, subprocess, sys, six; print(sys.prefix, six.__version__, "
        "os.environ['JENVS_FLAG'], os.environ['CONDA_PREFIX'], "
        "subprocess.run(['jenvs-tool'], capture_output=True, text=True).stdout.strip())",
    )
    assert out.split() == [VENV_PATH, "1.17.0", "on", VENV_PATH, "jenvs-tool", "1.0"]
    # Scripts pip installed on this machine run in the image (they name the image's prefix).
    version = _docker("run", "--rm", "--network", "none", info["tag"], "ipython", "--version")
    assert version.strip()[0].isdigit()
    # Its kernel: in a container, through our provisioner, on the conda prefix's Python.
    from tests.test_docker_kernels import run, start, stop

    km, kc = start(f"jenv-{name}-v1", tmp_path)
    try:
        out, reply = run(kc, "import sys; print(sys.prefix)")
    finally:
        stop(km, kc)
    assert reply["status"] == "ok", reply
    assert out.strip() == VENV_PATH
    # Nothing of the host-side prefix or the context is left beside the version.
    assert not [p for p in (workspace.root / "envs" / name).iterdir() if p.name.startswith(".")]
