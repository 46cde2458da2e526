"""One object with the manager's verbs for the front-ends that run inside a kernel.

``%%env``, ``%envs``, ``Environment.build()`` and the widget panel run in a kernel. When that
kernel was started by a Jupyter server with the jupyter-envs extension, the server owns the
registry: builds run there (they outlive the kernel, which a switch replaces) and removals go
through it (it may be building that name). Without such a server (nbclient, VS Code, plain
IPython) the same verbs run in this process. :func:`connect` is the one place that chooses.

Reads (list, show, versions, export, logs) use the store directly in both cases: it is the same
store on the same machine, and SQLite with file locks makes that safe.
"""

from __future__ import annotations

import builtins
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines.builders import CancelToken
from ..engines.kernels.environ import container_kernel_problem
from ..engines.store import BuildRecord, EnvQuery, Page, PushRecord, VersionRecord
from ..errors import EnvsError
from ..events import Event
from ..facade.carry import RestorePlan
from ..facade.manager import BuildResult, EnvManager, Garbage, get_manager
from ..spec import Environment
from ..spec._carried import Carried
from .remote import RemoteBuilds
from .serverlink import ServerLink

if TYPE_CHECKING:
    from ..engines.kernels.k8s import K8sSettings
    from ..facade.cluster import Placement

__all__ = ["EnvsClient", "connect"]

EventSink = Callable[[Event], None]


class EnvsClient:
    """The manager's verbs, with builds and removals sent to the server when there is one."""

    def __init__(self, link: ServerLink | None, manager: EnvManager | None = None) -> None:
        self.link = link
        self._manager = manager

    @property
    def local(self) -> bool:
        """True when the verbs run in this process (no server to send them to)."""
        return self.link is None

    @property
    def manager(self) -> EnvManager:
        """The in-process manager of the store (refused in a container kernel, whose store is
        on the host)."""
        if self._manager is None:
            self._manager = get_manager()
        return self._manager

    # -- what changes the registry: the server's to do when there is one ------------------------
    def build(
        self,
        env: Environment,
        *,
        force: bool = False,
        on_event: EventSink | None = None,
        cancel: CancelToken | None = None,
    ) -> BuildResult:
        """Build ``env`` (in the server when this kernel has one); ``cancel`` stops it, there
        too."""
        if self.link is not None:
            return RemoteBuilds(self.link).build(env, force=force, on_event=on_event, cancel=cancel)
        problem = container_kernel_problem()
        if problem is not None:
            raise EnvsError(problem)
        return self.manager.build(env, force=force, on_event=on_event, cancel=cancel)

    def build_named(
        self, name: str, *, force: bool = False, on_event: EventSink | None = None
    ) -> BuildResult:
        """Build a registered or curated environment by name."""
        return self.build(self.manager.spec_named(name), force=force, on_event=on_event)

    def restore(
        self,
        record: Carried,
        *,
        name: str | None = None,
        re_resolve: bool = False,
        on_event: EventSink | None = None,
    ) -> BuildResult:
        """Build a notebook's carried environment (in the server when this kernel has one)."""
        if self.link is not None:
            return RemoteBuilds(self.link).restore(
                record, name=name, re_resolve=re_resolve, on_event=on_event
            )
        problem = container_kernel_problem()
        if problem is not None:
            raise EnvsError(problem)
        return self.manager.restore(record, name=name, re_resolve=re_resolve, on_event=on_event)

    def restore_plan(
        self, record: Carried, *, name: str | None = None, re_resolve: bool = False
    ) -> RestorePlan:
        """What :meth:`restore` would do (read from the store)."""
        return self.manager.restore_plan(record, name=name, re_resolve=re_resolve)

    def remove(self, name: str, version: int | None = None) -> builtins.list[VersionRecord]:
        """Unregister ``name`` (or one version); the versions removed."""
        if self.link is None:
            return self.manager.remove(name, version)
        records = [r for r in self.manager.versions(name) if version in (None, r.version)]
        query = f"?version={version}" if version is not None else ""
        self.link.request("DELETE", f"environments/{urllib.parse.quote(name)}{query}")
        return records

    def push(
        self,
        name: str,
        version: int | None = None,
        *,
        registry: str | None = None,
        on_event: EventSink | None = None,
    ) -> PushRecord:
        """Push a Docker version's image (in the server when this kernel has one)."""
        if self.link is None:
            return self.manager.push(name, version, registry=registry, on_event=on_event)
        body: dict[str, Any] = {"version": version, "registry": registry}
        done = self.link.request("POST", f"environments/{urllib.parse.quote(name)}/push", body)
        # From the answer, not the store: a container kernel has no store to read.
        return PushRecord(
            name=str(done["name"]),
            version=int(done["version"]),
            registry=str(done["registry"]),
            reference=str(done["reference"]),
            digest=str(done["digest"]),
            pushed=time.time(),
        )

    def pushes(self, name: str, version: int | None = None) -> builtins.list[PushRecord]:
        """Where versions of ``name`` were pushed (read from the store)."""
        return self.manager.pushes(name, version)

    def gc(self, *, remove: bool = True) -> builtins.list[Garbage]:
        """Docker leftovers (see :meth:`EnvManager.gc`)."""
        return self.manager.gc(remove=remove)

    # -- reads: the same store in both cases ---------------------------------------------------
    def generation(self) -> int | None:
        """A number that changes whenever the registry changes, in any process (see
        :meth:`Workspace.generation`)."""
        return self.manager.ws.generation()

    def where(self, name: str | None = None) -> builtins.list[Placement]:
        """Where each environment's kernel can run (read from the store)."""
        return self.manager.where(name)

    def k8s_pod(
        self,
        name: str,
        version: int | None = None,
        *,
        image: str | None = None,
        settings: K8sSettings | None = None,
    ) -> dict[str, Any]:
        """The checked Kubernetes pod of a Docker environment's kernel."""
        return self.manager.k8s_pod(name, version, image=image, settings=settings)

    def builds(self, name: str) -> builtins.list[BuildRecord]:
        """Every build attempt of ``name``, oldest first (running and failed ones included)."""
        return self.manager.builds(name)

    def disk_usage(self, record: VersionRecord) -> int | None:
        """Bytes a version takes on disk (see :meth:`EnvManager.disk_usage`)."""
        return self.manager.disk_usage(record)

    def page(self, query: EnvQuery | None = None) -> Page:
        """Registered environments matching ``query`` (read from the store)."""
        return self.manager.page(query)

    def names(self) -> builtins.list[str]:
        """Registered environment names."""
        return self.manager.names()

    def record(self, name: str, version: int | None = None) -> VersionRecord:
        """The catalogue record of a version."""
        return self.manager.record(name, version)

    def get(self, name: str, version: int | None = None) -> Environment:
        """A registered environment."""
        return self.manager.get(name, version)

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        """Every version of ``name``."""
        return self.manager.versions(name)

    def export(self, name: str, version: int | None = None, fmt: str = "lock") -> str:
        """A version as text (see :meth:`EnvManager.export`)."""
        return self.manager.export(name, version, fmt)

    def log_path(self, name: str) -> Path:
        """The log of the latest build of ``name``."""
        return self.manager.log_path(name)


def connect() -> EnvsClient:
    """The client for this process: through the server that started this kernel, if any."""
    return EnvsClient(ServerLink.from_environment())
