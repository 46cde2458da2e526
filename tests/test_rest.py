"""The REST API of the server extension, against a real in-process Jupyter server.

Builds use the fake builder (``backend: "fake"``; ``JUPYTER_ENVS_FAKE_DELAY`` keeps one running)
and, where a test must see a build *while* it runs, a gated fake that stops half-way until the
test opens the gate, so nothing depends on timing.

pytest-jupyter's fixtures are imported into this module rather than enabled as a plugin in
conftest.py: as a plugin, its autouse fixtures (an event loop per test, a ServerApp cleanup) would
wrap every test of the suite, and they break the Playwright tests' own event loop. Async tests are
therefore run by :func:`on_loop`, on the loop those fixtures use.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures: see the module docstring)

import jupyter_envs
from jupyter_envs import EnvManager
from jupyter_envs.clients.remote import RemoteBuilds
from jupyter_envs.clients.serverlink import (
    API_SOCKET_VAR,
    ServerLink,
    unix_socket_url,
)
from jupyter_envs.errors import ApiError, BuildError
from jupyter_envs.events import Event, LogLine, Progress
from jupyter_envs.frontends.server import JupyterEnvsApp
from jupyter_envs.spec._environment import Environment
from tests._rest import *  # noqa: F403  (the server fixtures: api, gated, link_env...)
from tests._rest import (
    FINISHED,
    Api,
    Fetch,
    GatedBuilder,
    RecordingAuthorizer,
    exported,
    fake,
    on_loop,
)

ROOT = Path(__file__).resolve().parent.parent


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Parse a text/event-stream body into [{"event", "id", "data"}] (comments dropped)."""
    events: list[dict[str, Any]] = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            key, value = line.split(": ", 1)
            fields[key] = json.loads(value) if key == "data" else value
        if fields:
            events.append(fields)
    return events


# -- happy paths -----------------------------------------------------------------------------
@on_loop
async def test_create_build_list_get_versions_remove(api: Api, jp_base_url: str) -> None:
    code, listed = await api.call("GET", "environments")
    assert (code, listed) == (200, [])

    code, build = await api.call("POST", "environments", body=fake("demo", "six==1.17.0"))
    assert code == 202
    assert build["status"] in ("queued", "running")
    assert build["name"] == "demo"
    done = await api.finished(build["id"])
    assert done["status"] == "succeeded", done
    assert (done["version"], done["kernel_name"], done["cache_hit"]) == (1, "jenv-demo-v1", False)
    assert done["error"] is None
    assert done["finished"].endswith("Z")

    code, builds = await api.call("GET", "builds")
    assert code == 200
    assert [b["id"] for b in builds] == [build["id"]]
    code, builds = await api.call("GET", "builds", params={"name": "other"})
    assert (code, builds) == (200, [])

    code, listed = await api.call("GET", "environments")
    assert code == 200
    assert [(e["name"], e["version"], e["versions"]) for e in listed] == [("demo", 1, [1])]

    code, env = await api.call("GET", "environments", "demo")
    assert code == 200
    assert env["status"] == "ready"
    assert env["kernel_name"] == "jenv-demo-v1"
    assert env["lock"] == "six==1.17.0\n"
    assert env["spec"]["pip"] == ["six==1.17.0"]
    assert env["active_build"] is None
    assert "artifact" not in env  # server paths are not part of the API

    second = await api.create(fake("demo", "six==1.17.0", "requests"))
    assert (await api.finished(second["id"]))["version"] == 2
    code, versions = await api.call("GET", "environments", "demo", "versions")
    assert code == 200
    assert [v["version"] for v in versions] == [1, 2]

    code, body = await api.call("DELETE", "environments", "demo", params={"version": "1"})
    assert (code, body) == (204, None)
    code, versions = await api.call("GET", "environments", "demo", "versions")
    assert [v["version"] for v in versions] == [2]
    code, _ = await api.call("DELETE", "environments", "demo")
    assert code == 204
    code, error = await api.call("GET", "environments", "demo")
    assert code == 404
    assert error["reason"] == "NotFoundError"


@on_loop
async def test_push_route_refuses_what_it_cannot_push(api: Api) -> None:
    code, error = await api.call("POST", "environments", "nothere", "push", body={})
    assert (code, error["reason"]) == (404, "NotFoundError")
    assert (await api.finished((await api.create(fake("plain", "six")))["id"]))["status"] == (
        "succeeded"
    )
    code, error = await api.call(
        "POST", "environments", "plain", "push", body={"registry": "127.0.0.1:5000/t"}
    )
    assert (code, error["reason"]) == (400, "SpecError")
    assert "only images are pushed" in error["message"]
    code, error = await api.call("POST", "environments", "plain", "push", body={"version": "1"})
    assert code == 400
    assert "version" in error["message"]
    code, error = await api.call("POST", "environments", "plain", "push", body=[1])
    assert code == 400
    code, env = await api.call("GET", "environments", "plain")
    assert env["pushes"] == []
    code, versions = await api.call("GET", "environments", "plain", "versions")
    assert versions[0]["pushes"] == []


@on_loop
async def test_post_answers_202_with_a_location(jp_fetch: Fetch, jp_base_url: str) -> None:
    response = await jp_fetch(
        "jupyter-envs", "api", "environments", method="POST", body=json.dumps(fake())
    )
    assert response.code == 202
    build = json.loads(response.body)
    assert response.headers["Location"] == f"{jp_base_url}jupyter-envs/api/builds/{build['id']}"
    assert response.headers["Content-Type"].startswith("application/json")


@on_loop
async def test_text_spec_uses_the_default_backend_and_unchanged_spec_is_a_hit(api: Api) -> None:
    body = {"name": "texty", "text": "six==1.17.0\nrequests\n", "format": "requirements"}
    first = await api.finished((await api.create(body))["id"])
    assert (first["status"], first["version"], first["cache_hit"]) == ("succeeded", 1, False)
    code, env = await api.call("GET", "environments", "texty")
    assert (code, env["backend"]) == (200, "fake")
    again = await api.finished((await api.create(body))["id"])
    assert (again["status"], again["version"], again["cache_hit"]) == ("succeeded", 1, True)
    forced = await api.finished((await api.create({**body, "force": True}))["id"])
    assert (forced["version"], forced["cache_hit"]) == (1, False)


@on_loop
async def test_failed_build_reports_its_error(api: Api, jp_fetch: Fetch) -> None:
    build = await api.finished((await api.create(fake("broken", "fail-build")))["id"])
    assert build["status"] == "failed"
    assert "the fake build was asked to fail" in build["error"]
    code, _ = await api.call("GET", "environments", "broken")
    assert code == 404  # a failed build registers nothing
    # No server path in the API (it used to end with "full log: <store>/logs/..."): a URL.
    assert "full log:" not in build["error"]
    assert "/logs/" not in build["error"]
    assert build["log_url"] == f"builds/{build['id']}/log"
    response = await jp_fetch("jupyter-envs", "api", *build["log_url"].split("/"))
    assert "the fake build was asked to fail" in response.body.decode()


@on_loop
async def test_finished_log_replays_from_an_offset(jp_fetch: Fetch, api: Api) -> None:
    build = await api.finished((await api.create(fake("logged", "six", "requests")))["id"])
    response = await jp_fetch("jupyter-envs", "api", "builds", build["id"], "log")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(response.body)
    lines = [e["data"]["text"] for e in events if e["event"] == "log"]
    assert lines[:2] == [" + six", " + requests"]
    assert any(line.startswith("Registered logged v1") for line in lines)
    assert [e["id"] for e in events if e["event"] == "log"] == [
        str(n) for n in range(1, len(lines) + 1)
    ]
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["status"] == "succeeded"

    response = await jp_fetch(
        "jupyter-envs", "api", "builds", build["id"], "log", params={"offset": "1"}
    )
    resumed = sse_events(response.body)
    assert [e["data"]["text"] for e in resumed if e["event"] == "log"] == lines[1:]
    # EventSource resumes with Last-Event-ID instead of a query argument.
    response = await jp_fetch(
        "jupyter-envs", "api", "builds", build["id"], "log", headers={"Last-Event-ID": "2"}
    )
    assert [e["data"]["text"] for e in sse_events(response.body) if e["event"] == "log"] == (
        lines[2:]
    )


@on_loop
async def test_log_streams_lines_while_the_build_runs(
    jp_fetch: Fetch, api: Api, gated: GatedBuilder
) -> None:
    build = await api.create({"name": "live", "spec": {"pip": ["six"], "backend": "gated"}})
    received = bytearray()
    arrived = asyncio.Event()

    def on_chunk(chunk: bytes) -> None:
        received.extend(chunk)
        if b"before the gate 2" in received:
            arrived.set()

    stream = asyncio.ensure_future(
        jp_fetch(
            "jupyter-envs",
            "api",
            "builds",
            build["id"],
            "log",
            streaming_callback=on_chunk,
            request_timeout=30,
        )
    )
    await asyncio.wait_for(arrived.wait(), timeout=20)
    # The gate is closed: the build cannot have finished, yet its lines have arrived.
    code, now = await api.call("GET", "builds", build["id"])
    assert (code, now["status"]) == (200, "running")
    assert not stream.done()
    assert b"after the gate" not in received

    gated.gate.set()
    response = await asyncio.wait_for(stream, timeout=20)
    assert response.code == 200
    events = sse_events(bytes(received))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status"
    assert "progress" in kinds
    lines = [e["data"]["text"] for e in events if e["event"] == "log"]
    assert lines[:4] == ["before the gate 1", "before the gate 2", "after the gate", " + six"]
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["version"] == 1


@on_loop
async def test_cancel_a_running_build(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_ENVS_FAKE_DELAY", "30")
    build = await api.create(fake("slow"))
    await api.running(build["id"])
    code, cancelling = await api.call("POST", "builds", build["id"], "cancel")
    assert code == 202
    assert cancelling["cancel_requested"] is True
    done = await api.wait(build["id"], lambda b: b["status"] in FINISHED, timeout=5)
    assert done["status"] == "cancelled", done
    assert "cancel" in done["error"]
    code, _ = await api.call("GET", "environments", "slow")
    assert code == 404  # nothing registered

    code, error = await api.call("POST", "builds", build["id"], "cancel")
    assert code == 409
    assert error["reason"] == "ConflictError"
    assert "already cancelled" in error["message"]


@on_loop
async def test_builds_of_one_name_queue_and_a_queued_one_cancels_at_once(
    api: Api, gated: GatedBuilder
) -> None:
    first = await api.create({"name": "same", "spec": {"pip": ["six"], "backend": "gated"}})
    await api.running(first["id"])
    second = await api.create({"name": "same", "spec": {"pip": ["attrs"], "backend": "gated"}})
    assert second["id"] != first["id"]
    assert second["status"] == "queued"  # one build per environment name at a time
    code, error = await api.call("GET", "environments", "same")
    assert (code, error["reason"]) == (404, "NotFoundError")  # nothing registered yet

    code, cancelled = await api.call("POST", "builds", second["id"], "cancel")
    assert code == 202
    assert cancelled["status"] == "cancelled"
    code, error = await api.call("DELETE", "environments", "same")
    assert code == 409  # the first build is still running
    assert error["reason"] == "ConflictError"

    gated.gate.set()
    assert (await api.finished(first["id"]))["status"] == "succeeded"


@on_loop
async def test_identical_concurrent_posts_share_one_build(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_ENVS_FAKE_DELAY", "30")
    one, two = await asyncio.gather(api.create(fake("shared")), api.create(fake("shared")))
    assert one["id"] == two["id"]
    await api.running(one["id"])
    three = await api.create(fake("shared"))
    assert three["id"] == one["id"]
    other = await api.create(fake("shared", "requests"))
    assert other["id"] != one["id"]
    code, builds = await api.call("GET", "builds", params={"name": "shared"})
    assert (code, len(builds)) == (200, 2)
    for build in (one, other):
        await api.call("POST", "builds", build["id"], "cancel")
        assert (await api.finished(build["id"]))["status"] == "cancelled"


# -- errors ----------------------------------------------------------------------------------
ROUTES = [
    ("GET", ("environments",)),
    ("POST", ("environments",)),
    ("GET", ("environments", "demo")),
    ("DELETE", ("environments", "demo")),
    ("GET", ("environments", "demo", "versions")),
    ("GET", ("builds",)),
    ("GET", ("builds", "0123456789abcdef")),
    ("POST", ("builds", "0123456789abcdef", "cancel")),
    ("GET", ("builds", "0123456789abcdef", "log")),
    ("POST", ("switch",)),
    ("POST", ("switch", "prepare")),
    ("POST", ("restore",)),
    ("POST", ("restore", "preview")),
    ("POST", ("juv",)),
    ("GET", ("where",)),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@on_loop
async def test_every_route_refuses_requests_without_a_token(
    api: Api, method: str, path: tuple[str, ...]
) -> None:
    body = fake() if method == "POST" else None
    code, error = await api.call(method, *path, body=body, headers={"Authorization": ""})
    assert code in (401, 403)
    assert set(error) == {"message", "reason"}
    assert RecordingAuthorizer.checks == []  # refused before any authorization or work
    code, builds = await api.call("GET", "builds")
    assert (code, builds) == (200, [])


@pytest.mark.parametrize(("method", "path"), ROUTES)
@on_loop
async def test_every_route_is_authorized_on_the_jupyter_envs_resource(
    api: Api, method: str, path: tuple[str, ...]
) -> None:
    RecordingAuthorizer.deny = {"jupyter_envs"}
    body = fake() if method == "POST" else None
    code, error = await api.call(method, *path, body=body)
    assert code == 403
    assert "jupyter_envs" in error["message"]
    action = "read" if method == "GET" else "write"
    assert RecordingAuthorizer.checks == [(action, "jupyter_envs")]


BAD_BODIES: list[tuple[object, str]] = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"text": "six"}, "field 'name'"),
    ({"name": "x"}, "exactly one of 'text'"),
    ({"name": "x", "text": "six", "spec": {}}, "exactly one of 'text'"),
    ({"name": "x", "text": "six", "colour": "red"}, "unknown keys ['colour']"),
    ({"name": "Bad Name", "text": "six"}, "invalid environment name"),
    ({"name": "x", "text": "six", "force": "yes"}, "field 'force'"),
    ({"name": "x", "spec": {"pip": ["six"]}, "format": "conda"}, "field 'format'"),
    ({"name": "x", "text": "six", "format": "rpm"}, "unknown format"),
    ({"name": "x", "text": "six ==== 1"}, "line 1"),
    ({"name": "x", "text": 42}, "field 'text'"),
    ({"name": "x", "spec": ["six"]}, "field 'spec'"),
    ({"name": "x", "spec": {"pip": ["six"], "colour": 1}}, "unknown keys"),
    ({"name": "x", "spec": {"name": "y", "pip": ["six"]}}, "differs from name"),
    ({"name": "x", "spec": {"python": "3.11"}}, "malformed spec"),
    ({"name": "x", "spec": {"pip": ["six"], "backend": "docker"}}, "'docker' builder"),
    ({"name": "x", "spec": {"pip": ["six"], "backend": "nope"}}, "'nope' builder"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_BODIES)
@on_loop
async def test_bad_bodies_are_400_with_a_message(
    api: Api, body: object, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Docker specs must be refused here as on a machine without an engine.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    raw = body if isinstance(body, str) else json.dumps(body)
    code, error = await api.call("POST", "environments", body=raw)
    assert code == 400, error
    assert set(error) == {"message", "reason"}
    assert expected in error["message"]
    assert "Traceback" not in error["message"]
    code, builds = await api.call("GET", "builds")
    assert builds == []


@on_loop
async def test_bad_query_arguments_are_400(api: Api) -> None:
    build = await api.finished((await api.create(fake()))["id"])
    code, error = await api.call("GET", "builds", build["id"], "log", params={"offset": "-1"})
    assert code == 400
    assert "'offset' must be a non-negative integer" in error["message"]
    code, error = await api.call("DELETE", "environments", "demo", params={"version": "²"})
    assert code == 400
    assert "'version' must be a non-negative integer" in error["message"]


@on_loop
async def test_unexpected_errors_are_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: EnvManager, name: str) -> None:
        raise RuntimeError("secret detail at /srv/private/path")

    monkeypatch.setattr(EnvManager, "versions", broken)
    code, error = await api.call("GET", "environments", "demo", "versions")
    assert code == 500
    assert error == {
        "message": "internal server error; the server log has the details",
        "reason": "Internal Server Error",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ("environments", "nosuch")),
        ("GET", ("environments", "nosuch", "versions")),
        ("DELETE", ("environments", "nosuch")),
        ("GET", ("builds", "nosuch")),
        ("POST", ("builds", "nosuch", "cancel")),
        ("GET", ("builds", "nosuch", "log")),
    ],
)
@on_loop
async def test_unknown_names_and_ids_are_404(api: Api, method: str, path: tuple[str, ...]) -> None:
    code, error = await api.call(method, *path)
    assert code == 404
    assert error == {"message": error["message"], "reason": "NotFoundError"}
    assert "nosuch" in error["message"]


def test_shipped_config_enables_the_extension() -> None:
    config = json.loads(
        (ROOT / "jupyter-config" / "jupyter_server_config.d" / "jupyter_envs.json").read_text()
    )
    assert config == {"ServerApp": {"jpserver_extensions": {"jupyter_envs": True}}}
    points = jupyter_envs._jupyter_server_extension_points()
    assert points == [{"module": "jupyter_envs.frontends.server", "app": JupyterEnvsApp}]


# -- the kernel side's access: scoped token, switching a session --------------------------------
@on_loop
async def test_kernels_get_a_token_scoped_to_this_api(
    link_env: None, api: Api, jp_fetch: Fetch, jp_http_port: int, jp_base_url: str
) -> None:
    url, token = await exported(api)
    assert url == f"http://127.0.0.1:{jp_http_port}{jp_base_url}jupyter-envs/api/"
    scoped = {"Authorization": f"token {token}"}
    code, listed = await api.call("GET", "environments", headers=scoped)
    assert (code, listed) == (200, [])
    build = await api.call("POST", "environments", body=fake(), headers=scoped)
    assert build[0] == 202
    assert RecordingAuthorizer.checks[-1] == ("write", "jupyter_envs")
    # The same token opens nothing else on the server.
    for path in (("api", "kernels"), ("api", "contents"), ("api", "sessions")):
        response = await jp_fetch(*path, headers=scoped, raise_error=False)
        assert response.code in (401, 403), path
    code, _ = await api.call("GET", "environments", headers={"Authorization": "token wrong"})
    assert code in (401, 403)
    await api.finished(build[1]["id"])


@on_loop
async def test_container_kernels_reach_the_api_on_a_unix_socket(link_env: None, api: Api) -> None:
    """The same routes on a 0600 Unix socket (mounted into container kernels), same auth."""
    url, token = await exported(api)
    path = Path(os.environ[API_SOCKET_VAR])
    assert path.is_socket()
    assert path.stat().st_mode & 0o777 == 0o600
    link = ServerLink(unix_socket_url(str(path), url), token)
    assert await asyncio.to_thread(link.request, "GET", "environments") == []
    build = await asyncio.to_thread(link.request, "POST", "environments", fake("viasocket"))
    assert (await api.finished(build["id"]))["status"] == "succeeded"
    for bad in (
        ServerLink(link.url, "wrong"),
        ServerLink(link.url.replace("/api/", "/nope/"), token),
    ):
        with pytest.raises(ApiError) as info:
            await asyncio.to_thread(bad.request, "GET", "environments")
        assert info.value.status in (403, 404)


@on_loop
async def test_switch_replaces_the_kernel_of_the_session_that_owns_it(
    link_env: None, api: Api, jp_fetch: Fetch
) -> None:
    _, token = await exported(api)
    session = await _session(jp_fetch, "nb.ipynb")
    old = session["kernel"]["id"]
    try:
        code, reply = await api.call(
            "POST",
            "switch",
            body={"kernel_id": old, "kernel_name": "python3"},
            headers={"Authorization": f"token {token}"},
        )
        assert code == 202, reply
        assert (reply["status"], reply["session_id"]) == ("switching", session["id"])
        deadline = time.monotonic() + 60
        while True:
            response = await jp_fetch("api", "sessions", session["id"])
            current = json.loads(response.body)["kernel"]["id"]
            if current != old:
                break
            assert time.monotonic() < deadline, "the session kept its kernel"
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while old in await _kernel_ids(jp_fetch):
            assert time.monotonic() < deadline, "the old kernel is still running"
            await asyncio.sleep(0.1)
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


SWITCH_ROUTES = [("switch",), ("switch", "prepare")]


@pytest.mark.parametrize("route", SWITCH_ROUTES)
@pytest.mark.parametrize(
    ("body", "code", "expected"),
    [
        ({"kernel_id": "no-such-kernel", "kernel_name": "python3"}, 404, "no session uses"),
        ({"kernel_id": "k"}, 400, "'kernel_name'"),
        ({"kernel_id": "", "kernel_name": "python3"}, 400, "'kernel_id'"),
        ("[]", 400, "JSON object"),
        ("{", 400, "not valid JSON"),
    ],
)
@on_loop
async def test_bad_switch_requests(
    api: Api, route: tuple[str, ...], body: object, code: int, expected: str
) -> None:
    status, error = await api.call("POST", *route, body=body)
    assert status == code
    assert expected in error["message"]


@pytest.mark.parametrize("route", SWITCH_ROUTES)
@on_loop
async def test_switch_to_an_unknown_kernel_is_400(
    api: Api, jp_fetch: Fetch, route: tuple[str, ...]
) -> None:
    session = await _session(jp_fetch, "unknown.ipynb")
    try:
        code, error = await api.call(
            "POST", *route, body={"kernel_id": session["kernel"]["id"], "kernel_name": "nope"}
        )
        assert code == 400, error
        assert "no kernel named 'nope'" in error["message"]
        assert await _kernel_ids(jp_fetch) == {session["kernel"]["id"]}
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


async def _session(jp_fetch: Fetch, path: str) -> dict[str, Any]:
    response = await jp_fetch(
        "api",
        "sessions",
        method="POST",
        body=json.dumps(
            {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        ),
    )
    session: dict[str, Any] = json.loads(response.body)
    return session


async def _kernel_ids(jp_fetch: Fetch) -> set[str]:
    return {k["id"] for k in json.loads((await jp_fetch("api", "kernels")).body)}


def _envs_app(serverapp: Any) -> JupyterEnvsApp:
    (app,) = serverapp.extension_manager.extension_apps["jupyter_envs"]
    assert isinstance(app, JupyterEnvsApp)
    return app


def _kernelspec(kernel_dir: Path, name: str, code: str) -> None:
    """A kernelspec whose "kernel" runs ``code`` instead of a kernel."""
    (kernel_dir / name).mkdir(parents=True)
    spec = {"argv": [sys.executable, "-c", code], "display_name": name, "language": "python"}
    (kernel_dir / name / "kernel.json").write_text(json.dumps(spec))


@on_loop
async def test_prepare_starts_the_kernel_and_switch_adopts_it(
    link_env: None, api: Api, jp_fetch: Fetch
) -> None:
    _, token = await exported(api)
    scoped = {"Authorization": f"token {token}"}
    session = await _session(jp_fetch, "prep.ipynb")
    old = session["kernel"]["id"]
    try:
        code, ready = await api.call(
            "POST",
            "switch",
            "prepare",
            body={"kernel_id": old, "kernel_name": "python3"},
            headers=scoped,
        )
        assert code == 201, ready
        new = ready["new_kernel_id"]
        assert (ready["status"], ready["kernel_id"], ready["session_id"]) == (
            "ready",
            old,
            session["id"],
        )
        assert new != old
        assert ready["seconds"] > 0
        assert await _kernel_ids(jp_fetch) == {old, new}
        # Prepared, not switched: the session keeps its kernel until asked.
        response = await jp_fetch("api", "sessions", session["id"])
        assert json.loads(response.body)["kernel"]["id"] == old
        # Only a kernel prepared for this session can be adopted.
        code, error = await api.call(
            "POST",
            "switch",
            body={"kernel_id": old, "kernel_name": "python3", "new_kernel_id": "other"},
            headers=scoped,
        )
        assert code == 400
        assert "was not prepared for this notebook's session" in error["message"]
        code, reply = await api.call(
            "POST",
            "switch",
            body={"kernel_id": old, "kernel_name": "python3", "new_kernel_id": new},
            headers=scoped,
        )
        assert code == 202, reply
        assert reply["new_kernel_id"] == new
        deadline = time.monotonic() + 30
        while json.loads((await jp_fetch("api", "sessions", session["id"])).body)["kernel"][
            "id"
        ] != new or old in await _kernel_ids(jp_fetch):
            assert time.monotonic() < deadline, "the session did not adopt the prepared kernel"
            await asyncio.sleep(0.05)
        assert await _kernel_ids(jp_fetch) == {new}
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


@on_loop
async def test_a_kernel_that_cannot_start_is_502_and_leaves_nothing_running(
    api: Api, jp_fetch: Fetch, jp_kernel_dir: Path, jp_serverapp: Any
) -> None:
    _kernelspec(jp_kernel_dir, "dies", "import sys; sys.exit(3)")
    _kernelspec(jp_kernel_dir, "mute", "import time; time.sleep(300)")
    prepared = _envs_app(jp_serverapp).prepared
    assert prepared is not None
    prepared.ready_timeout = 3
    session = await _session(jp_fetch, "broken.ipynb")
    old = session["kernel"]["id"]
    try:
        for name, expected in (
            ("dies", "the kernel 'dies' died while starting"),
            ("mute", "the kernel 'mute' did not answer within 3 s"),
        ):
            code, error = await api.call(
                "POST", "switch", "prepare", body={"kernel_id": old, "kernel_name": name}
            )
            assert code == 502, error
            assert error == {"message": error["message"], "reason": "KernelStartError"}
            assert expected in error["message"]
            # Shut down again; the notebook keeps its kernel.
            assert await _kernel_ids(jp_fetch) == {old}
            response = await jp_fetch("api", "sessions", session["id"])
            assert json.loads(response.body)["kernel"]["id"] == old
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


@on_loop
async def test_a_prepared_kernel_nobody_adopts_is_shut_down(
    api: Api, jp_fetch: Fetch, jp_serverapp: Any
) -> None:
    prepared = _envs_app(jp_serverapp).prepared
    assert prepared is not None
    prepared.adopt_timeout = 1
    session = await _session(jp_fetch, "orphan.ipynb")
    old = session["kernel"]["id"]
    try:
        code, first = await api.call(
            "POST", "switch", "prepare", body={"kernel_id": old, "kernel_name": "python3"}
        )
        assert code == 201, first
        # A second request for the same session replaces the first prepared kernel at once.
        prepared.adopt_timeout = 600
        code, second = await api.call(
            "POST", "switch", "prepare", body={"kernel_id": old, "kernel_name": "python3"}
        )
        assert code == 201, second
        assert await _kernel_ids(jp_fetch) == {old, second["new_kernel_id"]}
        await jp_fetch("api", "kernels", second["new_kernel_id"], method="DELETE")
        prepared.adopt_timeout = 1
        code, third = await api.call(
            "POST", "switch", "prepare", body={"kernel_id": old, "kernel_name": "python3"}
        )
        assert code == 201, third
        deadline = time.monotonic() + 20
        while third["new_kernel_id"] in await _kernel_ids(jp_fetch):
            assert time.monotonic() < deadline, "the unadopted kernel is still running"
            await asyncio.sleep(0.1)
        assert await _kernel_ids(jp_fetch) == {old}
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


@on_loop
async def test_prepare_turned_off_is_409(api: Api, jp_serverapp: Any) -> None:
    app = _envs_app(jp_serverapp)
    prepared, app.prepared = app.prepared, None
    try:
        code, error = await api.call(
            "POST", "switch", "prepare", body={"kernel_id": "k", "kernel_name": "python3"}
        )
    finally:
        app.prepared = prepared
    assert code == 409
    assert "prepare_kernels is False" in error["message"]


@on_loop
async def test_kernel_side_builds_go_through_the_server(api: Api) -> None:
    """What %%env does in a kernel of this server: submit, follow the events, get the result."""
    url, token = await exported(api)
    remote = RemoteBuilds(ServerLink(url, token))
    events: list[Event] = []
    spec = Environment("remote", pip=["six", "requests"], backend="fake")
    # Synchronous client (as in a kernel): run it off the loop that serves it.
    result = await asyncio.to_thread(remote.build, spec, on_event=events.append)
    assert (result.name, result.version, result.cache_hit) == ("remote", 1, False)
    assert result.kernel_name == "jenv-remote-v1"
    assert result.backend == "fake"
    lines = [e.text for e in events if isinstance(e, LogLine)]
    assert lines.index(" + six") < lines.index(" + requests")
    assert [e for e in events if isinstance(e, Progress)][-1].fraction == 1.0
    again = await asyncio.to_thread(remote.build, spec)
    assert (again.version, again.cache_hit) == (1, True)
    _, listed = await api.call("GET", "environments")
    assert [e["name"] for e in listed] == ["remote"]
    failing = Environment("remote", pip=["fail-build"], backend="fake")
    with pytest.raises(BuildError, match="building 'remote' failed"):
        await asyncio.to_thread(remote.build, failing)


def test_sockets_of_dead_servers_are_removed(tmp_path: Path) -> None:
    import socket
    import subprocess

    from jupyter_envs.frontends.server._unixsocket import _remove_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    paths = {
        "stale": tmp_path / f"jupyter-envs-{dead.pid}-abc123.sock",
        "live": tmp_path / f"jupyter-envs-{os.getpid()}-abc123.sock",
        "other": tmp_path / "something-else.sock",
    }
    for path in paths.values():
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    _remove_stale(tmp_path)
    assert not paths["stale"].exists()
    assert paths["live"].exists()
    assert paths["other"].exists()


class _Said:
    """An Output that keeps what a verb says."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def event(self, event: Event) -> None:
        pass


@on_loop
async def test_envs_verbs_in_a_kernel_go_through_the_server(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """%envs build / remove in a kernel of this server: the server builds and removes (it owns
    the registry); nothing is built or removed in the kernel's process."""
    from jupyter_envs.clients.envs import connect
    from jupyter_envs.frontends._commands import make_parser, run_command

    await exported(api)  # the kernel's link is now in this process's environment
    client = connect()
    assert not client.local

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("built or removed in the kernel's process")

    spec = Environment("verbs", pip=["six"], backend="fake")
    await asyncio.to_thread(client.build, spec)
    # The server runs in this process too: refuse on the kernel side's own manager only.
    monkeypatch.setattr(client.manager, "build", refuse)
    monkeypatch.setattr(client.manager, "remove", refuse)
    said = _Said()
    words = ["build", "verbs", "--force"]
    await asyncio.to_thread(run_command, make_parser("%envs").parse_args(words), client, said)
    assert said.lines == [said.lines[0]]
    assert "verbs v1" in said.lines[0]
    _, builds = await api.call("GET", "builds")
    assert [b["name"] for b in builds].count("verbs") == 2  # both builds ran in the server
    words = ["remove", "verbs"]
    await asyncio.to_thread(run_command, make_parser("%envs").parse_args(words), client, said)
    assert said.lines[-1] == "Removed verbs (v1) and its kernelspecs."
    _, listed = await api.call("GET", "environments")
    assert listed == []
