"""Switching from inside a real kernel: the comm it opens, the answer, and the server fallback.

The kernel is a real ipykernel started through jupyter_client; the environment is built with the
fake builder (switching does not care what is inside). The frontend's part is played by the test:
it reads the comm_open on iopub and answers or closes it like JupyterLab would.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from jupyter_envs.errors import SpecError
from jupyter_envs.frontends.activation import (
    SWITCH_TARGET,
    SwitchTarget,
    lost_variables,
    parse_reference,
    switch_notebook,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    # Named like a Jupyter server names them: the kernel reads its id from this file name.
    kernel_id = str(uuid.uuid4())
    km = KernelManager(
        kernel_name="python3",
        kernel_id=kernel_id,
        connection_file=str(tmp_path / f"kernel-{kernel_id}.json"),
    )
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc: BlockingKernelClient, code: str) -> list[dict[str, Any]]:
    """Execute ``code``; return its iopub messages up to idle (the comm_open among them)."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


def _text(messages: list[dict[str, Any]]) -> str:
    out = []
    for m in messages:
        content = m["content"]
        out.append(content.get("text", ""))
        out.append(content.get("data", {}).get("text/plain", ""))
        if m["msg_type"] == "error":
            out.append("\n".join(content["traceback"]))
    return "\n".join(out)


def _wait_for_update(kc: BlockingKernelClient, needle: str) -> str:
    """Wait for an update_display_data whose text contains ``needle`` (from any parent)."""
    seen: list[str] = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=20)
        except queue.Empty:
            raise AssertionError(f"no display update with {needle!r}; saw {seen}") from None
        if msg["msg_type"] == "update_display_data":
            text = str(msg["content"]["data"].get("text/plain", ""))
            seen.append(text)
            if needle in text:
                return text


_CELL = "%load_ext jupyter_envs\nmy_data = [1, 2]\n"


def test_env_cell_opens_a_switch_comm_and_reads_the_answer(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, kc = kernel
    assert not [m for m in _run(kc, _CELL) if m["msg_type"] == "error"]
    messages = _run(kc, "%%env demo --backend fake\nsix\n")
    text = _text(messages)
    assert "demo v1 (built in" in text
    assert "Switching this notebook to demo v1 (kernel 'jenv-demo-v1'" in text
    # The summary names what the old kernel loses.
    assert "my_data" in text
    opens = [m for m in messages if m["msg_type"] == "comm_open"]
    assert len(opens) == 1
    content = opens[0]["content"]
    assert content["target_name"] == SWITCH_TARGET
    assert content["data"]["kernel_name"] == "jenv-demo-v1"
    assert content["data"]["env"] == "demo"
    assert content["data"]["version"] == 1
    assert len(content["data"]["spec_hash"]) == 64
    # The comm comes from the cell's execute request: the frontend uses its session to pick the
    # tab that asked.
    assert opens[0]["parent_header"]["session"] == kc.session.session
    # JupyterLab's answer: the status line says it is switching.
    msg = kc.session.msg(
        "comm_msg", {"comm_id": content["comm_id"], "data": {"status": "switching"}}
    )
    kc.shell_channel.send(msg)
    assert "JupyterLab is switching" in _wait_for_update(kc, "switching")


def test_no_activate_and_reactivation(kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    _, kc = kernel
    _run(kc, _CELL)
    messages = _run(kc, "%%env demo --backend fake --no-activate\nsix\n")
    assert not [m for m in messages if m["msg_type"] == "comm_open"]
    messages = _run(kc, "%envs activate demo:1")
    assert [m for m in messages if m["msg_type"] == "comm_open"]
    bad = _text(_run(kc, "%envs activate demo:7"))
    assert "has no version 7" in bad
    assert "Traceback" not in bad


class _Recorder(BaseHTTPRequestHandler):
    """Plays the server extension: records each POST; ``switch/prepare`` answers ``prepare``."""

    calls: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
    prepare: tuple[int, dict[str, Any]] = (201, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.put((self.path, self.headers["Authorization"], body))
        code, reply = (
            self.prepare if self.path.endswith("/switch/prepare") else (202, {"status": "ok"})
        )
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """The kernel with a built ``demo`` env and a fake server extension it can reach."""
    _Recorder.calls = queue.Queue()
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _, kc = kernel
    try:
        url = f"http://127.0.0.1:{server.server_port}/jupyter-envs/api/"
        # Built before the kernel learns of a server (with one, the server would build).
        _run(kc, _CELL)
        _run(kc, "%%env demo --backend fake --no-activate\nsix\n")
        _run(
            kc,
            f"import os\nos.environ['JUPYTER_ENVS_API_URL'] = {url!r}\n"
            + "os.environ['JUPYTER_ENVS_API_TOKEN'] = 'scoped-token'\n",
        )
        yield kernel
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_starts_the_new_kernel_during_the_cell(
    recorder: tuple[KernelManager, BlockingKernelClient],
) -> None:
    """Under a server, the kernel asks for its successor first and hands its id to the frontend;
    a frontend without the labextension closes the comm and the server adopts that kernel."""
    km, kc = recorder
    _Recorder.prepare = (201, {"status": "ready", "new_kernel_id": "k-new", "seconds": 0.8})
    messages = _run(kc, "%envs activate demo")
    path, auth, body = _Recorder.calls.get(timeout=20)
    assert path == "/jupyter-envs/api/switch/prepare"
    assert auth == "token scoped-token"
    assert body == {"kernel_id": km.kernel_id, "kernel_name": "jenv-demo-v1"}
    assert "The kernel of demo v1 started in 0.8 s." in _text(messages)
    opened = next(m for m in messages if m["msg_type"] == "comm_open")["content"]
    assert opened["data"]["new_kernel_id"] == "k-new"
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": opened["comm_id"], "data": {}}))
    path, auth, body = _Recorder.calls.get(timeout=20)
    assert path == "/jupyter-envs/api/switch"
    assert (body["kernel_id"], body["new_kernel_id"]) == (km.kernel_id, "k-new")
    assert body["kernel_name"] == "jenv-demo-v1"
    assert "within about 10 seconds" in _wait_for_update(kc, "server is switching")


def test_without_a_prepared_kernel_the_switch_goes_by_name(
    recorder: tuple[KernelManager, BlockingKernelClient],
) -> None:
    """A server that cannot prepare (no session owns the kernel, an older server, turned off):
    the comm carries no kernel id and the fallback asks for a new kernel by name."""
    km, kc = recorder
    _Recorder.prepare = (404, {"message": "no session uses it", "reason": "NotFoundError"})
    messages = _run(kc, "%envs activate demo")
    assert _Recorder.calls.get(timeout=20)[0].endswith("/switch/prepare")
    assert not [m for m in messages if m["msg_type"] == "error"]
    opened = next(m for m in messages if m["msg_type"] == "comm_open")["content"]
    assert "new_kernel_id" not in opened["data"]
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": opened["comm_id"], "data": {}}))
    path, _, body = _Recorder.calls.get(timeout=20)
    assert path == "/jupyter-envs/api/switch"
    assert body["kernel_id"] == km.kernel_id
    assert "new_kernel_id" not in body


def test_a_kernel_that_cannot_start_fails_the_cell_and_nothing_switches(
    recorder: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, kc = recorder
    _Recorder.prepare = (
        502,
        {
            "message": "the kernel 'jenv-demo-v1' died while starting",
            "reason": "KernelStartError",
        },
    )
    messages = _run(kc, "%envs activate demo")
    errors = [m for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1
    text = "\n".join(errors[0]["content"]["traceback"])
    assert "KernelStartError" in text
    assert "demo v1 is built, but the kernel 'jenv-demo-v1' died while starting" in text
    assert "keeps its current kernel" in text
    assert "Traceback" not in text
    assert not [m for m in messages if m["msg_type"] == "comm_open"]
    # The kernel is still this one, and it still works.
    assert "2" in _text(_run(kc, "print(1 + 1)"))


def test_outside_a_kernel_the_user_is_told_what_to_pick() -> None:
    said: list[str] = []
    target = SwitchTarget("demo", 2, "ab" * 32, "jenv-demo-v2", "demo v2 (Python 3.11.7)")
    assert switch_notebook(target, say=said.append) == "manual"
    assert said == [
        "To use it, select the kernel 'demo v2 (Python 3.11.7)' (jenv-demo-v2) "
        "in your notebook's kernel picker."
    ]


def test_references_and_lost_variables() -> None:
    assert parse_reference("nlp") == ("nlp", None)
    assert parse_reference("nlp:3") == ("nlp", 3)
    for bad in ("nlp:", "nlp:x", "nlp:0"):
        with pytest.raises(SpecError, match="NAME:VERSION"):
            parse_reference(bad)
    ns = {"df": 1, "_x": 2, "In": [], "hidden": 3, "model": 4}
    assert lost_variables(ns, {"hidden": 3}) == ["df", "model"]


def test_container_kernels_refuse_to_build_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_envs import Environment
    from jupyter_envs.clients.serverlink import CONTAINER_VAR, container_kernel_problem
    from jupyter_envs.errors import EnvsError
    from jupyter_envs.facade.manager import get_manager

    assert container_kernel_problem({}) is None
    monkeypatch.setenv(CONTAINER_VAR, "nlp")
    monkeypatch.delenv("JUPYTER_ENVS_API_URL", raising=False)
    problem = container_kernel_problem()
    assert problem is not None
    assert "runs in a Docker container (environment 'nlp')" in problem
    with pytest.raises(EnvsError, match="runs in a Docker container"):
        get_manager()
    with pytest.raises(EnvsError, match="runs in a Docker container"):
        Environment("x", pip=["six"], backend="fake").build()
    # With a way to the server's API (a later version may give one), nothing is refused.
    linked = {
        CONTAINER_VAR: "nlp",
        "JUPYTER_ENVS_API_URL": "http://h/",
        "JUPYTER_ENVS_API_TOKEN": "t",
    }
    assert container_kernel_problem(linked) is None


def test_server_link_speaks_http_over_a_unix_socket(tmp_path: Path) -> None:
    """What a container kernel uses: the server's API socket mounted into the container."""
    import socketserver

    from jupyter_envs.clients.serverlink import ServerLink, unix_socket_url
    from jupyter_envs.errors import ApiError

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    class Handler(_Recorder):
        def address_string(self) -> str:  # a Unix socket peer has no (host, port)
            return "unix"

    _Recorder.calls = queue.Queue()
    _Recorder.prepare = (502, {"message": "it died", "reason": "KernelStartError"})
    path = tmp_path / "api.sock"
    server = Server(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = unix_socket_url(str(path), "http://127.0.0.1:8888/base/jupyter-envs/api/")
        assert url == f"http+unix://{str(path).replace('/', '%2F')}/base/jupyter-envs/api/"
        link = ServerLink(url, "tok")
        assert link.request("POST", "switch", {"kernel_id": "k"}) == {"status": "ok"}
        assert _Recorder.calls.get(timeout=5) == (
            "/base/jupyter-envs/api/switch",
            "token tok",
            {"kernel_id": "k"},
        )
        with pytest.raises(ApiError) as info:
            link.request("POST", "switch/prepare", {"kernel_id": "k"})
        assert (info.value.status, info.value.reason, str(info.value)) == (
            502,
            "KernelStartError",
            "it died",
        )
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ApiError, match="cannot reach the jupyter-envs API") as gone:
        ServerLink(url, "tok").request("POST", "switch", {})
    assert gone.value.status == 0
