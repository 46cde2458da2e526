"""``SwarmKernelProvisioner``: jupyter_client runs a kernel as a Docker Swarm service.

Selected by ``provisioner_name = "jupyter-envs-swarm"`` in the ``-swarm`` kernelspec a push
writes (:func:`jupyter_envs.facade.push.push`); its config names the image as pushed
(``registry/name:tag@sha256:…``). It is the container provisioner with the container swapped for
a service (:mod:`.swarm`): same ports chosen here, same connection file, environment allowlist,
secrets by name, resources and labels; what differs is where the kernel runs and how it is
reached (the node's address) and stopped (the service is removed).

Why not gateway_provisioners' ``DockerSwarmProvisioner``: it needs its bootstrap and launcher in
every image and a response address the kernel calls back, reachable from the service's network
(Enterprise Gateway runs inside the swarm for that); it copies the server's whole environment
into the service spec, where ``docker service inspect`` shows it; it has no resources, secrets,
or orphan reaper. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from traitlets import Bool, Float, Unicode

from . import KernelLaunchError
from .docker_provisioner import DockerKernelProvisioner
from .swarm import (
    KernelService,
    remove_service,
    service_state,
    start_kernel_service,
    wait_running,
)

__all__ = ["SWARM_PROVISIONER_NAME", "SwarmKernelProvisioner"]

#: The entry point name (group ``jupyter_client.kernel_provisioners``) of this provisioner.
SWARM_PROVISIONER_NAME = "jupyter-envs-swarm"
# As the container provisioner reports a container that vanished: as if killed.
_GONE = -int(signal.SIGKILL)


class SwarmKernelProvisioner(DockerKernelProvisioner):
    """Runs a kernel as a one-task Swarm service of the environment's pushed image."""

    python = Unicode("python3", help="The kernel's interpreter in the image.").tag(config=True)
    mount_cwd = Bool(
        True,
        help="Bind-mount the notebook's directory at the same path (the node must have it).",
    ).tag(config=True)
    launch_timeout = Float(
        300.0, help="Seconds the task may take to run, pulling the image included."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._service: KernelService | None = None

    @property
    def has_process(self) -> bool:
        """True while a service exists for this kernel."""
        return self._service is not None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Create the secrets and the service, wait until its task runs, and return the
        connection info with the address of the node it runs on."""
        settings = self._settings()
        self._check_pinned()
        client = await self._docker()
        environ = dict(kwargs.get("env") or os.environ)
        self._cwd = os.path.abspath(kwargs.get("cwd") or os.getcwd())
        service = await asyncio.to_thread(
            start_kernel_service,
            client,
            settings,
            python=self.python,
            connection_info=self.connection_info,
            kernel_id=str(self.kernel_id),
            cwd=self._cwd if self._mounts_cwd() and self._cwd != "/" else None,
            environ=environ,
        )
        self._service = service
        try:
            address = await asyncio.to_thread(
                wait_running,
                client,
                service,
                timeout=self.launch_timeout,
                on_state=lambda state: self.log.debug(
                    "Kernel %s: service %s is %s", self.kernel_id, service.name, state
                ),
            )
        except BaseException:
            await self._remove()
            raise
        if address != self.connection_info.get("ip"):
            # A task on another node: the KernelManager reconnects to that node's address.
            self.connection_info = {**self.connection_info, "ip": address}
            if self.parent is not None:
                self.parent.ip = address
        self.log.info(
            "Kernel %s runs as Swarm service %s (image %s) at %s",
            self.kernel_id,
            service.name,
            self.image,
            address,
        )
        return self.connection_info

    async def poll(self) -> int | None:
        """None while the service's task runs, else its exit status."""
        if self._service is None:
            return self._exit_code if self._exit_code is not None else 0
        exists, code, _cid = await asyncio.to_thread(
            service_state, await self._docker(), self._service.id
        )
        if not exists:
            return _GONE
        if code and not self._stopping and not self._reported:
            self._reported = True
            self.log.warning(
                "Kernel %s: its Swarm service %s ended with status %s "
                "(docker service logs %s shows its output)",
                self.kernel_id,
                self._service.name,
                code,
                self._service.name,
            )
        return code

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel when its task runs on this node; elsewhere SIGTERM/SIGKILL remove
        the service (the engine has no way to signal a remote task), others are moot.

        Interrupts travel as messages (``interrupt_mode: message``)."""
        if self._service is None or signum == 0:
            return
        client = await self._docker()
        _exists, _code, cid = await asyncio.to_thread(service_state, client, self._service.id)
        if cid:
            import docker.errors

            try:
                await asyncio.to_thread(client.api.kill, cid, int(signum))
                return
            except docker.errors.APIError:
                pass  # gone or stopping: handled below for the stopping signals
        if signum in (signal.SIGTERM, signal.SIGKILL):
            await self._remove()

    async def _remove(self) -> None:
        service, self._service = self._service, None
        if service is None:
            return
        await asyncio.to_thread(remove_service, await self._docker(), service)

    def _mounts_cwd(self) -> bool:
        """Whether the kernel sees the notebook's directory: the kernelspec's ``mount_cwd``,
        unless ``JUPYTER_ENVS_SWARM_MOUNT_CWD=0`` turns it off for this server."""
        return self.mount_cwd and os.environ.get("JUPYTER_ENVS_SWARM_MOUNT_CWD", "1") != "0"

    def resolve_path(self, path: str) -> str | None:
        """Paths resolve against the notebook's directory only when it is mounted."""
        return super().resolve_path(path) if self._mounts_cwd() else None

    async def get_provisioner_info(self) -> dict[str, Any]:
        """What a restarted server needs to take this kernel's service back."""
        info = await super().get_provisioner_info()
        if self._service is not None:
            info.update(
                {
                    "service_id": self._service.id,
                    "service_name": self._service.name,
                    "secret_ids": list(self._service.secret_ids),
                }
            )
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """The inverse of :meth:`get_provisioner_info`."""
        await super().load_provisioner_info(provisioner_info)
        if provisioner_info.get("service_id"):
            self._service = KernelService(
                id=str(provisioner_info["service_id"]),
                name=str(provisioner_info.get("service_name") or ""),
                secret_ids=[str(s) for s in provisioner_info.get("secret_ids") or []],
            )

    def _check_pinned(self) -> None:
        if "@sha256:" not in self.image:
            raise KernelLaunchError(
                f"the Swarm kernelspec of {self.env or 'this kernel'} must name the pushed image "
                f"by digest (got '{self.image}'): push the environment again"
            )


if __name__ == "__main__":  # the kernelspec's argv: run by clients that ignore provisioners
    raise SystemExit(
        "this kernelspec runs its kernel as a Docker Swarm service through the "
        f"'{SWARM_PROVISIONER_NAME}' kernel provisioner: use a client that supports kernel "
        "provisioners (jupyter_client >= 7: JupyterLab, Notebook 7, nbclient)"
    )
