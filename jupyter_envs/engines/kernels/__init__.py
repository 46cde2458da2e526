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

import sys
from typing import Any

from ...errors import KernelLaunchError
from .settings import SECRETS_DIR_VAR, ContainerSettings, parse_memory, validate_settings

__all__ = [
    "PROVISIONER_NAME",
    "SECRETS_DIR_VAR",
    "KernelLaunchError",
    "docker_kernelspec_fields",
    "parse_memory",
    "validate_settings",
]

#: The entry point name (group ``jupyter_client.kernel_provisioners``) of the Docker provisioner.
PROVISIONER_NAME = "jupyter-envs-docker"


def docker_kernelspec_fields(
    image: str,
    *,
    env_name: str,
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
    settings = ContainerSettings(
        image=image,
        env_name=env_name,
        spec_hash=spec_hash,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        secrets=tuple(secrets),
        env_vars=env_vars,
    )
    argv = [sys.executable, "-m", "jupyter_envs.engines.kernels.launcher", *settings.flags()]
    argv += ["-f", "{connection_file}"]
    config = {**settings.config(), "version": version}
    return {
        "argv": argv,
        # The kernel interrupts itself on an interrupt_request: a host signal would reach only
        # the launcher (or nothing, under the provisioner), not the process in the container.
        "interrupt_mode": "message",
        "metadata": {
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": config}
        },
    }
