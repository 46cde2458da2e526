"""Container kernels on the real Docker engine: the provisioner, the launcher and the reaper.

The module builds one small kernel image (venv + ipykernel + the jupyter_envs package) from the
local base image and removes it at the end. Every test removes what it made, and a fixture fails
any test that leaves a kernel container behind.

pytest-jupyter's fixtures are imported into this module, not enabled in conftest.py (see
tests/test_rest.py for why); the server test runs on their loop through :func:`on_loop`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ParamSpec

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_core.utils import ensure_event_loop
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures: see the module docstring)

from jupyter_envs.engines.docker import LABEL_KERNEL_ID
from jupyter_envs.engines.kernels import (
    PROVISIONER_NAME,
    KernelLaunchError,
    docker_kernelspec_fields,
)
from jupyter_envs.engines.kernels.kernelspec import write_kernelspec
from jupyter_envs.engines.runtime import KERNEL_SIDE_REQUIREMENTS
from jupyter_envs.errors import BackendUnavailableError
from tests import _engine

P = ParamSpec("P")
# The label every image and container of this run carries (tests/_engine.py).
OURS = f"{_engine.RUN_LABEL}={_engine.RUN_ID}"
ROOT = Path(__file__).resolve().parent.parent
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _unavailable() -> str | None:
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker Python SDK is not installed"
    return _engine.unavailable()


_REASON = _unavailable()
# A skip mark (not pytest.skip at import): each test then reports the skip, which conftest.py
# turns into a failure under JUPYTER_ENVS_REQUIRE_ALL=1.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(_REASON is not None, reason=str(_REASON)),
]


def on_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on the event loop of pytest-jupyter's server fixtures."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        ensure_event_loop(prefer_selector_loop=True).run_until_complete(test(*args, **kwargs))

    return run


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    """One Docker client for the module."""
    import docker

    client = docker.from_env(timeout=120)
    yield client
    client.close()


def _pip_buildargs() -> dict[str, str]:
    # Host index settings that a container can use (http(s) only: file:// paths and find-links
    # live on the host's disk).
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    urls: dict[str, list[str]] = {"index-url": [], "extra-index-url": []}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in urls:
            urls[name] += [u for u in value.strip("'\"").split() if u.startswith("http")]
    args = {}
    if urls["index-url"]:
        args["PIP_INDEX_URL"] = urls["index-url"][0]
    if urls["extra-index-url"]:
        args["PIP_EXTRA_INDEX_URL"] = " ".join(urls["extra-index-url"])
    return args


@pytest.fixture(scope="module")
def kernel_image(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory, run_base: str
) -> Iterator[str]:
    """A kernel image: a venv with ipykernel and the kernel-side requirements, plus this
    jupyter_envs package (importable), labelled with its interpreter like a built env."""
    ctx = tmp_path_factory.mktemp("kernel-image")
    shutil.copy(CA_BUNDLE, ctx / "ca.crt")
    shutil.copytree(
        ROOT / "jupyter_envs",
        ctx / "pkg" / "jupyter_envs",
        ignore=shutil.ignore_patterns("__pycache__", "labextension"),
    )
    # shlex.quote: a requirement may hold quotes of its own (a marker's "3.11").
    reqs = " ".join(shlex.quote(r) for r in KERNEL_SIDE_REQUIREMENTS)
    (ctx / "Dockerfile").write_text(
        textwrap.dedent(
            f"""\
            FROM {run_base}
            ARG PIP_INDEX_URL
            ARG PIP_EXTRA_INDEX_URL
            COPY ca.crt /tmp/jenv-ca.crt
            RUN export PIP_CERT=/tmp/jenv-ca.crt SSL_CERT_FILE=/tmp/jenv-ca.crt && \\
                python3 -m venv /opt/kernel && \\
                /opt/kernel/bin/pip install --no-cache-dir --disable-pip-version-check {reqs} \\
                && rm /tmp/jenv-ca.crt
            COPY pkg /opt/jupyter-envs
            RUN /opt/kernel/bin/python -c 'import sysconfig, pathlib; \\
                pathlib.Path(sysconfig.get_path("purelib"), "jupyter_envs.pth")\\
                .write_text("/opt/jupyter-envs\\n")'
            LABEL jupyter-envs.python=/opt/kernel/bin/python
            """
        )
    )
    tag = f"jupyter-envs-test/kernel:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(
        path=str(ctx), tag=tag, rm=True, forcerm=True, buildargs=_pip_buildargs()
    )
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


def _kernel_containers(client: Any, kernel_id: str | None = None) -> list[Any]:
    """This run's kernel containers (all of them, or those of ``kernel_id``): never another
    server's, which may be running on the same engine."""
    label = LABEL_KERNEL_ID if kernel_id is None else f"{LABEL_KERNEL_ID}={kernel_id}"
    return list(client.containers.list(all=True, filters={"label": [label, OURS]}))


@pytest.fixture(autouse=True)
def no_leaked_containers(docker_client: Any) -> Iterator[None]:
    """Fails a test that leaves a kernel container of this run (and removes it, for the next
    test). Other servers' kernel containers are not looked at."""
    yield
    leaked = _kernel_containers(docker_client)
    for container in leaked:
        container.remove(force=True)
    assert not leaked, f"kernel containers left behind: {[c.name for c in leaked]}"


@pytest.fixture(autouse=True)
def provisioner_registered() -> None:
    """Registers the provisioner when the installed package metadata predates its entry point."""
    if not entry_points(group=KernelProvisionerFactory.GROUP_NAME, name=PROVISIONER_NAME):
        KernelProvisionerFactory.provisioners[PROVISIONER_NAME] = EntryPoint(
            PROVISIONER_NAME,
            "jupyter_envs.engines.kernels.docker_provisioner:DockerKernelProvisioner",
            KernelProvisionerFactory.GROUP_NAME,
        )


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    """A notebook directory with a data file in it."""
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "data.txt").write_text("from the host\n")
    return nb


def make_kernelspec(
    data_dir: Path, image: str, *, env: str = "dk", provisioner: bool = True, **kw: Any
) -> str:
    """Write a Docker env's kernelspec (as the manager does) into ``data_dir``; its name."""
    settings: dict[str, Any] = {
        "cpu": None,
        "memory": None,
        "gpu": None,
        "secrets": [],
        "env_vars": {},
    }
    settings.update(kw)
    fields = docker_kernelspec_fields(
        image, env_name=env, version=1, spec_hash="0" * 12, **settings
    )
    metadata = dict(fields["metadata"])
    if not provisioner:
        metadata.pop("kernel_provisioner")  # what a client that ignores provisioners sees
    return write_kernelspec(
        data_dir / "kernels",
        env_name=env,
        version=1,
        spec_hash="0" * 12,
        backend="docker",
        argv=fields["argv"],
        python_version="3",
        env_vars=settings["env_vars"],
        store_root=data_dir / "store",
        interrupt_mode=fields["interrupt_mode"],
        extra_metadata=metadata,
    )


def start(name: str, cwd: Path) -> tuple[KernelManager, BlockingKernelClient]:
    """Start kernelspec ``name`` in ``cwd``; wait until it answers."""
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except BaseException:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop(km: KernelManager, kc: BlockingKernelClient) -> None:
    """Shut a kernel down the way a server does."""
    kc.stop_channels()
    km.shutdown_kernel()


def run(kc: BlockingKernelClient, code: str, timeout: float = 30) -> tuple[str, dict[str, Any]]:
    """Execute ``code``; return (stdout, reply content)."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(out), reply["content"]


def ports_in_use(ports: list[int]) -> list[int]:
    """The ports that something still listens on (cannot be bound on 127.0.0.1 again)."""
    busy = []
    for port in ports:
        with socket.socket() as s:
            # As a listener binds: closed connections lingering in TIME_WAIT do not count.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _ports(km: KernelManager) -> list[int]:
    info = km.get_connection_info()
    return [int(info[k]) for k in ("shell_port", "iopub_port", "stdin_port", "hb_port")] + [
        int(info["control_port"])
    ]


# -- the provisioner through KernelManager ---------------------------------------------------
def test_kernel_runs_in_container(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    name = make_kernelspec(isolated_jupyter, kernel_image, env_vars={"JENV_GREETING": "hi"})
    km, kc = start(name, notebook_dir)
    try:
        (container,) = _kernel_containers(docker_client, km.kernel_id)
        labels = container.labels
        assert labels["jupyter-envs.server-pid"] == str(os.getpid())
        assert labels["jupyter-envs.env"] == "dk"
        assert labels["jupyter-envs.spec-hash"] == "0" * 12
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert {b[0]["HostIp"] for b in bindings.values()} == {"127.0.0.1"}
        assert km.get_connection_info()["ip"] == "127.0.0.1"

        out, reply = run(
            kc,
            "import os, jupyter_envs; print(os.getcwd()); print(open('data.txt').read().strip());"
            "print(os.environ['JENV_GREETING']); open('made.txt', 'w').write('x');"
            "print('JPY_PARENT_PID' in os.environ, 'JUPYTER_ENVS_STORE' in os.environ)",
        )
        assert reply["status"] == "ok", reply
        assert out.split("\n")[:4] == [str(notebook_dir), "from the host", "hi", "False False"]
        assert (notebook_dir / "made.txt").stat().st_uid == os.getuid()

        # Interrupt a long sleep (message mode): it stops at once, not after 30 s.
        t0 = time.monotonic()
        msg_id = kc.execute("import time; time.sleep(30)")
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t0 < 8

        # SIGINT through the provisioner reaches the kernel too.
        msg_id = kc.execute("import time; time.sleep(30)")
        time.sleep(1.0)
        km.signal_kernel(signal.SIGINT)
        reply = kc.get_shell_msg(timeout=10)
        assert reply["content"]["ename"] == "KeyboardInterrupt"

        # Restart: a new container for the same kernel id; the old one is gone.
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)
        (after,) = _kernel_containers(docker_client, km.kernel_id)
        assert after.id != container.id
        out, reply = run(kc, "print(1 + 1)")
        assert out.strip() == "2"
    finally:
        stop(km, kc)
    assert _kernel_containers(docker_client) == []
    assert not any((isolated_jupyter / "runtime" / "jupyter-envs-kernels").iterdir())


def test_start_stop_cycles_leak_nothing(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    name = make_kernelspec(isolated_jupyter, kernel_image)
    used: list[int] = []
    for _ in range(20):
        km, kc = start(name, notebook_dir)
        used += _ports(km)
        stop(km, kc)
    assert _kernel_containers(docker_client) == []
    assert ports_in_use(used) == []


def test_secret_reaches_kernel_only(
    kernel_image: str,
    isolated_jupyter: Path,
    notebook_dir: Path,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = f"s3cr3t-'{uuid.uuid4().hex}' $HOME"
    monkeypatch.setenv("JENV_TEST_TOKEN", value)
    name = make_kernelspec(isolated_jupyter, kernel_image, secrets=["JENV_TEST_TOKEN"])
    caplog.set_level(logging.DEBUG)
    km, kc = start(name, notebook_dir)
    try:
        out, _ = run(kc, "import os; print(repr(os.environ['JENV_TEST_TOKEN']))")
        assert out.strip() == repr(value)
        (container,) = _kernel_containers(docker_client, km.kernel_id)
        assert value not in json.dumps(container.attrs)
        assert value not in json.dumps(docker_client.api.inspect_image(kernel_image))
        rdir = Path(container.labels["jupyter-envs.runtime-dir"])
        assert not (rdir / "secrets.env").exists()  # consumed by the shim
    finally:
        stop(km, kc)
    assert value not in (isolated_jupyter / "kernels" / name / "kernel.json").read_text()
    assert "JENV_TEST_TOKEN" in (isolated_jupyter / "kernels" / name / "kernel.json").read_text()
    assert value not in caplog.text


def _start_fails(name: str, cwd: Path, error: type[Exception], match: str) -> None:
    """Starting kernel ``name`` raises ``error`` matching ``match``; nothing is left behind."""
    km = KernelManager(kernel_name=name)
    with pytest.raises(error, match=match):
        km.start_kernel(cwd=str(cwd))
    km.cleanup_resources()


def test_missing_secret_is_a_clear_error(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JENV_ABSENT_SECRET", raising=False)
    name = make_kernelspec(isolated_jupyter, kernel_image, secrets=["JENV_ABSENT_SECRET"])
    _start_fails(name, notebook_dir, KernelLaunchError, "JENV_ABSENT_SECRET")


def test_missing_image_is_a_clear_error(isolated_jupyter: Path, notebook_dir: Path) -> None:
    name = make_kernelspec(isolated_jupyter, "jupyter-envs-test/no-such-image:000000000000")
    _start_fails(name, notebook_dir, KernelLaunchError, "does not exist on the Docker engine")


def test_engine_down_is_a_clear_error(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = make_kernelspec(isolated_jupyter, kernel_image)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    _start_fails(name, notebook_dir, BackendUnavailableError, "cannot reach the Docker engine")


def test_gpu_without_runtime_is_a_clear_error(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this engine has a GPU runtime")  # the error path cannot be reached
    name = make_kernelspec(isolated_jupyter, kernel_image, gpu=1)
    _start_fails(name, notebook_dir, KernelLaunchError, "no GPU runtime")


# -- the launcher (clients that ignore provisioners) -----------------------------------------
def test_launcher_runs_and_removes_container(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    name = make_kernelspec(isolated_jupyter, kernel_image, provisioner=False, memory="1g")
    km, kc = start(name, notebook_dir)
    try:
        out, reply = run(kc, "import os; print(os.getcwd())")
        assert out.strip() == str(notebook_dir)
        (container,) = _kernel_containers(docker_client)
        assert container.attrs["HostConfig"]["Memory"] == 1024**3
        msg_id = kc.execute("import time; time.sleep(30)")
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        stop(km, kc)
    assert _kernel_containers(docker_client) == []


def test_launcher_sigterm_removes_container(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    isolated_jupyter.mkdir(parents=True, exist_ok=True)
    conn = isolated_jupyter / "kernel-launcher-test.json"
    km = KernelManager()
    km.connection_file = str(conn)
    km.write_connection_file()
    cmd = [sys.executable, "-m", "jupyter_envs.engines.kernels.launcher", "--image", kernel_image]
    proc = subprocess.Popen([*cmd, "-f", str(conn)], cwd=notebook_dir)
    try:
        deadline = time.monotonic() + 30
        while not _kernel_containers(docker_client) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _kernel_containers(docker_client)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        km.cleanup_connection_file()
    assert _kernel_containers(docker_client) == []


# -- a real Jupyter server -------------------------------------------------------------------
@on_loop
async def test_server_starts_container_kernel(
    kernel_image: str,
    jp_fetch: Any,
    jp_data_dir: Path,
    jp_root_dir: Path,
    docker_client: Any,
) -> None:
    name = make_kernelspec(jp_data_dir, kernel_image)
    (jp_root_dir / "nb").mkdir()
    response = await jp_fetch(
        "api", "kernels", method="POST", body=json.dumps({"name": name, "path": "nb"})
    )
    kernel = json.loads(response.body)
    try:
        (container,) = _kernel_containers(docker_client, kernel["id"])
        assert container.attrs["Config"]["WorkingDir"] == str(jp_root_dir / "nb")
        response = await jp_fetch("api", "kernels", kernel["id"])
        assert json.loads(response.body)["name"] == name
    finally:
        await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
    assert _kernel_containers(docker_client) == []


# -- the reaper ------------------------------------------------------------------------------
_ORPHAN_SCRIPT = """
import sys, time
from importlib.metadata import EntryPoint
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory
KernelProvisionerFactory.provisioners.setdefault("jupyter-envs-docker", EntryPoint(
    "jupyter-envs-docker",
    "jupyter_envs.engines.kernels.docker_provisioner:DockerKernelProvisioner",
    "jupyter_client.kernel_provisioners"))
km = KernelManager(kernel_name=sys.argv[1])
km.start_kernel(cwd=sys.argv[2])
print(km.kernel_id, flush=True)
time.sleep(600)
"""


def test_reaper_removes_orphans(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    from jupyter_envs.engines.kernels.reaper import gc, reap_orphans

    name = make_kernelspec(isolated_jupyter, kernel_image)
    # A live kernel of this process must survive the reaper.
    km, kc = start(name, notebook_dir)
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, name, str(notebook_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        orphan_kernel = proc.stdout.readline().strip()
        (orphan,) = _kernel_containers(docker_client, orphan_kernel)
        assert reap_orphans(docker_client, labels=[OURS]) == []  # its server is alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert [d.id for d in gc(docker_client, labels=[OURS])] == [orphan.id]
        assert reap_orphans(docker_client, labels=[OURS]) == [orphan.id]
        assert _kernel_containers(docker_client, orphan_kernel) == []
        assert len(_kernel_containers(docker_client, km.kernel_id)) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop(km, kc)


def test_another_servers_kernel_containers_are_left_alone(
    kernel_image: str, isolated_jupyter: Path, notebook_dir: Path, docker_client: Any
) -> None:
    """A developer's own server may run container kernels on the engine the suite uses: the
    suite's kernels, its leak checks, the reaper and gc must leave those running."""
    from jupyter_envs.engines.docker import LABEL_SERVER_HOST, LABEL_SERVER_PID
    from jupyter_envs.engines.kernels.reaper import gc

    other_server = subprocess.Popen(["sleep", "600"])  # alive, and not this process
    foreign = docker_client.containers.run(
        _engine.STOCK_BASE,  # not this run's base: it does not carry the run label
        ["sleep", "600"],
        detach=True,
        network_mode="none",
        labels={
            LABEL_KERNEL_ID: f"other-{uuid.uuid4().hex[:8]}",
            LABEL_SERVER_PID: str(other_server.pid),
            LABEL_SERVER_HOST: socket.gethostname(),
        },
    )
    try:
        km, kc = start(make_kernelspec(isolated_jupyter, kernel_image), notebook_dir)
        try:
            assert len(_kernel_containers(docker_client)) == 1  # ours only
        finally:
            stop(km, kc)
        assert foreign.id not in _engine.run_containers()
        assert foreign.id not in [d.id for d in gc(docker_client)]  # its server is alive
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)
        other_server.kill()
        other_server.wait()
