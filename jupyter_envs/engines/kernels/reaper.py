"""Find and remove kernel containers (and Swarm kernel services) whose server died (SIGKILL,
crash, power loss).

A server that shuts down normally removes its kernels' containers. One that is killed cannot:
its containers keep running, holding ports and memory. Every kernel container carries the pid
(and the start time) of the process that launched it; :func:`reap_orphans` removes those whose
process no longer exists on this host. Call it when a server starts, or through :func:`gc`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..docker import (
    LABEL_ENV,
    LABEL_KERNEL_ID,
    LABEL_RUNTIME_DIR,
    LABEL_SERVER_HOST,
    LABEL_SERVER_PID,
    LABEL_SERVER_START,
)
from .containers import connect, process_start_ticks, remove_container, runtime_root

__all__ = ["DanglingContainer", "gc", "process_alive", "reap_orphans"]


@dataclass(frozen=True)
class DanglingContainer:
    """A kernel container whose launching process is gone."""

    id: str
    name: str
    kernel_id: str
    env_name: str
    server_pid: int
    status: str


def process_alive(pid: int, start_ticks: str = "") -> bool:
    """True when ``pid`` runs on this host (and, if given, started at ``start_ticks``).

    The start time guards against a recycled pid: a new process with the old number does not
    keep an orphan alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_ticks:
        current = process_start_ticks(pid)
        if current and current != start_ticks:
            return False
    return True


def _dead_server(labels: dict[str, str], host: str) -> int | None:
    """The pid of the server that launched a labelled kernel when that server is gone from
    this host; None when it lives, or ran on another host (its pids mean nothing here)."""
    if labels.get(LABEL_SERVER_HOST, host) != host:
        return None
    try:
        pid = int(labels.get(LABEL_SERVER_PID, ""))
    except ValueError:
        pid = 0
    return None if process_alive(pid, labels.get(LABEL_SERVER_START, "")) else pid


def _dangling(client: Any, wanted_labels: Sequence[str]) -> list[tuple[DanglingContainer, str]]:
    host = socket.gethostname()
    found: list[tuple[DanglingContainer, str]] = []
    wanted = [LABEL_KERNEL_ID, *wanted_labels]
    for attrs in client.api.containers(all=True, filters={"label": wanted}):
        labels = attrs.get("Labels") or {}
        pid = _dead_server(labels, host)
        if pid is None:
            continue
        names = attrs.get("Names") or [""]
        item = DanglingContainer(
            id=str(attrs["Id"]),
            name=str(names[0]).lstrip("/"),
            kernel_id=labels.get(LABEL_KERNEL_ID, ""),
            env_name=labels.get(LABEL_ENV, ""),
            server_pid=pid,
            status=str(attrs.get("State") or attrs.get("Status") or ""),
        )
        found.append((item, labels.get(LABEL_RUNTIME_DIR, "")))
    return found


def _dangling_services(client: Any, wanted_labels: Sequence[str]) -> list[DanglingContainer]:
    """Kernel services (Swarm) whose launching server is gone; none when the engine is not a
    Swarm manager."""
    import docker.errors

    from .swarm import swarm_state

    try:
        if swarm_state(client) != "active":
            return []
        services = client.api.services(filters={"label": [LABEL_KERNEL_ID, *wanted_labels]})
    except docker.errors.APIError:
        return []
    host = socket.gethostname()
    found = []
    for attrs in services:
        labels = (attrs.get("Spec") or {}).get("Labels") or {}
        pid = _dead_server(labels, host)
        if pid is None:
            continue
        found.append(
            DanglingContainer(
                id=str(attrs["ID"]),
                name=str((attrs.get("Spec") or {}).get("Name") or ""),
                kernel_id=labels.get(LABEL_KERNEL_ID, ""),
                env_name=labels.get(LABEL_ENV, ""),
                server_pid=pid,
                status="swarm service",
            )
        )
    return found


def _remove_service(client: Any, item: DanglingContainer) -> None:
    from .swarm import KernelService, remove_service

    secrets = client.api.secrets(filters={"label": f"{LABEL_KERNEL_ID}={item.kernel_id}"})
    remove_service(client, KernelService(item.id, item.name, [str(s["ID"]) for s in secrets]))


def _safe_runtime_dir(path: str) -> Path | None:
    # A label is data from the engine: only ever delete inside our own runtime root.
    if not path:
        return None
    candidate = Path(path)
    root = runtime_root()
    return candidate if candidate.parent == root else None


def _reap_runtime_dirs() -> None:
    root = runtime_root()
    if not root.is_dir():
        return
    for entry in root.iterdir():
        pid_text = entry.name.split("-", 1)[0]
        if pid_text.isdigit() and not process_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def reap_orphans(client: Any = None, *, labels: Sequence[str] = ()) -> list[str]:
    """Remove every orphaned kernel container; return their ids.

    An orphan carries the ``jupyter-envs.kernel-id`` label and its ``jupyter-envs.server-pid``
    process is not alive on this host. ``labels`` (``"key"`` or ``"key=value"``) narrows the
    search to containers that carry them all. Their private directories go too. Blocking: call
    it from a thread in an event loop.
    """
    own = client is None
    client = connect() if own else client
    removed: list[str] = []
    try:
        for item, rdir in _dangling(client, labels):
            remove_container(client, item.id, _safe_runtime_dir(rdir))
            removed.append(item.id)
        for service in _dangling_services(client, labels):
            _remove_service(client, service)
            removed.append(service.id)
        with contextlib.suppress(OSError):
            _reap_runtime_dirs()
    finally:
        if own:
            client.close()
    return removed


def gc(
    client: Any = None, *, remove: bool = False, labels: Sequence[str] = ()
) -> list[DanglingContainer]:
    """List the dangling kernel containers; with ``remove=True`` also remove them.

    ``labels`` narrows the search as in :func:`reap_orphans`.

    The helper behind ``jupyter envs gc``. Blocking.
    """
    own = client is None
    client = connect() if own else client
    try:
        found = _dangling(client, labels)
        services = _dangling_services(client, labels)
        if remove:
            for item, rdir in found:
                remove_container(client, item.id, _safe_runtime_dir(rdir))
            for service in services:
                _remove_service(client, service)
            with contextlib.suppress(OSError):
                _reap_runtime_dirs()
        return [item for item, _ in found] + services
    finally:
        if own:
            client.close()
