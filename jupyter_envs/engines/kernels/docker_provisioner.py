"""``DockerKernelProvisioner``: jupyter_client runs a Docker environment's kernel in a container.

Selected by ``metadata.kernel_provisioner.provisioner_name = "jupyter-envs-docker"`` in
kernel.json (see :func:`~jupyter_envs.engines.kernels.docker_kernelspec_fields`); its ``config``
becomes
this class's traits. The KernelManager still owns the connection file and the ports: this class
picks five free ports on 127.0.0.1, has the KernelManager write the connection file, and then
runs the container as :func:`.launcher.start_kernel_container` describes.

Every Docker SDK call is blocking, so each runs in :func:`asyncio.to_thread`: a Jupyter server's
event loop never waits on the engine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo, LocalPortCache
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Dict, Float, Integer, List, Unicode

from . import KernelLaunchError
from .containers import (
    PORT_NAMES,
    ContainerSettings,
    connect,
    container_log_tail,
    container_state,
    remove_container,
    signal_container,
    start_kernel_container,
)

__all__ = ["DockerKernelProvisioner"]

_LOOPBACK = "127.0.0.1"
# Exit status reported for a container that vanished under us (e.g. ``docker rm -f``): as if
# killed, so the restarter treats it as a dead kernel.
_GONE = -int(signal.SIGKILL)


class DockerKernelProvisioner(KernelProvisionerBase):
    """Runs a kernel in a container of the environment's image, on the local Docker engine."""

    image = Unicode(help="The environment's image (jupyter-envs/<name>:<hash12>).").tag(config=True)
    env = Unicode("", help="The environment's name (container label).").tag(config=True)
    version = Integer(0, help="The environment version.").tag(config=True)
    spec_hash = Unicode("", help="The spec hash (container label).").tag(config=True)
    cpu = Float(None, allow_none=True, help="CPU limit, in CPUs.").tag(config=True)
    memory = Unicode(None, allow_none=True, help="Memory limit, e.g. 4g.").tag(config=True)
    gpu = Integer(None, allow_none=True, help="GPUs to request (-1: all).").tag(config=True)
    secrets = List(Unicode(), help="Names of secrets, read at launch.").tag(config=True)
    env_vars = Dict(value_trait=Unicode(), help="Environment variables.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: Any = None
        self._container_id: str | None = None
        self._runtime_dir: Path | None = None
        self._cwd: str | None = None
        self._exit_code: int | None = None
        # Set when we asked the kernel to stop: its exit is then expected, not worth a warning.
        self._stopping = False
        self._reported = False
        self._ports_cached = False

    # -- settings and client --------------------------------------------------------------
    def _settings(self) -> ContainerSettings:
        if not self.image:
            raise KernelLaunchError(
                f"the kernelspec of {self.env or 'this kernel'} names no image in "
                "metadata.kernel_provisioner.config"
            )
        return ContainerSettings(
            image=self.image,
            env_name=self.env,
            spec_hash=self.spec_hash,
            cpu=self.cpu,
            memory=self.memory,
            gpu=self.gpu,
            secrets=tuple(self.secrets),
            env_vars=dict(self.env_vars),
        )  # the traits are ContainerSettings.config(), plus "version"

    async def _docker(self) -> Any:
        if self._client is None:
            self._client = await asyncio.to_thread(connect)
        return self._client

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        """True while a container exists for this kernel."""
        return self._container_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Pick five free ports on 127.0.0.1 and have the KernelManager write the connection file.

        Ports are kept across restarts (the KernelManager's clients stay connected to them);
        the previous container is removed by then, so they are free again.
        """
        km = self.parent
        if km is None:
            raise KernelLaunchError("the Docker kernel provisioner needs a KernelManager parent")
        kwargs.pop("transport_encryption", None)
        extra_arguments = kwargs.pop("extra_arguments", [])
        if km.transport != "tcp":
            raise KernelLaunchError("container kernels need the tcp transport")
        if km.ip != _LOOPBACK:
            # Ports are published on the loopback only: the manager must connect there.
            km.ip = _LOOPBACK
        cache = LocalPortCache.instance()
        for name in PORT_NAMES:
            if not getattr(km, name):
                setattr(km, name, cache.find_available_port(_LOOPBACK))
                self._ports_cached = True
        session = (kwargs.get("env") or {}).get("JPY_SESSION_NAME", "")
        km.write_connection_file(jupyter_session=session)
        self.connection_info = km.get_connection_info()
        self._stopping = False
        self._reported = False
        self._exit_code = None
        # The host-side command (the launcher) is not run; it is formatted for compatibility.
        cmd = km.format_kernel_cmd(extra_arguments=extra_arguments)
        return await super().pre_launch(cmd=cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Create and start the container; return the connection info (host side)."""
        settings = self._settings()
        client = await self._docker()
        environ = dict(kwargs.get("env") or os.environ)
        self._cwd = os.path.abspath(kwargs.get("cwd") or os.getcwd())
        container = await asyncio.to_thread(
            start_kernel_container,
            client,
            settings,
            connection_info=self.connection_info,
            kernel_id=str(self.kernel_id),
            cwd=self._cwd,
            environ=environ,
        )
        self._container_id = container.id
        self._runtime_dir = container.runtime_dir
        self.log.info(
            "Kernel %s runs in container %s (image %s)", self.kernel_id, container.name, self.image
        )
        return self.connection_info

    async def poll(self) -> int | None:
        """None while the container runs, else its exit status."""
        if self._container_id is None:
            return self._exit_code if self._exit_code is not None else 0
        exists, code = await asyncio.to_thread(
            container_state, await self._docker(), self._container_id
        )
        if not exists:
            return _GONE
        if code and not self._stopping and not self._reported:
            # First sight of a kernel that died on its own (the restarter's poll usually): say
            # why while the container, and so its output, still exists.
            self._reported = True
            tail = await asyncio.to_thread(
                container_log_tail, await self._docker(), self._container_id
            )
            self.log.warning(
                "Kernel %s: its container exited with status %s. Last output:\n%s",
                self.kernel_id,
                code,
                tail or "(none)",
            )
        return code

    async def wait(self) -> int | None:
        """Wait until the kernel has exited (its container, or its service's task), then remove
        what it ran in; return its exit status."""
        if not self.has_process:
            return self._exit_code if self._exit_code is not None else 0
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.1)
        self._exit_code = code
        await self._remove()
        return code

    async def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel (through the container's init).

        Interrupts normally travel as messages (``interrupt_mode: message``); SIGINT sent here
        still reaches the kernel, for clients that signal.
        """
        if self._container_id is None:
            return
        if signum == 0:
            return  # a liveness probe; poll() answers that
        await asyncio.to_thread(signal_container, await self._docker(), self._container_id, signum)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel (the container stops with it)."""
        self._stopping = True
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel, letting it clean up."""
        self._stopping = True
        await self.send_signal(signal.SIGTERM)

    async def shutdown_requested(self, restart: bool = False) -> None:
        """Note that the kernel was asked to stop: its exit is expected."""
        self._stopping = True

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container and its private directory; release the ports unless restarting.

        On a restart the container is gone (and its published ports released) before the next
        launch reuses the same ports.
        """
        await self._remove()
        if restart:
            return
        if self._ports_cached:
            cache = LocalPortCache.instance()
            for name in PORT_NAMES:
                port = self.connection_info.get(name)
                if isinstance(port, int):
                    cache.return_port(port)
            self._ports_cached = False
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    async def _remove(self) -> None:
        cid, rdir = self._container_id, self._runtime_dir
        if cid is None and rdir is None:
            return
        self._container_id = None
        self._runtime_dir = None
        if cid is None:
            if rdir is not None:
                await asyncio.to_thread(shutil.rmtree, rdir, True)
            return
        await asyncio.to_thread(remove_container, await self._docker(), cid, rdir)

    # -- persistence and paths ------------------------------------------------------------
    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        """A container start takes longer than a process start: allow for it."""
        return recommended + 10.0

    def resolve_path(self, path: str) -> str | None:
        """Resolve ``path`` against the kernel's directory (mounted at the same path)."""
        resolved = Path(path).expanduser()
        if not resolved.is_absolute() and self._cwd:
            resolved = (Path(self._cwd) / resolved).resolve()
        return resolved.as_posix() if resolved.exists() else None

    async def get_provisioner_info(self) -> dict[str, Any]:
        """What a restarted server needs to take this kernel's container back."""
        info: dict[str, Any] = await super().get_provisioner_info()
        info.update(
            {
                "container_id": self._container_id,
                "runtime_dir": str(self._runtime_dir) if self._runtime_dir else None,
                "cwd": self._cwd,
                "image": self.image,
            }
        )
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """The inverse of :meth:`get_provisioner_info`."""
        await super().load_provisioner_info(provisioner_info)
        self._container_id = provisioner_info.get("container_id")
        rdir = provisioner_info.get("runtime_dir")
        self._runtime_dir = Path(rdir) if rdir else None
        self._cwd = provisioner_info.get("cwd")
        self.image = provisioner_info.get("image") or self.image
