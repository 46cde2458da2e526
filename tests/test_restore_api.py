"""``POST restore/preview`` and ``POST restore``: a notebook's carried environment, rebuilt by
the server (what the labextension's "build and switch" button and ``%envs restore`` in a kernel
use), against a real in-process Jupyter server; the fake builder builds."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures: see test_rest.py)

from jupyter_envs.clients.remote import RemoteBuilds
from jupyter_envs.clients.serverlink import ServerLink
from jupyter_envs.spec._carried import Carried
from tests._rest import *  # noqa: F403
from tests._rest import Api, exported, fake, on_loop


async def carried_record(api: Api, name: str = "demo", *pip: str) -> dict[str, Any]:
    """Build ``name`` on the server, take what a notebook would carry of it, then remove it
    (the notebook "travels" to a server that does not have the environment)."""
    build = await api.finished((await api.create(fake(name, *pip)))["id"])
    assert build["status"] == "succeeded", build
    code, version = await api.call("GET", "environments", name)
    assert code == 200
    record = {
        "format": 1,
        "env": name,
        "version": version["version"],
        "spec_hash": version["spec_hash"],
        "backend": version["backend"],
        "python": version["python_version"],
        "platform": "linux-x86_64",
        "spec": version["spec"],
        "lock": version["lock"],
    }
    code, _ = await api.call("DELETE", "environments", name)
    assert code == 204
    return record


@on_loop
async def test_preview_then_restore_builds_the_lock_and_a_second_preview_finds_it(
    api: Api,
) -> None:
    record = await carried_record(api, "demo", "six==1.17.0", "requests")
    code, plan = await api.call("POST", "restore", "preview", body={"metadata": record})
    assert code == 200, plan
    assert (plan["env"], plan["name"], plan["from_lock"], plan["existing"]) == (
        "demo",
        "demo",
        True,
        None,
    )
    assert plan["installs"] == record["lock"].splitlines()
    code, builds = await api.call("GET", "builds")
    before = len(builds)

    code, job = await api.call("POST", "restore", body={"metadata": record})
    assert code == 202, job
    assert job["from_lock"] is True
    done = await api.finished(job["id"])
    assert done["status"] == "succeeded", done
    code, version = await api.call("GET", "environments", "demo")
    assert (version["spec_hash"], version["lock"]) == (record["spec_hash"], record["lock"])
    code, plan = await api.call("POST", "restore", "preview", body={"metadata": record})
    assert plan["existing"] == {
        "name": "demo",
        "version": version["version"],
        "kernel_name": version["kernel_name"],
    }
    code, builds = await api.call("GET", "builds")
    assert len(builds) == before + 1  # previews build nothing


@on_loop
async def test_restore_under_another_name_and_re_resolved(api: Api) -> None:
    record = await carried_record(api, "demo")
    body = {"metadata": record, "name": "copy", "re_resolve": True}
    code, plan = await api.call("POST", "restore", "preview", body=body)
    assert (plan["name"], plan["from_lock"], plan["installs"]) == ("copy", False, ["six==1.17.0"])
    code, job = await api.call("POST", "restore", body=body)
    assert code == 202
    assert (job["from_lock"], job["name"]) == (False, "copy")
    assert (await api.finished(job["id"]))["status"] == "succeeded"


def _tampered(record: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(record)
    bad["spec"]["pip"] = ["evil==6.6.6"]
    return bad


BAD: list[tuple[str, Any, str]] = [
    ("not an object", [1], "must be a JSON object with 'metadata'"),
    ("unknown key", {"metadata": {}, "colour": 1}, "unknown keys ['colour']"),
    ("no metadata", {}, "field 'metadata.jupyter_envs': must be an object"),
    ("no format", {"metadata": {"env": "x"}}, "has no 'format'"),
    ("future format", {"metadata": {"format": 9}}, "format 9 is not one this version reads"),
    ("re_resolve as text", {"metadata": {}, "re_resolve": "yes"}, "field 're_resolve'"),
    ("name as number", {"metadata": {}, "name": 3}, "field 'name'"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD, ids=[c for c, _, _ in BAD])
@pytest.mark.parametrize("route", [("restore",), ("restore", "preview")])
@on_loop
async def test_bad_restore_bodies_are_400_naming_the_field(
    api: Api, case: str, body: Any, says: str, route: tuple[str, ...]
) -> None:
    code, error = await api.call("POST", *route, body=body)
    assert code == 400, error
    assert says in error["message"]
    code, builds = await api.call("GET", "builds")
    assert builds == []


@on_loop
async def test_a_tampered_record_is_refused_and_nothing_is_built(api: Api) -> None:
    record = await carried_record(api, "demo")
    code, builds = await api.call("GET", "builds")
    for route in (("restore", "preview"), ("restore",)):
        code, error = await api.call("POST", *route, body={"metadata": _tampered(record)})
        assert code == 400, error
        assert "does not match its spec hash" in error["message"]
        assert "metadata.jupyter_envs.spec_hash" in error["message"]
        wrong = {**record, "version": "1"}
        code, error = await api.call("POST", *route, body={"metadata": wrong})
        assert "'metadata.jupyter_envs.version': must be an integer" in error["message"]
    assert (await api.call("GET", "builds"))[1] == builds
    assert (await api.call("GET", "environments"))[1] == []


@on_loop
async def test_a_kernel_restores_through_the_server(api: Api) -> None:
    """What ``%envs restore`` does in a kernel the server started: the build runs in the
    server, followed live, from the lock."""
    record = await carried_record(api, "demo", "six==1.17.0", "requests")
    url, token = await exported(api)
    link = ServerLink(url, token)
    seen: list[object] = []

    def build() -> Any:
        return RemoteBuilds(link).restore(Carried.from_metadata(record), on_event=seen.append)

    result = await asyncio.to_thread(build)
    assert (result.name, result.spec_hash) == ("demo", record["spec_hash"])
    assert seen  # progress and log lines came through
    _, version = await api.call("GET", "environments", "demo")
    assert (version["version"], version["lock"]) == (result.version, record["lock"])


@pytest.mark.integration
@on_loop
async def test_juv_parts_for_a_record(api: Api) -> None:
    """``POST juv``: the PEP 723 cell and uv.lock the labextension writes to keep a notebook
    readable by juv (real ``uv lock --script``)."""
    record = await carried_record(api, "demo", "six==1.17.0")
    code, parts = await api.call("POST", "juv", body={"metadata": record})
    assert code == 200, parts
    assert parts["cell"].startswith("# /// script\n")
    assert '#     "six==1.17.0",' in parts["cell"]
    assert 'name = "six"\nversion = "1.17.0"' in parts["uv_lock"]
    code, error = await api.call("POST", "juv", body={"metadata": _tampered(record)})
    assert code == 400
    assert "does not match its spec hash" in error["message"]
    code, error = await api.call("POST", "juv", body={"metadata": record, "x": 1})
    assert code == 400


@on_loop
async def test_where_each_environment_can_run(api: Api) -> None:
    await api.finished((await api.create(fake("demo")))["id"])
    code, places = await api.call("GET", "where")
    assert code == 200
    assert places == [
        {
            "name": "demo",
            "version": 1,
            "places": {
                "local": "yes",
                "container": "no: it has no image",
                "swarm": "no: it has no image",
                "k8s": "no: it has no image",
            },
        }
    ]
    code, error = await api.call("GET", "where", params={"name": "nope"})
    assert code == 404
    assert "nope" in error["message"]
