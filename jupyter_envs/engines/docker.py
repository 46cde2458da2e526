"""The one low-level Docker module: the engine client and the names of everything we label.

Every Docker user in the package (the image builder, the ``Container`` API, the kernel
provisioner and launcher, the orphan reaper, ``jupyter envs gc``) gets its client from
:func:`connect` and reads or writes labels by the names below, so an image built here and a
container started there agree on what they are called. The docker SDK is imported only when a
client is made: ``import jupyter_envs`` must not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import BackendUnavailableError

__all__ = [
    "LABEL_ENV",
    "LABEL_KERNEL_ID",
    "LABEL_PYTHON",
    "LABEL_ROLE",
    "LABEL_RUNTIME_DIR",
    "LABEL_SERVER_HOST",
    "LABEL_SERVER_PID",
    "LABEL_SERVER_START",
    "LABEL_SPEC_HASH",
    "LABEL_VERSION",
    "connect",
    "one_line",
    "probe",
]

# -- image labels (written by the Docker builder) ----------------------------------------------
LABEL_ENV = "jupyter-envs.env"
LABEL_VERSION = "jupyter-envs.version"
LABEL_SPEC_HASH = "jupyter-envs.spec-hash"
#: The interpreter a kernel in the image must run (the container launcher reads it).
LABEL_PYTHON = "jupyter-envs.python"
#: Marks the throwaway stages of a build (credentials only ever live there).
LABEL_ROLE = "jupyter-envs.role"

# -- container labels (on every kernel container; the reaper finds orphans by them) ------------
LABEL_KERNEL_ID = "jupyter-envs.kernel-id"
LABEL_SERVER_PID = "jupyter-envs.server-pid"
#: Start time (clock ticks since boot) of the server process: a recycled pid is not "alive".
LABEL_SERVER_START = "jupyter-envs.server-start"
#: Host name of the server: a shared or remote engine must not reap another host's kernels.
LABEL_SERVER_HOST = "jupyter-envs.server-host"
#: The host directory holding the container's connection file copy and HOME (removed with it).
LABEL_RUNTIME_DIR = "jupyter-envs.runtime-dir"

#: The engine answers a ping in milliseconds; a hung socket must not hang a request.
PING_TIMEOUT = 10


def one_line(exc: BaseException) -> str:
    """An exception as one short line (SDK errors carry whole HTTP responses)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def probe(
    timeout: int = PING_TIMEOUT, environ: Mapping[str, str] | None = None
) -> tuple[str | None, Any]:
    """``(None, client)`` for the engine the environment names (``DOCKER_HOST``…), pinged;
    ``(reason, None)`` when the SDK is missing or the engine does not answer."""
    try:
        import docker
    except ImportError:
        return (
            "the Python 'docker' package (docker SDK >= 7) is not installed: pip install docker",
            None,
        )
    env = dict(os.environ if environ is None else environ)
    try:
        client = docker.from_env(environment=env, timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests errors, socket errors alike
        where = env.get("DOCKER_HOST") or "the default socket"
        return (
            f"the Docker engine at {where} is not reachable ({one_line(exc)}); start it "
            "(dockerd) or set DOCKER_HOST",
            None,
        )
    return None, client


def connect(
    timeout: int | None = 60,
    *,
    environ: Mapping[str, str] | None = None,
    purpose: str = "",
) -> Any:
    """A client for the engine, pinged. ``timeout=None`` lifts the read timeout once connected
    (image builds stream for minutes). Raises :class:`BackendUnavailableError` with the reason,
    prefixed with what it was needed ``purpose`` for."""
    reason, client = probe(PING_TIMEOUT if timeout is None else timeout, environ)
    if client is None:
        prefix = f"cannot reach the Docker engine {purpose}: " if purpose else ""
        raise BackendUnavailableError("docker", prefix + (reason or "unknown reason"))
    if timeout is None:
        client.api.timeout = None
    return client
