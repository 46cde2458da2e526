"""Images in a registry and kernels on Docker Swarm, for real (issue #14).

A real registry (Debian's ``docker-registry``, started here on a free 127.0.0.1 port with its own
storage; a second one with htpasswd auth), the real engine put in swarm mode by this module (and
taken out again if it was not in swarm mode before), a real Docker environment built on this
run's base image. The kernel test removes the local image first, so the service has to pull the
image from the registry by digest.

Nothing is left: the module's services, secrets, pulled images and registry tags are removed and
checked; the engine's other services and secrets (another server's) are never looked at.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from jupyter_envs import Environment, KernelLaunchError, RegistryError, SpecError
from jupyter_envs.engines.docker import LABEL_KERNEL_ID
from jupyter_envs.engines.kernels.kernelspec import swarm_kernel_name
from jupyter_envs.engines.kernels.reaper import reap_orphans
from jupyter_envs.engines.kernels.settings import ContainerSettings
from jupyter_envs.engines.kernels.swarm import (
    remove_service,
    start_kernel_service,
    wait_running,
)
from jupyter_envs.engines.registry import PASSWORD_VAR, USERNAME_VAR
from jupyter_envs.engines.store import Workspace
from jupyter_envs.facade.carry import carried
from jupyter_envs.facade.manager import EnvManager
from jupyter_envs.frontends.cli import main
from jupyter_envs.spec._carried import Carried
from tests import _engine, _registry
from tests._kernel import execute
from tests._registry import Registry, free_port, start_registry, stop_registry


def _unavailable() -> str | None:
    return _engine.unavailable() or _registry.unavailable()


_REASON = _unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(_REASON is not None, reason=str(_REASON)),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    stop_registry(running)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    running = start_registry(tmp_path_factory.mktemp("auth-registry"), ("alice", "wonder"))
    yield running
    stop_registry(running)


@pytest.fixture(scope="module")
def swarm() -> Iterator[None]:
    """The engine in swarm mode; it leaves swarm mode at the end if it was not in it before."""
    state = _engine.docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    joined = state != "active"
    if joined:
        _engine.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    yield
    if joined:
        _engine.docker("swarm", "leave", "--force")


@dataclass
class Built:
    """The module's Docker environment, built and pushed."""

    manager: EnvManager
    name: str
    registry: str


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry, run_base: str
) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("swarm-store")
    manager = EnvManager(Workspace(root / "store", root / "kernels"))
    name = f"sw-{uuid.uuid4().hex[:8]}"
    env = Environment(
        name,
        pip=["six==1.17.0"],
        base_image=run_base,
        registry=f"{registry.host}/jenv-test",
        env_vars={"FOO": "bar"},
        secrets=["JENV_SWARM_SECRET"],
        resources={"cpu": 0.5, "memory": "512m"},
    )
    events: list[Any] = []
    manager.build(env, on_event=events.append)
    try:
        yield Built(manager, name, f"{registry.host}/jenv-test")
    finally:
        pushed = [p.pinned for p in manager.pushes(name)]
        manager.remove(name)
        for image in pushed:  # pulled by the Swarm test
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)


def _connection() -> dict[str, Any]:
    """Connection info with five free ports (the kernel need not come up for these tests)."""
    conn: dict[str, Any] = {"ip": "127.0.0.1", "key": "k", "transport": "tcp"}
    conn["signature_scheme"] = "hmac-sha256"
    ports = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    return {**conn, **{name: free_port() for name in ports}}


def _our_services(client: Any, kernel_id: str) -> list[Any]:
    return list(client.api.services(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"}))


def _our_secrets(client: Any, kernel_id: str) -> list[Any]:
    return list(client.api.secrets(filters={"label": f"{LABEL_KERNEL_ID}={kernel_id}"}))


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env(timeout=120)
    yield client
    client.close()


# -- pushing -----------------------------------------------------------------------------------
def test_a_build_with_a_registry_pushes_and_records_the_digest(
    built: Built, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    record = built.manager.record(built.name)
    pushes = built.manager.pushes(built.name, record.version)
    assert len(pushes) == 1
    push = pushes[0]
    assert push.registry == built.registry
    assert push.reference == f"{built.registry}/{built.name}:v1-{record.spec_hash[:12]}"
    # The registry serves exactly the recorded digest under that tag.
    repository, tag = push.reference.split("/", 1)[1].rsplit(":", 1)
    assert registry.manifest_digest(repository, tag) == push.digest
    # The registry tag is not left on the engine (the local image keeps its own tag).
    assert not _engine.docker("images", "-q", push.reference).strip()
    # A Swarm kernelspec beside the container one, naming the image by digest.
    assert record.kernel_name
    spec = json.loads(
        (
            built.manager.ws.kernels_dir / swarm_kernel_name(record.kernel_name) / "kernel.json"
        ).read_text()
    )
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "jupyter-envs-swarm"
    assert provisioner["config"]["image"] == push.pinned
    assert spec["display_name"].endswith("on Swarm")
    # A rebuild of the same spec is a cache hit that pushes nothing again.
    again = built.manager.build(built.manager.get(built.name))
    assert again.cache_hit
    assert again.pushed == push.pinned
    # where: swarm yes (the pushed image), k8s yes.
    places = built.manager.where(built.name)[0].places
    assert places["swarm"].startswith("yes")
    assert push.pinned in places["swarm"]
    assert built.manager.k8s_pod(built.name)["spec"]["containers"][0]["image"] == push.pinned
    # A notebook switched to it carries where the image is.
    metadata = carried(record, pushes).to_metadata()
    assert metadata["images"] == [
        {"registry": push.registry, "reference": push.reference, "digest": push.digest}
    ]
    assert Carried.from_metadata(metadata).images == tuple(metadata["images"])


def test_push_errors_are_clear_and_record_nothing(
    built: Built, auth_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, name = built.manager, built.name
    before = manager.pushes(name)
    closed = free_port()
    with pytest.raises(RegistryError) as unreachable:
        manager.push(name, registry=f"127.0.0.1:{closed}/x")
    assert unreachable.value.reason == "unreachable"
    assert f"127.0.0.1:{closed}" in str(unreachable.value)
    assert "usable on this machine" in str(unreachable.value)

    monkeypatch.delenv(USERNAME_VAR, raising=False)
    with pytest.raises(RegistryError) as anonymous:
        manager.push(name, registry=f"{auth_registry.host}/team")
    assert anonymous.value.reason == "auth"
    assert "docker login" in str(anonymous.value)
    monkeypatch.setenv(USERNAME_VAR, "alice")
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password")
    with pytest.raises(RegistryError) as refused:
        manager.push(name, registry=f"{auth_registry.host}/team")
    assert refused.value.reason == "auth"
    assert "not-the-password" not in str(refused.value)
    assert manager.pushes(name) == before  # nothing recorded
    # The version is intact and the engine holds no tag of the failed pushes.
    assert manager.record(name).status == "ready"
    tags = _engine.docker("images", "--format", "{{.Repository}}", "--filter", "dangling=false")
    assert not [
        t for t in tags.split() if t.startswith((f"127.0.0.1:{closed}", auth_registry.host))
    ]

    # With the right password the same push works (credentials from the server's secret).
    monkeypatch.setenv(PASSWORD_VAR, "wonder")
    pushed = manager.push(name, registry=f"{auth_registry.host}/team")
    assert pushed.digest.startswith("sha256:")
    assert {p.registry for p in manager.pushes(name)} == {
        built.registry,
        f"{auth_registry.host}/team",
    }


class _CutProxy:
    """A TCP proxy to a registry that cuts every connection once ``limit`` bytes went up, and
    refuses new ones after that: a push cut off midway."""

    def __init__(self, target: int, limit: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.target, self.limit, self.sent, self.cut = target, limit, 0, False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.cut:
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                if up:
                    with self.lock:
                        self.sent += len(data)
                        self.cut = self.cut or self.sent > self.limit
                if self.cut:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self.sock.close()


def test_a_push_cut_off_midway_records_nothing(built: Built, tmp_path: Path) -> None:
    # A registry of its own: nothing of the image is there yet, so there is much to send.
    fresh = start_registry(tmp_path)
    proxy = _CutProxy(fresh.port, limit=2_000_000)
    try:
        before = built.manager.pushes(built.name)
        with pytest.raises(RegistryError) as cut:
            built.manager.push(built.name, registry=f"127.0.0.1:{proxy.port}/cut")
        assert cut.value.reason in ("cut-off", "unreachable")
        assert proxy.cut
        assert built.manager.pushes(built.name) == before
        assert not _engine.docker(
            "images", "-q", f"127.0.0.1:{proxy.port}/cut/{built.name}"
        ).strip()
    finally:
        proxy.close()
        stop_registry(fresh)


def test_push_refuses_what_has_no_image(tmp_path: Path) -> None:
    manager = EnvManager(Workspace(tmp_path / "store", tmp_path / "kernels"))
    env = Environment("plain", pip=["six"], registry="127.0.0.1:5000/x", backend="fake")
    with pytest.raises(SpecError, match="only Docker environments have an image to push"):
        manager.build(env)


def test_cli_push_and_where(
    built: Built,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_ENVS_STORE", str(built.manager.ws.root))
    monkeypatch.setenv("JUPYTER_ENVS_KERNELS_DIR", str(built.manager.ws.kernels_dir))
    assert main(["push", built.name, "--registry", f"{registry.host}/cli"]) == 0
    out = capsys.readouterr().out
    assert f"{registry.host}/cli/{built.name}:v1-" in out
    assert "@sha256:" in out
    assert main(["where", built.name]) == 0
    assert "yes" in capsys.readouterr().out.split("\n")[1].split()[4]


# -- kernels on Swarm --------------------------------------------------------------------------
def test_swarm_kernel_pulls_runs_interrupts_restarts_and_leaves_nothing(
    built: Built, swarm: None, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = built.manager.record(built.name)
    # The Swarm kernelspec runs the latest push: make that the spec's own registry's again
    # (earlier tests pushed elsewhere); the layers are there, only the manifest goes up.
    push = built.manager.push(built.name)
    assert push.registry == built.registry
    assert record.kernel_name
    # The local image goes: the service has to pull the pushed one.
    local = json.loads((Path(record.artifact or "") / "image.json").read_text())["tag"]
    _engine.docker("rmi", local)
    monkeypatch.setenv("JENV_SWARM_SECRET", "s3cret-value")
    notebook = tmp_path / "nb"
    notebook.mkdir()
    (notebook / "data.txt").write_text("from the host\n")
    ksm = KernelSpecManager(kernel_dirs=[str(built.manager.ws.kernels_dir)])
    km = KernelManager(kernel_name=swarm_kernel_name(record.kernel_name), kernel_spec_manager=ksm)
    km.start_kernel(cwd=str(notebook))
    kernel_id = str(km.kernel_id)
    try:
        services = _our_services(docker_client, kernel_id)
        assert len(services) == 1
        spec_text = json.dumps(services[0]["Spec"])
        assert push.pinned in spec_text
        assert "s3cret-value" not in spec_text  # the secret travels as a Swarm secret
        assert len(_our_secrets(docker_client, kernel_id)) == 2  # connection file + secrets
        out = execute(
            km,
            "import os, sys, six\n"
            "print(sys.prefix, os.environ['FOO'], os.environ['JENV_SWARM_SECRET'])\n"
            "print(open('data.txt').read().strip(), os.getuid())\n"
            "q = open('/sys/fs/cgroup/cpu.max').read() if os.path.exists('/sys/fs/cgroup/cpu.max')"
            " else open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read()\n"
            "print(q.split()[0])",
        )
        lines = out.splitlines()
        assert lines[0] == "/opt/jenv bar s3cret-value"
        assert lines[1] == f"from the host {os.getuid()}"
        assert lines[2] == "50000"  # cpu 0.5 of a 100 ms period
        # Interrupt: a long loop stops with KeyboardInterrupt.
        client = km.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            msg_id = client.execute("import time\nfor _ in range(600): time.sleep(0.1)")
            time.sleep(1)
            km.interrupt_kernel()
            deadline = time.monotonic() + 30
            ename = ""
            while time.monotonic() < deadline and not ename:
                msg = client.get_iopub_msg(timeout=30)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "error":
                    ename = msg["content"]["ename"]
            assert ename == "KeyboardInterrupt"
        finally:
            client.stop_channels()
        # Restart: a new service on the same ports; the old one and its secrets are gone.
        old = services[0]["ID"]
        km.restart_kernel(now=False)
        assert execute(km, "print(6 * 7)").strip() == "42"
        now = _our_services(docker_client, kernel_id)
        assert len(now) == 1
        assert now[0]["ID"] != old
    finally:
        km.shutdown_kernel(now=False)
    assert not _our_services(docker_client, kernel_id)
    assert not _our_secrets(docker_client, kernel_id)
    for service_id in (old, now[0]["ID"]):  # and no task container of either service
        label = f"com.docker.swarm.service.id={service_id}"
        assert not docker_client.api.containers(all=True, filters={"label": label})


def test_a_service_no_node_can_run_is_reported(
    built: Built, swarm: None, docker_client: Any
) -> None:
    push = next(p for p in built.manager.pushes(built.name) if p.registry == built.registry)
    settings = ContainerSettings(image=push.pinned, env_name=built.name, gpu=1)
    conn = _connection()
    kernel_id = uuid.uuid4().hex
    service = start_kernel_service(
        docker_client, settings, python="python3", connection_info=conn, kernel_id=kernel_id,
        cwd=None, environ={},
    )  # fmt: skip
    try:
        with pytest.raises(KernelLaunchError, match="no Swarm node can run"):
            wait_running(docker_client, service, timeout=60)
    finally:
        remove_service(docker_client, service)
    assert not _our_services(docker_client, kernel_id)
    assert not _our_secrets(docker_client, kernel_id)


def test_reaper_removes_services_of_a_dead_server(
    built: Built, swarm: None, docker_client: Any
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    push = next(p for p in built.manager.pushes(built.name) if p.registry == built.registry)
    settings = ContainerSettings(image=push.pinned, env_name=built.name)
    conn = _connection()
    kernel_id = uuid.uuid4().hex
    start_kernel_service(
        docker_client, settings, python="/opt/jenv/bin/python", connection_info=conn,
        kernel_id=kernel_id, cwd=None, environ={}, server_pid=dead.pid,
    )  # fmt: skip
    assert _our_services(docker_client, kernel_id)
    removed = reap_orphans(docker_client, labels=[f"{LABEL_KERNEL_ID}={kernel_id}"])
    assert len(removed) == 1
    assert not _our_services(docker_client, kernel_id)
    assert not _our_secrets(docker_client, kernel_id)
