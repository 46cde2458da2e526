"""Run a kernel in a container: what the provisioner and the foreground launcher share.

:func:`start_kernel_container` is what both the kernel provisioner and the command line use, so a
kernel started by JupyterLab and one started by VS Code run in identical containers:

- the host's connection file (ip 127.0.0.1) is copied with ip ``0.0.0.0`` into a private
  per-kernel directory mounted at ``/run/jupyter-envs``; the five ports are published on
  127.0.0.1 only, at the same numbers;
- the kernel's working directory is bind-mounted at the same absolute path and is the container's
  workdir, so notebook-relative paths mean the same thing on both sides;
- the process runs as the host uid:gid (files it writes belong to the user) with HOME inside the
  private directory;
- the environment is an allowlist plus the environment's ``env_vars``; secret *values* travel in
  a file that a shell shim sources and deletes before starting the kernel, so they appear in no
  kernel.json, image, container config (``docker inspect``) or log;
- under a Jupyter server with the jupyter_envs extension, the server's API socket
  (``JUPYTER_ENVS_API_SOCKET``) is mounted at ``/run/jupyter-envs-api.sock`` and the kernel gets
  an ``http+unix://`` ``JUPYTER_ENVS_API_URL`` and, through the secrets file, the scoped token:
  ``%%env`` in a container kernel builds and switches through the server;
  ``JUPYTER_ENVS_CONTAINER`` tells jupyter_envs in the kernel that it runs in a container;
- ``docker-init`` is PID 1: it forwards signals and reaps the kernel's child processes;
- labels (kernel id, server pid, env, spec hash) let the reaper remove orphans.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import KernelLaunchError
from .. import docker as _docker
from ..docker import (
    LABEL_ENV,
    LABEL_KERNEL_ID,
    LABEL_PYTHON,
    LABEL_RUNTIME_DIR,
    LABEL_SERVER_HOST,
    LABEL_SERVER_PID,
    LABEL_SERVER_START,
    LABEL_SPEC_HASH,
)
from .environ import (
    API_SOCKET_VAR,
    API_TOKEN_VAR,
    API_URL_VAR,
    CONTAINER_VAR,
    unix_socket_url,
)
from .settings import SECRETS_DIR_VAR, ContainerSettings, parse_memory

__all__ = [
    "CONTAINER_DIR",
    "PORT_NAMES",
    "ContainerSettings",
    "KernelContainer",
    "connect",
    "container_env",
    "container_log_tail",
    "container_state",
    "inside_connection",
    "kernel_labels",
    "process_start_ticks",
    "read_secrets",
    "runtime_root",
    "secrets_text",
    "start_kernel_container",
]

#: Where the private per-kernel directory appears inside the container.
CONTAINER_DIR = "/run/jupyter-envs"
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
_DEFAULT_PYTHON = "python3"
_SECRETS_FILE = "secrets.env"
# Names passed through from the launching environment; everything else stays on the host.
_PASS_NAMES = frozenset({"LANG", "LANGUAGE", "TZ", "TERM", "COLORTERM", "NO_COLOR"})
_PASS_PREFIXES = ("LC_", "JPY_")
# JPY_PARENT_PID is the host pid of the server: in the container ipykernel would see its parent
# (docker-init) differ from it and exit at once. JPY_INTERRUPT_EVENT is a Windows handle.
_NEVER_PASS = frozenset({"JPY_PARENT_PID", "JPY_INTERRUPT_EVENT"})
# Sources the secrets file (values stay out of the container's config), deletes it so the values
# live only in the kernel's environment, then becomes the kernel (docker-init's only child).
_SHIM = (
    f's="{CONTAINER_DIR}/{_SECRETS_FILE}"\n'
    'if [ -f "$s" ]; then set -a; . "$s" || exit 78; set +a; rm -f "$s"; fi\n'
    'exec "$@"\n'
)
_API_TIMEOUT = 60
# Where the server's API socket appears in the container.
CONTAINER_API_SOCKET = "/run/jupyter-envs-api.sock"


def _server_link(environ: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(host socket path, URL for the kernel, token) when the launching server has an API
    socket; None otherwise (the kernel then refuses to build, saying why)."""
    sock = environ.get(API_SOCKET_VAR, "")
    url = environ.get(API_URL_VAR, "")
    token = environ.get(API_TOKEN_VAR, "")
    if not (sock and url and token) or not os.path.exists(sock):
        return None
    return sock, unix_socket_url(CONTAINER_API_SOCKET, url), token


@dataclass
class KernelContainer:
    """A started kernel container and the host directory it owns."""

    id: str
    name: str
    runtime_dir: Path
    kernel_id: str


def connect(environ: Mapping[str, str] | None = None) -> Any:
    """A Docker client for the engine the environment names (``DOCKER_HOST``…).

    Raises :class:`BackendUnavailableError` with the reason when the engine cannot be reached.
    """
    return _docker.connect(_API_TIMEOUT, environ=environ, purpose="to start the kernel container")


def runtime_root() -> Path:
    """The host directory under which every kernel container gets its private directory."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / "jupyter-envs-kernels"


def kernel_labels(settings: ContainerSettings, kernel_id: str, server_pid: int) -> dict[str, str]:
    """The labels of what a kernel runs in (container, service, secrets): kernel id, the
    launching server (pid, start time, host: the reaper's test of "orphan"), env, spec hash."""
    return {
        LABEL_KERNEL_ID: kernel_id,
        LABEL_SERVER_PID: str(server_pid),
        LABEL_SERVER_START: process_start_ticks(server_pid),
        LABEL_SERVER_HOST: socket.gethostname(),
        LABEL_ENV: settings.env_name,
        LABEL_SPEC_HASH: settings.spec_hash,
    }


def process_start_ticks(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot (Linux), or "" when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def read_secrets(names: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the secrets ``names``: from ``environ``, else ``$JUPYTER_ENVS_SECRETS_DIR``.

    Raises :class:`KernelLaunchError` naming every missing secret (never a value).
    """
    values: dict[str, str] = {}
    missing: list[str] = []
    secrets_dir = environ.get(SECRETS_DIR_VAR, "")
    for name in names:
        if name in environ:
            values[name] = environ[name]
            continue
        path = Path(secrets_dir) / name if secrets_dir else None
        if path is not None and path.is_file():
            # Secret files conventionally end with a newline that is not part of the value.
            values[name] = path.read_text().removesuffix("\n")
        else:
            missing.append(name)
    if missing:
        where = f" or a file in {secrets_dir}" if secrets_dir else ""
        raise KernelLaunchError(
            f"the kernel needs the secret(s) {', '.join(missing)}: set them as environment "
            f"variables of the Jupyter server (or of the launching process){where} "
            f"(or put files named after them in ${SECRETS_DIR_VAR})."
        )
    return values


def container_env(
    settings: ContainerSettings, environ: Mapping[str, str], home: str
) -> dict[str, str]:
    """The kernel's environment in a container: the allowlist of ``environ``, the
    environment's variables, ``HOME`` and the user names (no secret values)."""
    env = {
        k: v
        for k, v in environ.items()
        if k not in _NEVER_PASS and (k in _PASS_NAMES or k.startswith(_PASS_PREFIXES))
    }
    env.update(settings.env_vars)
    # Tells jupyter_envs in the kernel that it runs in a container (its magics refuse to build).
    env[CONTAINER_VAR] = settings.env_name or "unknown"
    user = environ.get("USER") or environ.get("LOGNAME") or _user_name()
    # No passwd entry exists for the host uid in the image: getpass.getuser() reads these.
    env.update({"HOME": home, "USER": user, "LOGNAME": user})
    return env


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def secrets_text(secrets: Mapping[str, str]) -> str:
    """Secret values as the shell assignments the kernel's shim sources."""
    return "".join(f"{k}={_shell_quote(v)}\n" for k, v in secrets.items())


def inside_connection(connection_info: Mapping[str, Any]) -> dict[str, Any]:
    """The connection file the kernel reads in its container: the host's, listening on all of
    the container's interfaces (the engine decides what is published where)."""
    inside = {**connection_info, "ip": "0.0.0.0"}  # noqa: S104 - see the docstring
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in inside.items()}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _image_python(client: Any, image: str, env: str) -> str:
    import docker.errors

    try:
        attrs = client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        which = f" of environment '{env}'" if env else ""
        raise KernelLaunchError(
            f"the kernel image '{image}'{which} does not exist on the Docker engine "
            "(it was removed or never built here): rebuild the environment."
        ) from None
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return str(labels.get(LABEL_PYTHON) or _DEFAULT_PYTHON)


def _check_gpu_runtime(client: Any) -> None:
    runtimes = client.info().get("Runtimes") or {}
    if "nvidia" not in runtimes:
        raise KernelLaunchError(
            "this environment asks for a GPU but the Docker engine has no GPU runtime "
            f"(runtimes: {', '.join(sorted(runtimes)) or 'none'}): install the NVIDIA "
            "Container Toolkit on the host, or rebuild the environment without gpu."
        )


def start_kernel_container(
    client: Any,
    settings: ContainerSettings,
    *,
    connection_info: Mapping[str, Any],
    kernel_id: str,
    cwd: str,
    environ: Mapping[str, str],
    server_pid: int | None = None,
) -> KernelContainer:
    """Create and start the kernel container for one launch; blocking (run it in a thread).

    ``connection_info`` is the host's (ip 127.0.0.1, five ports, key). ``environ`` is the
    launching environment: the allowlist and the secret values come from it. Any failure
    removes whatever was made and raises an :class:`EnvsError` that says why.
    """
    import docker.errors
    from docker.types import DeviceRequest

    if connection_info.get("transport", "tcp") != "tcp":
        raise KernelLaunchError("container kernels need the tcp transport")
    cwd = os.path.abspath(cwd)
    if cwd == "/" or not os.path.isdir(cwd):
        raise KernelLaunchError(f"cannot use '{cwd}' as the kernel's directory in a container")
    secrets = read_secrets(settings.secrets, environ)
    link = _server_link(environ)
    if link is not None:
        # Like a secret: in the kernel's environment only, never in the container's config.
        secrets[API_TOKEN_VAR] = link[2]
    python = _image_python(client, settings.image, settings.env_name)
    if settings.gpu is not None:
        _check_gpu_runtime(client)
    pid = os.getpid() if server_pid is None else server_pid

    root = runtime_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The pid in the name lets the reaper clear directories of servers that died.
    rdir = Path(tempfile.mkdtemp(prefix=f"{pid}-{kernel_id}-", dir=root))
    try:
        conn_name = f"kernel-{kernel_id}.json"  # ipykernel derives the kernel id from this name
        # Published on 127.0.0.1 only (port_bindings below).
        _write_private(rdir / conn_name, json.dumps(inside_connection(connection_info), indent=1))
        if secrets:
            _write_private(rdir / _SECRETS_FILE, secrets_text(secrets))
        (rdir / "home").mkdir(mode=0o700)

        ports = [int(connection_info[name]) for name in PORT_NAMES]
        uid, gid = os.getuid(), os.getgid()
        binds = {
            cwd: {"bind": cwd, "mode": "rw"},
            str(rdir): {"bind": CONTAINER_DIR, "mode": "rw"},
        }
        environment = container_env(settings, environ, f"{CONTAINER_DIR}/home")
        if link is not None:
            binds[link[0]] = {"bind": CONTAINER_API_SOCKET, "mode": "rw"}
            environment[API_URL_VAR] = link[1]
        host_config = client.api.create_host_config(
            binds=binds,
            port_bindings={port: ("127.0.0.1", port) for port in ports},
            init=True,
            group_add=[str(g) for g in os.getgroups() if g != gid] or None,
            security_opt=["no-new-privileges"],
            nano_cpus=int(settings.cpu * 1e9) if settings.cpu is not None else None,
            mem_limit=parse_memory(settings.memory) if settings.memory is not None else None,
            device_requests=(
                [DeviceRequest(count=settings.gpu, capabilities=[["gpu"]])]
                if settings.gpu is not None
                else None
            ),
        )
        labels = {**kernel_labels(settings, kernel_id, pid), LABEL_RUNTIME_DIR: str(rdir)}
        command = ["/bin/sh", "-c", _SHIM, "jupyter-envs-kernel", python]
        command += ["-m", "ipykernel_launcher", "-f", f"{CONTAINER_DIR}/{conn_name}"]
        name = f"jenv-kernel-{kernel_id[:12]}-{uuid.uuid4().hex[:6]}"
        try:
            created = client.api.create_container(
                settings.image,
                command=command,
                name=name,
                user=f"{uid}:{gid}",
                environment=environment,
                working_dir=cwd,
                labels=labels,
                ports=ports,
                host_config=host_config,
            )
        except docker.errors.APIError as exc:
            raise KernelLaunchError(
                f"cannot create the kernel container from '{settings.image}': "
                f"{_docker.one_line(exc)}"
            ) from None
        cid = str(created["Id"])
        try:
            client.api.start(cid)
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(cid, force=True)
            raise KernelLaunchError(
                f"cannot start the kernel container from '{settings.image}': "
                f"{_docker.one_line(exc)}"
            ) from None
    except BaseException:
        shutil.rmtree(rdir, ignore_errors=True)
        raise
    return KernelContainer(id=cid, name=name, runtime_dir=rdir, kernel_id=kernel_id)


def container_state(client: Any, container_id: str) -> tuple[bool, int | None]:
    """(exists, exit code or None while it runs) of a container; blocking."""
    import docker.errors

    try:
        state = client.api.inspect_container(container_id)["State"]
    except docker.errors.NotFound:
        return False, None
    if state.get("Running") or state.get("Status") in ("created", "restarting"):
        return True, None
    return True, int(state.get("ExitCode", 0))


def signal_container(client: Any, container_id: str, signum: int) -> None:
    """Send ``signum`` to the container's init (it forwards to the kernel); blocking.

    A container that is gone or no longer running is not an error: the signal is moot.
    """
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.api.kill(container_id, signal=int(signum))


def remove_container(client: Any, container_id: str, runtime_dir: Path | None) -> None:
    """Remove the container (killing it if needed) and its private directory; blocking.

    When this returns the engine has released the container's published ports.
    """
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        # 409 "removal already in progress": wait for the engine to finish it.
        if getattr(exc, "status_code", None) != 409:
            raise
        with contextlib.suppress(docker.errors.APIError):
            client.api.wait(container_id, condition="removed", timeout=_API_TIMEOUT)
    if runtime_dir is not None:
        shutil.rmtree(runtime_dir, ignore_errors=True)


def container_log_tail(client: Any, container_id: str, lines: int = 20) -> str:
    """The last ``lines`` of the container's output (for a kernel that died on its own)."""
    import docker.errors

    try:
        raw = client.api.logs(container_id, tail=lines)
    except docker.errors.APIError:
        return ""
    return bytes(raw).decode(errors="replace").rstrip()


# -- command line ------------------------------------------------------------------------------
