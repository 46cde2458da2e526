"""A Jupyter server with ``c.JupyterEnvsApp.registry`` set pushes every Docker build, for real:
the REST build job says where it pushed, the environment lists its pushes, the push route
answers 502 for an unreachable registry and records nothing.

A real server (pytest-jupyter), a real registry (``tests/_registry.py``), a real Docker build on
this run's base image; the environment and its images are removed at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures: see test_rest.py)
from traitlets.config import Config

from jupyter_envs.clients.envs import EnvsClient
from jupyter_envs.clients.serverlink import ServerLink
from tests import _engine, _registry
from tests._registry import Registry, free_port, start_registry, stop_registry
from tests._rest import Api, exported, on_loop, server_config
from tests._rest import api as api  # the fixture
from tests._rest import link_env as link_env  # autouse: the server's exports do not leak

pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(
        (_engine.unavailable() or _registry.unavailable()) is not None,
        reason=str(_engine.unavailable() or _registry.unavailable()),
    ),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    running = start_registry(tmp_path_factory.mktemp("server-registry"))
    yield running
    stop_registry(running)


# Overrides pytest-jupyter's fixture of that name (star-imported above).
@pytest.fixture  # type: ignore[no-redef]
def jp_server_config(tmp_path: Path, registry: Registry) -> Config:
    """The REST tests' server, with the registry every Docker build is pushed to."""
    config = server_config(tmp_path)
    config.JupyterEnvsApp.registry = f"{registry.host}/srv"
    return config


@on_loop
async def test_the_servers_registry_setting_pushes_each_docker_build(
    api: Api, registry: Registry, run_base: str
) -> None:
    name = f"srv-{uuid.uuid4().hex[:8]}"
    spec = {"pip": ["six==1.17.0"], "docker": {"base_image": run_base}, "backend": "docker"}
    body = {"name": name, "spec": spec}
    job = await api.create(body)
    done = await api.wait(job["id"], lambda b: b["status"] in ("succeeded", "failed"), 600)
    pushed: list[str] = []
    try:
        assert done["status"] == "succeeded", done
        assert done["pushed"].startswith(f"{registry.host}/srv/{name}:v1-")
        assert "@sha256:" in done["pushed"]
        code, env = await api.call("GET", "environments", name)
        assert code == 200
        assert [p["image"] for p in env["pushes"]] == [done["pushed"]]
        pushed.append(done["pushed"])
        reference, digest = done["pushed"].split("@")
        repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
        assert registry.manifest_digest(repository, tag) == digest

        closed = free_port()
        code, error = await api.call(
            "POST", "environments", name, "push", body={"registry": f"127.0.0.1:{closed}/x"}
        )
        assert (code, error["reason"]) == (502, "RegistryError")
        assert f"127.0.0.1:{closed}" in error["message"]
        code, versions = await api.call("GET", "environments", name, "versions")
        assert [p["registry"] for p in versions[0]["pushes"]] == [f"{registry.host}/srv"]

        code, again = await api.call("POST", "environments", name, "push", body={})
        assert code == 200
        assert again["image"] == done["pushed"]  # same image, same digest
        assert (again["name"], again["version"]) == (name, 1)
        # A kernel's client (`%envs push`) goes through the same route, reading the answer.
        url, token = await exported(api)
        client = EnvsClient(ServerLink(url, token))
        record = await asyncio.to_thread(client.push, name, registry=f"{registry.host}/srv")
        assert record.pinned == done["pushed"]
    finally:
        code, _ = await api.call("DELETE", "environments", name)
        for image in pushed:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
