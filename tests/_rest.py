"""The fixtures and helpers of the REST tests (``test_rest.py``, ``test_hardening.py``): a real
in-process Jupyter server with the extension, a JSON client for its API, a gated fake builder.

Star-imported by those modules, with pytest-jupyter's fixtures (see ``test_rest.py``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, ClassVar, ParamSpec

import pytest
from jupyter_core.utils import ensure_event_loop
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import JupyterHandler
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from jupyter_envs.clients.serverlink import API_SOCKET_VAR, API_TOKEN_VAR, API_URL_VAR
from jupyter_envs.engines import builders
from jupyter_envs.engines.builders import BuildOutput, BuildRequest, FakeBuilder
from jupyter_envs.errors import BuildCancelledError
from jupyter_envs.events import Event, LogLine

__all__ = [
    "FINISHED",
    "Api",
    "Fetch",
    "GatedBuilder",
    "RecordingAuthorizer",
    "api",
    "exported",
    "fake",
    "gated",
    "jp_server_config",
    "link_env",
    "on_loop",
    "server_config",
]

P = ParamSpec("P")
Fetch = Callable[..., Awaitable[HTTPResponse]]
FINISHED = {"succeeded", "failed", "cancelled"}


def on_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on the event loop of pytest-jupyter's server fixtures."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        ensure_event_loop(prefer_selector_loop=True).run_until_complete(test(*args, **kwargs))

    return run


# -- fixtures --------------------------------------------------------------------------------
class RecordingAuthorizer(Authorizer):
    """Allows everything except what ``deny`` names, and records every check."""

    checks: ClassVar[list[tuple[str, str]]] = []
    deny: ClassVar[set[str]] = set()

    def is_authorized(
        self, handler: JupyterHandler, user: User, action: str, resource: str
    ) -> bool:
        self.checks.append((action, resource))
        return resource not in self.deny


# Overrides pytest-jupyter's fixture of the same name (star-imported above).
@pytest.fixture
def jp_server_config(tmp_path: Path) -> Config:
    """The extension enabled as users enable it, with its store in the test's tmp dir."""
    return server_config(tmp_path)


def server_config(tmp_path: Path) -> Config:
    """What :func:`jp_server_config` gives (for modules that add settings to it)."""
    RecordingAuthorizer.checks = []
    RecordingAuthorizer.deny = set()
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"jupyter_envs": True},
                "authorizer_class": RecordingAuthorizer,
            },
            "JupyterEnvsApp": {
                "store_root": str(tmp_path / "store"),
                # Text specs name no backend: never let a test reach the real uv builder.
                "default_backend": "fake",
            },
        }
    )


class Api:
    """Calls ``/jupyter-envs/api/...`` and returns (status, parsed JSON body)."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch

    async def call(
        self,
        method: str,
        *path: str,
        body: object = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False}
        if body is not None:
            kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
        response = await self.fetch(
            "jupyter-envs", "api", *path, params=params, headers=headers, **kwargs
        )
        data = json.loads(response.body) if response.body else None
        return response.code, data

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        code, build = await self.call("POST", "environments", body=body)
        assert code == 202, build
        assert isinstance(build, dict)
        return build

    async def wait(
        self, build_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            code, build = await self.call("GET", "builds", build_id)
            assert code == 200, build
            if until(build):
                assert isinstance(build, dict)
                return build
            assert time.monotonic() < deadline, f"timed out waiting; last: {build}"
            await asyncio.sleep(0.02)

    async def finished(self, build_id: str) -> dict[str, Any]:
        return await self.wait(build_id, lambda b: b["status"] in FINISHED)

    async def running(self, build_id: str) -> dict[str, Any]:
        return await self.wait(build_id, lambda b: b["status"] == "running")


@pytest.fixture
def api(jp_fetch: Fetch) -> Api:
    return Api(jp_fetch)


def fake(name: str = "demo", *pip: str) -> dict[str, Any]:
    return {"name": name, "spec": {"pip": list(pip or ("six==1.17.0",)), "backend": "fake"}}


class GatedBuilder(FakeBuilder):
    """A fake builder that prints two lines, then waits for :attr:`gate` before finishing."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        yield LogLine("before the gate 1")
        yield LogLine("before the gate 2")
        while not self.gate.wait(0.02):
            if request.cancel.cancelled:
                raise BuildCancelledError("cancelled at the gate", env_name=request.env.name)
        yield LogLine("after the gate")
        return (yield from super().build(request))


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedBuilder]:
    """A ``backend: "gated"`` builder added to the chain for this test."""
    builder = GatedBuilder()
    chain = builders.available_builders()
    monkeypatch.setattr(builders, "available_builders", lambda: (*chain, builder))
    yield builder
    builder.gate.set()  # never leave a worker thread waiting


@pytest.fixture(autouse=True)
def link_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server exports the kernel link and its store into os.environ (kernels inherit it):
    restore the test process's environment afterwards. Autouse, so it is set up before the
    server fixtures.
    """
    for var in (
        API_URL_VAR,
        API_TOKEN_VAR,
        API_SOCKET_VAR,
        "JUPYTER_ENVS_STORE",
        "JUPYTER_ENVS_KERNELS_DIR",
        "JUPYTER_ENVS_DEFAULT_BASE_IMAGE",
    ):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


async def exported(api: Api) -> tuple[str, str]:
    await api.call("GET", "environments")  # lets the server's loop run its first callbacks
    deadline = time.monotonic() + 10
    while not os.environ.get(API_TOKEN_VAR):
        assert time.monotonic() < deadline, "the server never exported the kernel link"
        await asyncio.sleep(0.02)
    return os.environ[API_URL_VAR], os.environ[API_TOKEN_VAR]
