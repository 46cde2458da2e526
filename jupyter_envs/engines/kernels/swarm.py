"""Run a kernel as a Docker Swarm service: what :class:`.swarm_provisioner.SwarmKernelProvisioner`
does with the engine.

A kernel is one service of one task (restart condition ``none``: a kernel that dies stays dead,
as a local one does) on the environment's image *as pushed*, ``registry/name:tag@sha256:…``, so
whichever node runs it pulls exactly the version that was built:

- the connection file travels as a Swarm secret (it holds the key), copied by a small shim into
  a tmpfs at ``/run/jupyter-envs`` (ipykernel may rewrite it); the environment's secrets travel
  as a second Swarm secret that the shim sources. Values never appear in the service spec
  (``docker service inspect``), the image, a log or kernel.json; both secrets are removed with
  the service;
- the five ports are published in ``host`` mode on the node that runs the task (Swarm publishes
  a service's ports on all of the node's interfaces; every message is signed with the key only
  the server and the kernel hold). The server connects to that node's address (127.0.0.1 when
  it is this node);
- resources: ``cpu`` and ``memory`` become the task's limits, ``gpu`` a generic resource
  ``NVIDIA-GPU`` (nodes advertise it in their engine config; a task no node can satisfy is
  reported, not left pending);
- the kernel runs as the host user's uid:gid behind ``docker-init`` (signals reach it); the
  notebook's directory is bind-mounted at the same path when ``mount_cwd`` (the node must have
  that path: one node, or a shared file system), else the kernel starts in its tmpfs home;
- labels (kernel id, server pid/start/host, env) on the service and its secrets let the reaper
  remove the services of a server that died.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import KernelLaunchError, RegistryError
from .. import docker as _docker
from ..docker import LABEL_ENV
from ..registry import login_from_environ
from .containers import (
    PORT_NAMES,
    container_env,
    inside_connection,
    kernel_labels,
    read_secrets,
    secrets_text,
)
from .settings import ContainerSettings

__all__ = [
    "GPU_RESOURCE",
    "KernelService",
    "remove_service",
    "service_spec",
    "service_state",
    "start_kernel_service",
    "swarm_state",
    "wait_running",
]

#: The generic resource a GPU request becomes (what nodes advertise in ``node-generic-resources``).
GPU_RESOURCE = "NVIDIA-GPU"
HOME_DIR = "/run/jupyter-envs"
_SECRETS_DIR = "/run/secrets"
# The states a task never leaves.
_ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
# Copies the connection file out of the read-only secret (ipykernel may rewrite it), sources the
# secrets (values live only in the kernel's environment), then becomes the kernel.
_SHIM = (
    'mkdir -p "$HOME" || exit 78\n'
    'cp "$JENV_CONN_SECRET" "$JENV_CONN_FILE" || exit 78\n'
    'if [ -n "$JENV_ENV_SECRET" ]; then set -a; . "$JENV_ENV_SECRET" || exit 78; set +a; fi\n'
    "unset JENV_CONN_SECRET JENV_ENV_SECRET JENV_CONN_FILE\n"
    'exec "$@"\n'
)
# A task pending for this long with a scheduler message ("no suitable node") will not start.
_PENDING_GIVE_UP = 5.0


@dataclass
class KernelService:
    """A started kernel service: its id and name, and the secrets made for it."""

    id: str
    name: str
    secret_ids: list[str] = field(default_factory=list)


def swarm_state(client: Any) -> str:
    """The engine's swarm state: ``active`` when it may run services (a manager)…"""
    info = client.info().get("Swarm") or {}
    state = str(info.get("LocalNodeState") or "inactive")
    if state == "active" and not info.get("ControlAvailable"):
        return "worker"
    return state


def _require_manager(client: Any) -> None:
    state = swarm_state(client)
    if state == "active":
        return
    if state == "worker":
        raise KernelLaunchError(
            "this Docker engine is a Swarm worker: kernels are started through a manager "
            "(point DOCKER_HOST at a manager node)"
        )
    raise KernelLaunchError(
        "this Docker engine is not in Swarm mode (state: "
        f"{state}): run `docker swarm init` (or join a swarm as a manager), or use the "
        "environment's container kernel instead"
    )


def service_spec(
    settings: ContainerSettings,
    *,
    python: str,
    kernel_id: str,
    ports: list[int],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    conn_secret: tuple[str, str],
    env_secret: tuple[str, str] | None,
    cwd: str | None,
    uid: int,
    gid: int,
) -> dict[str, Any]:
    """The service's ``create_service`` arguments (docker SDK types), no engine call.

    ``conn_secret`` / ``env_secret`` are (id, name) of the Swarm secrets made for this launch.
    """
    from docker.types import (
        ContainerSpec,
        EndpointSpec,
        Mount,
        Resources,
        RestartPolicy,
        SecretReference,
        TaskTemplate,
    )

    if settings.gpu is not None and settings.gpu < 1:
        raise KernelLaunchError(
            "Swarm cannot give a task 'all' GPUs (gpu=-1): give the environment a GPU count"
        )
    conn_file = f"{HOME_DIR}/kernel-{kernel_id}.json"  # ipykernel takes the id from this name
    env = {
        **environment,
        "HOME": f"{HOME_DIR}/home",
        "JENV_CONN_SECRET": f"{_SECRETS_DIR}/connection.json",
        "JENV_CONN_FILE": conn_file,
        "JENV_ENV_SECRET": f"{_SECRETS_DIR}/kernel.env" if env_secret else "",
    }
    owner = {"uid": str(uid), "gid": str(gid), "mode": 0o400}
    secrets = [SecretReference(conn_secret[0], conn_secret[1], filename="connection.json", **owner)]
    if env_secret is not None:
        secrets.append(
            SecretReference(env_secret[0], env_secret[1], filename="kernel.env", **owner)
        )
    mounts = [Mount(HOME_DIR, None, type="tmpfs", tmpfs_mode=0o1777)]
    if cwd is not None:
        mounts.append(Mount(cwd, cwd, type="bind"))
    command = ["/bin/sh", "-c", _SHIM, "jupyter-envs-kernel", python]
    command += ["-m", "ipykernel_launcher", "-f", conn_file]
    container = ContainerSpec(
        settings.image,
        command,
        env=env,
        workdir=cwd or HOME_DIR,
        user=f"{uid}:{gid}",
        labels={LABEL_ENV: settings.env_name},
        mounts=mounts,
        secrets=secrets,
        init=True,
        stop_grace_period=5 * 10**9,
    )
    resources = Resources(
        cpu_limit=int(settings.cpu * 1e9) if settings.cpu is not None else None,
        mem_limit=_memory(settings.memory),
        generic_resources={GPU_RESOURCE: settings.gpu} if settings.gpu is not None else None,
    )
    template = TaskTemplate(
        container,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
    )
    return {
        "task_template": template,
        "name": f"jenv-kernel-{kernel_id[:12]}-{uuid.uuid4().hex[:6]}",
        "labels": dict(labels),
        "endpoint_spec": EndpointSpec(ports={p: (p, "tcp", "host") for p in ports}),
    }


def _memory(text: str | None) -> int | None:
    from .settings import parse_memory

    return parse_memory(text) if text is not None else None


def start_kernel_service(
    client: Any,
    settings: ContainerSettings,
    *,
    python: str,
    connection_info: Mapping[str, Any],
    kernel_id: str,
    cwd: str | None,
    environ: Mapping[str, str],
    server_pid: int | None = None,
) -> KernelService:
    """Create the secrets and the service of one kernel launch; blocking (run it in a thread).

    Any failure removes whatever was made and raises :class:`KernelLaunchError` saying why.
    """
    import docker.errors

    _require_manager(client)
    values = read_secrets(settings.secrets, environ)
    try:
        # The nodes pull with what the service's creation sends: the server's registry secret.
        login_from_environ(client, settings.image, environ)
    except RegistryError as exc:
        raise KernelLaunchError(f"cannot pull the kernel image: {exc}") from None
    pid = os.getpid() if server_pid is None else server_pid
    labels = kernel_labels(settings, kernel_id, pid)
    made = KernelService(id="", name="")
    stem = f"jenv-{kernel_id[:12]}-{uuid.uuid4().hex[:6]}"
    try:
        conn = json.dumps(inside_connection(connection_info), indent=1).encode()
        conn_secret = client.api.create_secret(f"{stem}-conn", conn, labels=labels)["ID"]
        made.secret_ids.append(str(conn_secret))
        env_secret = None
        if values:
            data = secrets_text(values).encode()
            env_secret = client.api.create_secret(f"{stem}-env", data, labels=labels)["ID"]
            made.secret_ids.append(str(env_secret))
        environment = container_env(settings, environ, f"{HOME_DIR}/home")
        spec = service_spec(
            settings,
            python=python,
            kernel_id=kernel_id,
            ports=[int(connection_info[name]) for name in PORT_NAMES],
            environment=environment,
            labels=labels,
            conn_secret=(str(conn_secret), f"{stem}-conn"),
            env_secret=(str(env_secret), f"{stem}-env") if env_secret else None,
            cwd=cwd,
            uid=os.getuid(),
            gid=os.getgid(),
        )
        created = client.api.create_service(**spec)
        made.id, made.name = str(created["ID"]), spec["name"]
    except docker.errors.APIError as exc:
        remove_service(client, made)
        raise KernelLaunchError(
            f"cannot create the kernel service from '{settings.image}': {_docker.one_line(exc)}"
        ) from None
    except BaseException:
        remove_service(client, made)
        raise
    return made


def _newest_task(client: Any, service_id: str) -> dict[str, Any] | None:
    tasks: list[dict[str, Any]] = client.api.tasks(filters={"service": service_id})
    if not tasks:
        return None
    return max(tasks, key=lambda t: str(t.get("CreatedAt") or ""))


def _node_address(client: Any, node_id: str) -> str:
    """Where the server reaches ports published on ``node_id``: 127.0.0.1 for this node."""
    local = (client.info().get("Swarm") or {}).get("NodeID")
    if node_id == local:
        return "127.0.0.1"
    addr = str(((client.api.inspect_node(node_id) or {}).get("Status") or {}).get("Addr") or "")
    if not addr or addr == "0.0.0.0":  # noqa: S104 - a node that did not report its address
        raise KernelLaunchError(f"the Swarm node {node_id} that runs the kernel has no address")
    return addr


def wait_running(
    client: Any,
    service: KernelService,
    *,
    timeout: float,
    on_state: Callable[[str], None] | None = None,
) -> str:
    """Wait until the service's task runs; return the address its ports are published on.

    Raises :class:`KernelLaunchError` with the task's own message when it fails, is rejected,
    cannot be scheduled (pending with a reason), or is not running after ``timeout`` seconds
    (pulling a large image counts: ``preparing``).
    """
    deadline = time.monotonic() + timeout
    pending_since: float | None = None
    last = ""
    while True:
        task = _newest_task(client, service.id)
        status = (task or {}).get("Status") or {}
        state = str(status.get("State") or "new")
        if state != last and on_state is not None:
            on_state(state)
        last = state
        err = str(status.get("Err") or status.get("Message") or "")
        if state == "running":
            return _node_address(client, str((task or {}).get("NodeID") or ""))
        if state in _ENDED:
            code = (status.get("ContainerStatus") or {}).get("ExitCode")
            why = f"{err} (exit status {code})" if code else err
            raise KernelLaunchError(
                f"the kernel service {service.name} {state} before it ran: {why or 'no reason'}"
            )
        if state == "pending" and status.get("Err"):
            pending_since = pending_since or time.monotonic()
            if time.monotonic() - pending_since > _PENDING_GIVE_UP:
                raise KernelLaunchError(
                    f"no Swarm node can run the kernel service {service.name}: {err} "
                    "(resources the environment asks for, cpu/memory/gpu, or placement)"
                )
        if time.monotonic() > deadline:
            raise KernelLaunchError(
                f"the kernel service {service.name} was not running after {timeout:.0f} s "
                f"(task state: {state}{': ' + err if err else ''})"
            )
        time.sleep(0.1)


def service_state(client: Any, service_id: str) -> tuple[bool, int | None, str]:
    """(exists, exit code or None while its task has not ended, node-local container id)."""
    import docker.errors

    try:
        task = _newest_task(client, service_id)
    except docker.errors.NotFound:
        return False, None, ""
    except docker.errors.APIError:
        return True, None, ""  # the manager is busy: ask again later
    if task is None:
        try:
            client.api.inspect_service(service_id)
        except docker.errors.NotFound:
            return False, None, ""
        return True, None, ""
    status = task.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    cid = str(container.get("ContainerID") or "")
    local = (client.info().get("Swarm") or {}).get("NodeID")
    cid = cid if task.get("NodeID") == local else ""
    if str(status.get("State")) in _ENDED:
        code = container.get("ExitCode")
        return True, int(code) if code is not None else 1, cid
    return True, None, cid


def remove_service(client: Any, service: KernelService, *, wait: float = 30.0) -> None:
    """Remove the service, wait until its task's container on this node is gone (its published
    ports free again), then remove its secrets; blocking. Gone already is fine."""
    import docker.errors

    if service.id:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_service(service.id)
        deadline = time.monotonic() + wait
        label = f"com.docker.swarm.service.id={service.id}"
        while time.monotonic() < deadline and client.api.containers(
            all=True, filters={"label": label}, quiet=True
        ):
            time.sleep(0.1)
    deadline = time.monotonic() + wait
    for secret in service.secret_ids:
        while True:
            try:
                client.api.remove_secret(secret)
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                # "in use by service": a task on another node is still shutting down.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
