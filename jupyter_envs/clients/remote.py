"""Building through the server: what ``%%env`` and ``Environment.build`` do inside a kernel
launched by a Jupyter server with the jupyter-envs extension.

The server owns the registry there: the build runs in the server (it survives the kernel being
replaced), and this module only submits the spec, follows the build's Server-Sent Events and
turns them into the same :class:`~jupyter_envs.events.LogLine` / ``Progress`` events and
:class:`~jupyter_envs.facade.manager.BuildResult` as a local build. Which way a build goes is
chosen in :mod:`jupyter_envs.clients.envs`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from ..engines.builders import CancelToken
from ..errors import BuildCancelledError, BuildError, EnvsError
from ..events import Event, LogLine, Progress
from ..facade.manager import BuildResult
from ..spec._carried import Carried
from ..spec._environment import Environment
from .serverlink import ServerLink

__all__ = ["RemoteBuilds"]


class RemoteBuilds:
    """Builds submitted to the jupyter-envs REST API and followed live."""

    def __init__(self, link: ServerLink) -> None:
        self.link = link

    def build(
        self,
        env: Environment,
        *,
        force: bool = False,
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> BuildResult:
        """Submit, follow until done, return the result; raise like a local build on failure.

        An interrupt (the kernel's stop button), or ``cancel`` set from another thread, cancels
        the server's build.
        """
        body = {"name": env.name, "spec": env.to_dict(), "force": force}
        return self._run("environments", body, env.name, on_event, cancel)

    def restore(
        self,
        record: Carried,
        *,
        name: str | None = None,
        re_resolve: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> BuildResult:
        """Build a notebook's carried environment in the server (``POST restore``), like
        :meth:`build`: from its lock unless ``re_resolve``."""
        body: dict[str, Any] = {"metadata": record.to_metadata(), "re_resolve": re_resolve}
        if name:
            body["name"] = name
        return self._run("restore", body, name or record.env, on_event)

    def _run(
        self,
        path: str,
        body: dict[str, Any],
        name: str,
        on_event: Callable[[Event], None] | None,
        cancel: CancelToken | None = None,
    ) -> BuildResult:
        sink = on_event or (lambda _event: None)
        started = time.perf_counter()
        job = self.link.request("POST", path, body)
        followed = threading.Event()
        if cancel is not None:
            threading.Thread(
                target=self._cancel_when, args=(cancel, job["id"], followed), daemon=True
            ).start()
        try:
            final = self._follow(job, sink)
        except KeyboardInterrupt:
            self._cancel(job["id"])
            raise BuildCancelledError(
                "interrupted; the server cancelled the build", env_name=name
            ) from None
        finally:
            followed.set()
        return self._result(final, time.perf_counter() - started)

    def _cancel_when(self, cancel: CancelToken, build_id: str, followed: threading.Event) -> None:
        while not followed.is_set():
            if cancel.wait(0.2):
                self._cancel(build_id)
                return

    def _follow(self, job: dict[str, Any], sink: Callable[[Event], None]) -> dict[str, Any]:
        final: dict[str, Any] | None = None
        for event, data in self._events(job["id"]):
            if event in ("log", "notice"):
                sink(LogLine(str(data.get("text", ""))))
            elif event == "progress" and data:
                sink(Progress(data["phase"], float(data["fraction"]), data.get("message", "")))
            elif event == "done":
                final = data
        if final is None:  # the stream ended early (server restart): ask once more
            final = self.link.request("GET", f"builds/{job['id']}")
        return final

    def _events(self, build_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Parse the build's ``text/event-stream``, event by event, as it arrives."""
        req = urllib.request.Request(  # noqa: S310 - the URL comes from our own server
            f"{self.link.url}builds/{build_id}/log",
            headers={"Authorization": f"token {self.link.token}", "Accept": "text/event-stream"},
        )
        try:
            resp = self.link.open(req, timeout=3600)
        except (urllib.error.URLError, OSError) as exc:
            raise EnvsError(f"cannot follow build {build_id}: {exc}") from None
        with resp:
            event, data = "", ""
            for raw in resp:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if event and data:
                        yield event, json.loads(data)
                    event, data = "", ""
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]

    def _cancel(self, build_id: str) -> None:
        # Finished meanwhile (409) or the server went away: nothing is left to cancel.
        with contextlib.suppress(EnvsError):
            self.link.request("POST", f"builds/{build_id}/cancel", {})

    def _result(self, job: dict[str, Any], duration: float) -> BuildResult:
        name = job["name"]
        # The server's message already says "building 'NAME' failed: ..."; the error raised here
        # says it once more unless it is taken off.
        said = str(job.get("error") or "").removeprefix(f"building '{name}' failed: ")
        if job["status"] == "cancelled":
            raise BuildCancelledError(said or "cancelled", env_name=name)
        if job["status"] != "succeeded":
            raise BuildError(said or f"build {job['id']} {job['status']}", env_name=name)
        versions = self.link.request("GET", f"environments/{name}/versions")
        record: dict[str, Any] = next((v for v in versions if v["version"] == job["version"]), {})
        return BuildResult(
            name=name,
            version=int(job["version"]),
            spec_hash=job["spec_hash"],
            cache_hit=bool(job.get("cache_hit")),
            duration=duration,
            kernel_name=job.get("kernel_name") or record.get("kernel_name") or "",
            log_path=None,
            artifact="",
            backend=record.get("backend", ""),
            python_version=record.get("python_version") or "",
            pushed=job.get("pushed"),
        )
