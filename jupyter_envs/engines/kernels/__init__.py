"""Container kernels: the kernelspec of a Docker environment, and what runs it.

A Docker environment's kernelspec names the ``jupyter-envs-docker`` kernel provisioner
(:class:`~jupyter_envs.engines.kernels.docker_provisioner.DockerKernelProvisioner`) in
``metadata.kernel_provisioner``; its ``argv`` is the self-contained container launcher
(:mod:`.launcher`) for clients that ignore provisioners (VS Code). Both run the same container
the same way (:func:`.launcher.start_kernel_container`).

This module stays light (no Docker SDK, no jupyter_client): the builder and the manager import it
to write kernelspecs.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from ...errors import KernelLaunchError, SpecError

__all__ = [
    "PROVISIONER_NAME",
    "SECRETS_DIR_VAR",
    "KernelLaunchError",
    "docker_kernelspec_fields",
    "parse_memory",
]

#: The entry point name (group ``jupyter_client.kernel_provisioners``) of the Docker provisioner.
PROVISIONER_NAME = "jupyter-envs-docker"


#: A directory of secret files (``<dir>/<NAME>``), read when the server's environment lacks NAME.
SECRETS_DIR_VAR = "JUPYTER_ENVS_SECRETS_DIR"

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# Docker refuses a memory limit below 6 MiB; a kernel needs far more anyway.
_MIN_MEMORY = 6 * 1024**2


def parse_memory(text: str) -> int:
    """Bytes from a memory size such as ``512m``, ``4g``, ``4GiB`` or ``1073741824``.

    Units are binary (``k`` = 1024), as Docker reads them.
    """
    match = _MEMORY.match(text)
    if not match:
        raise SpecError(
            f"'{text}' is not a memory size (use e.g. 512m, 4g or 4GiB)", field="memory"
        )
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < _MIN_MEMORY:
        raise SpecError(f"memory '{text}' is below Docker's minimum of 6m", field="memory")
    return int(value)


def validate_settings(
    *,
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    secrets: list[str],
    env_vars: dict[str, str],
) -> None:
    """Raise :class:`SpecError` when a container setting cannot work."""
    if cpu is not None and not cpu > 0:
        raise SpecError(f"cpu must be a positive number of CPUs, not {cpu!r}", field="cpu")
    if memory is not None:
        parse_memory(memory)
    if gpu is not None and gpu != -1 and gpu < 1:
        raise SpecError(f"gpu must be a positive count (or -1 for all), not {gpu!r}", field="gpu")
    for name in [*secrets, *env_vars]:
        if not _VAR_NAME.match(name):
            field = "secrets" if name in secrets else "env_vars"
            raise SpecError(f"'{name}' is not a valid environment variable name", field=field)


def docker_kernelspec_fields(
    image: str,
    *,
    env: str,
    version: int,
    spec_hash: str,
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    secrets: list[str],
    env_vars: dict[str, str],
) -> dict[str, Any]:
    """The kernelspec fields (``argv``, ``interrupt_mode``, ``metadata``) of a Docker version.

    ``metadata.kernel_provisioner`` selects the ``jupyter-envs-docker`` provisioner with every
    container setting as its config. ``argv`` runs the same container through the foreground
    launcher, for clients that ignore provisioners. Secrets appear by *name* only: their values
    are read from the launching process's environment (or ``$JUPYTER_ENVS_SECRETS_DIR/<NAME>``)
    each time a kernel starts.
    """
    validate_settings(cpu=cpu, memory=memory, gpu=gpu, secrets=secrets, env_vars=env_vars)
    argv = [sys.executable, "-m", "jupyter_envs.engines.kernels.launcher", "--image", image]
    argv += ["--env", env, "--spec-hash", spec_hash]
    if cpu is not None:
        argv += ["--cpu", repr(float(cpu))]
    if memory is not None:
        argv += ["--memory", memory]
    if gpu is not None:
        argv += ["--gpu", str(gpu)]
    for name in secrets:
        argv += ["--secret", name]
    for key, value in sorted(env_vars.items()):
        argv += ["--env-var", f"{key}={value}"]
    argv += ["-f", "{connection_file}"]
    config: dict[str, Any] = {
        "image": image,
        "env": env,
        "version": version,
        "spec_hash": spec_hash,
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "secrets": list(secrets),
        "env_vars": dict(env_vars),
    }
    return {
        "argv": argv,
        # The kernel interrupts itself on an interrupt_request: a host signal would reach only
        # the launcher (or nothing, under the provisioner), not the process in the container.
        "interrupt_mode": "message",
        "metadata": {
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": config}
        },
    }
