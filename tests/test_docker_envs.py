"""A Docker environment end to end: spec → image → kernelspec → container kernel → gc.

Real engine, real image build (on the local base image), the kernel started by jupyter_client
through the ``jupyter-envs-docker`` provisioner named in the kernelspec the manager wrote.
Skipped with the reason when no engine or base image is here (a failure under
``JUPYTER_ENVS_REQUIRE_ALL=1``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from jupyter_envs import Environment, Resources, Workspace
from jupyter_envs.engines.docker import LABEL_KERNEL_ID
from jupyter_envs.frontends.cli import main
from tests import _engine
from tests._lab import JupyterServer, jupyter_server

# Builds use this run's labelled copy of the local base image (see tests/_engine.py).
BASE = _engine.RUN_BASE
_REASON = _engine.unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(_REASON is not None, reason=str(_REASON)),
]


def _docker(*args: str) -> str:
    return _engine.docker(*args)


def _images(env: str) -> list[str]:
    return _docker("images", "-q", "--filter", f"label=jupyter-envs.env={env}").split()


@pytest.fixture(scope="module", autouse=True)
def _no_images_left(run_base: str) -> Iterator[None]:
    """Layers the module's builds made (kept as cache between its tests) go at the end; none of
    the run's containers may be left. Nothing another run or server made is looked at."""
    yield
    containers = _engine.run_containers()
    left = _engine.remove_run_images()
    assert not containers, f"containers left: {containers}"
    assert not left, f"images left: {left}"


@pytest.fixture
def env_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique env name; every image and kernel container of it is removed afterwards."""
    monkeypatch.setenv("JUPYTER_ENVS_DEFAULT_BASE_IMAGE", BASE)
    name = f"de-{uuid.uuid4().hex[:8]}"
    yield name
    for image in _images(name):
        subprocess.run(["docker", "rmi", "-f", "--no-prune", image], capture_output=True)
    leftover = _docker("ps", "-aq", "--filter", f"label=jupyter-envs.env={name}").split()
    assert not leftover, f"kernel containers left: {leftover}"


def test_docker_env_kernel_runs_in_its_container(
    workspace: Workspace, env_name: str, tmp_path: Path
) -> None:
    env = Environment(
        env_name,
        pip=["six==1.17.0"],
        base_image=BASE,
        env_vars={"GREETING": "hello"},
        resources=Resources(cpu=1, memory="512Mi"),
    )
    assert env.dockerfile() == env.get_image_details()["ingredients"]["dockerfile"]
    result = env.build(ws=workspace)
    assert result.backend == "docker"
    spec = json.loads((workspace.kernels_dir / result.kernel_name / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "jupyter-envs-docker"
    assert spec["interrupt_mode"] == "message"
    assert spec["metadata"]["jupyter_envs"]["spec_hash"] == result.spec_hash

    notebook_dir = tmp_path / "nb"
    notebook_dir.mkdir()
    (notebook_dir / "data.txt").write_text("from the host\n")
    km = KernelManager(kernel_name=result.kernel_name)
    km.start_kernel(cwd=str(notebook_dir))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        code = (
            "import os, sys, six\n"
            "print(sys.prefix, six.__version__, os.environ['GREETING'], os.getcwd())\n"
            "print(open('data.txt').read().strip())\n"
        )
        out: list[str] = []
        kc.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")),
        )
        text = "".join(out)
        # Building from inside the container is refused with the reason (and the kernel lives).
        errors: list[str] = []
        kc.execute_interactive(
            "%load_ext jupyter_envs\n",
            timeout=60,
            output_hook=lambda m: errors.extend(m["content"].get("traceback", [])),
        )
        kc.execute_interactive(
            "%%env other\nsix\n",
            timeout=60,
            output_hook=lambda m: errors.extend(m["content"].get("traceback", [])),
        )
        refusal = "\n".join(errors)
        containers = _docker("ps", "-q", "--filter", f"label=jupyter-envs.env={env_name}").split()
        assert len(containers) == 1
        host_config = json.loads(_docker("inspect", containers[0]))[0]["HostConfig"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert f"/opt/jenv 1.17.0 hello {notebook_dir}" in text
    assert "from the host" in text
    assert f"this kernel runs in a Docker container (environment '{env_name}')" in refusal
    assert "Traceback" not in refusal
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert host_config["NanoCpus"] == 1_000_000_000


def test_gc_removes_images_of_removed_envs(
    workspace: Workspace, env_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = Environment(env_name, pip=["six==1.17.0"], base_image=BASE).build(ws=workspace)
    assert _images(env_name)
    # Unregistered behind the builder's back (as when the engine was down during a removal).
    workspace.delete(env_name)
    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove image jupyter-envs/{env_name}:{result.spec_hash[:12]}" in out
    assert _images(env_name)
    assert main(["gc"]) == 0
    assert f"removed image jupyter-envs/{env_name}" in capsys.readouterr().out
    assert not _images(env_name)
    # Nothing of a kernel is left either.
    assert not _engine.run_containers()


def _kernel_containers(kernel_id: str) -> list[str]:
    return _docker("ps", "-aq", "--filter", f"label={LABEL_KERNEL_ID}={kernel_id}").split()


def test_orphan_of_a_killed_server_is_reaped_when_a_server_starts(
    env_name: str, tmp_path: Path
) -> None:
    root = tmp_path / "notebooks"
    root.mkdir()
    home = tmp_path / "server"
    first = JupyterServer("lab", root, home)
    # Built into the server's own store and kernels dir.
    ws = Workspace(first.data_dir / "jupyter_envs", first.data_dir / "kernels")
    result = Environment(env_name, pip=["six==1.17.0"], base_image=BASE).build(ws=ws)
    first.start()
    try:
        kernel = first.api("POST", "/api/kernels", {"name": result.kernel_name})
        deadline = time.monotonic() + 60
        while not _kernel_containers(kernel["id"]):
            assert time.monotonic() < deadline, "the kernel's container never appeared"
            time.sleep(0.2)
    finally:
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)  # no shutdown: the container is orphaned
        first.proc.wait()
        first.proc = None
    assert _kernel_containers(kernel["id"]), "the container went with the server"
    with jupyter_server("lab", root, home):
        deadline = time.monotonic() + 60
        while _kernel_containers(kernel["id"]):
            assert time.monotonic() < deadline, "the restarted server did not reap the orphan"
            time.sleep(0.2)


def _execute(kc: BlockingKernelClient, code: str, comms: list[str] | None = None) -> str:
    """Run ``code`` in the kernel; its stream, display and error text (and in ``comms``, the
    ids of the comms it opened)."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and comms is not None:
            comms.append(content["comm_id"])
        out.append(content.get("text", ""))
        out.append(str(content.get("data", {}).get("text/plain", "")))
        out.extend(content.get("traceback", []))

    kc.execute_interactive(code, timeout=180, output_hook=hook)
    return "\n".join(out)


def test_a_container_kernel_builds_and_switches_through_the_server(
    env_name: str, tmp_path: Path
) -> None:
    """%%env in a container kernel: built by the server (over the API socket mounted into the
    container), the new kernel prepared for the session, the session moved onto it."""
    root = tmp_path / "notebooks"
    root.mkdir()
    server = JupyterServer("lab", root, tmp_path / "server")
    ws = Workspace(server.data_dir / "jupyter_envs", server.data_dir / "kernels")
    outer = Environment(env_name, pip=["six==1.17.0"], base_image=BASE).build(ws=ws)
    inner = f"{env_name}-in"
    server.start()
    try:
        session = server.api(
            "POST",
            "/api/sessions",
            {
                "path": "n.ipynb",
                "type": "notebook",
                "name": "",
                "kernel": {"name": outer.kernel_name},
            },
        )
        kernel_id = session["kernel"]["id"]
        (container,) = _kernel_containers(kernel_id)
        kc = BlockingKernelClient()
        kc.load_connection_file(str(server.data_dir / "runtime" / f"kernel-{kernel_id}.json"))
        # Without a KernelManager, wait_for_ready judges the kernel by its heartbeat, which
        # counts as dead after one silent second: a container kernel on a busy machine can
        # take longer than that to start. The kernel_info reply is what we wait for.
        kc.hb_channel.time_to_dead = 30.0
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            probe = _execute(
                kc,
                "import os, sys\n"
                "print(sys.prefix, os.environ['JUPYTER_ENVS_API_URL'])\n"
                "print('token', os.environ['JUPYTER_ENVS_API_TOKEN'])\n",
            )
            assert "/opt/jenv http+unix://%2Frun%2Fjupyter-envs-api.sock/jupyter-envs/api/" in probe
            token = probe.split("token ", 1)[1].split()[0]
            # The token is in the kernel's environment only, not in the container's config.
            assert token not in _docker("inspect", container)
            _execute(kc, "%load_ext jupyter_envs")
            comms: list[str] = []
            built = _execute(kc, f"%%env {inner} --backend fake\nsix\n", comms)
            assert f"{inner} v1 (built in" in built, built
            assert f"The kernel of {inner} v1 started in" in built, built
            # The server built it: it is in the server's registry and kernelspecs.
            listed = server.api("GET", "/jupyter-envs/api/environments")
            assert inner in {e["name"] for e in listed}
            # No labextension here: play the frontend without one, which closes the comm; the
            # kernel then asks the server to move the session onto the prepared kernel.
            (comm_id,) = comms
            kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": comm_id, "data": {}}))
            deadline = time.monotonic() + 60
            while True:
                current = server.api("GET", f"/api/sessions/{session['id']}")["kernel"]
                if current["name"] == f"jenv-{inner}-v1":
                    break
                assert time.monotonic() < deadline, f"the session stayed on {current}"
                time.sleep(0.2)
        finally:
            kc.stop_channels()
        deadline = time.monotonic() + 60
        while _kernel_containers(kernel_id):
            assert time.monotonic() < deadline, "the container kernel was not shut down"
            time.sleep(0.2)
    finally:
        server.stop()
