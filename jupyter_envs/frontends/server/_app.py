"""The jupyter_server extension: settings, the manager and build queue, the REST routes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop
from traitlets import Bool, Float, Integer, TraitError, Unicode, default, validate

from ..._version import __version__
from ...engines.builders import get_builder
from ...engines.kernels.environ import API_SOCKET_VAR, API_URL_VAR
from ...engines.store import (
    KERNELS_DIR_VAR,
    STORE_VAR,
    Workspace,
    default_kernels_dir,
    default_root,
)
from ...errors import EnvsError
from ...facade.manager import EnvManager, Settings
from ...spec._fields import check_registry
from ...spec._limits import SpecLimits
from ._builds import BuildQueue
from ._handlers import default_handlers
from ._listing import ListingCache
from ._switch import PreparedKernels, ScopedToken, link_environment
from ._unixsocket import UnixSocketAPI

__all__ = ["JupyterEnvsApp"]


class JupyterEnvsApp(ExtensionApp):
    """Builds environments inside the Jupyter server and serves them under ``/jupyter-envs/api``.

    Enabled by ``jupyter-config/jupyter_server_config.d/jupyter_envs.json``; configured as
    ``c.JupyterEnvsApp.<trait>`` in ``jupyter_server_config.py``.
    """

    name = "jupyter_envs"
    description = "Build software environments and register them as kernels."
    version = __version__
    # Only an API: there is no page to open when launched on its own.
    extension_url = "/jupyter-envs/api/environments"
    load_other_extensions = True

    store_root = Unicode(
        help=(
            "Directory of the environment store (catalogue, environments, logs). Default: "
            "$JUPYTER_ENVS_STORE, else <jupyter data dir>/jupyter_envs, the store the magics and "
            "the command line use too."
        )
    ).tag(config=True)

    kernels_dir = Unicode(
        help=(
            "Where kernelspecs of built environments are written. Default: "
            "$JUPYTER_ENVS_KERNELS_DIR, else <jupyter data dir>/kernels, where this server finds "
            "kernels."
        )
    ).tag(config=True)

    max_concurrent_builds = Integer(
        2,
        help=(
            "How many builds run at the same time; more wait in a queue. Builds of the same "
            "environment always run one after the other."
        ),
    ).tag(config=True)

    default_backend = Unicode(
        None,
        allow_none=True,
        help=(
            "Builder for specs that name none (e.g. 'fake' for demos and frontend work). "
            "Default: chosen from the spec by the builders' detect()."
        ),
    ).tag(config=True)

    default_base_image = Unicode(
        None,
        allow_none=True,
        help=(
            "Base image of Docker environments whose spec names none. It becomes part of the "
            "spec (and its hash) before the build, so changing it builds anew. Default: "
            "$JUPYTER_ENVS_DEFAULT_BASE_IMAGE, else a public Python image (python:3.12-slim)."
        ),
    ).tag(config=True)

    registry = Unicode(
        None,
        allow_none=True,
        help=(
            "Registry (host[:port][/path]) that Docker environments naming none are pushed to "
            "after each build, tagged <registry>/<name>:v<N>-<hash>; the push's digest is "
            "recorded and a '... on Swarm' kernelspec written. Credentials: the server user's "
            "Docker config (docker login), or $JUPYTER_ENVS_REGISTRY_USERNAME/_PASSWORD. "
            "Default: $JUPYTER_ENVS_REGISTRY, else none (images stay on this engine)."
        ),
    ).tag(config=True)

    @validate("registry")
    def _check_registry(self, proposal: Any) -> str | None:
        try:
            return check_registry(proposal["value"], "JupyterEnvsApp.registry")
        except EnvsError as exc:
            raise TraitError(str(exc)) from None

    kernel_runtime = Unicode(
        None,
        allow_none=True,
        help=(
            "Where environment kernels run: the name of a kernel runtime ('local', 'docker', or "
            "one a plug-in adds in the jupyter_envs.runtimes entry-point group). Default: the "
            "first runtime that can run what the build made (an image runs in a container, a "
            "venv as a local process)."
        ),
    ).tag(config=True)

    prepare_kernels = Bool(
        True,
        help=(
            "Start the kernel a notebook switches to while the cell that asked for it still runs "
            "(POST switch/prepare), and switch only once it answers: the switch after the cell is "
            "then quick, and a kernel that cannot start never replaces a working one. False: the "
            "frontend starts the new kernel after the cell."
        ),
    ).tag(config=True)

    kernel_ready_timeout = Float(
        60.0,
        help="Seconds a prepared kernel has to answer before the switch is given up.",
    ).tag(config=True)

    prepared_kernel_timeout = Float(
        120.0,
        help=(
            "Seconds a prepared kernel waits for its notebook to switch to it (the frontend or "
            "POST switch) before it is shut down."
        ),
    ).tag(config=True)

    max_request_bytes = Integer(
        2 * 1024 * 1024,
        help=(
            "The largest request body accepted, in bytes; larger ones are answered 413 before "
            "they are parsed."
        ),
    ).tag(config=True)

    max_spec_bytes = Integer(
        SpecLimits.max_spec_bytes,
        help=(
            "The largest spec accepted, in bytes (its text, or a spec object as JSON); larger "
            "ones are answered 413 and nothing is built."
        ),
    ).tag(config=True)

    max_spec_lines = Integer(
        SpecLimits.max_spec_lines,
        help="The most lines a spec's text may have; more: 413, nothing built.",
    ).tag(config=True)

    max_requirements = Integer(
        SpecLimits.max_requirements,
        help=(
            "The most requirements a spec may list (pip, conda and apt packages together); "
            "more: 413, nothing built."
        ),
    ).tag(config=True)

    @default("store_root")
    def _default_store_root(self) -> str:
        return str(default_root())

    @default("kernels_dir")
    def _default_kernels_dir(self) -> str:
        return str(default_kernels_dir())

    @validate("max_concurrent_builds")
    def _check_max_concurrent_builds(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"max_concurrent_builds must be at least 1, got {value}")
        return value

    @validate("max_request_bytes", "max_spec_bytes", "max_spec_lines", "max_requirements")
    def _check_limits(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, got {value}")
        return value

    @validate("kernel_ready_timeout", "prepared_kernel_timeout")
    def _check_timeouts(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"{proposal['trait'].name} must be a positive number of seconds")
        return value

    @validate("default_backend")
    def _check_default_backend(self, proposal: dict[str, Any]) -> str | None:
        value: str | None = proposal["value"]
        if value:
            try:
                get_builder(value)  # an unknown name fails now, naming the known ones
            except EnvsError as exc:
                raise TraitError(str(exc)) from None
        return value or None

    def initialize_settings(self) -> None:
        """Open the store and create the build queue (called once, at server start)."""
        self.scoped_token = ScopedToken()
        self.unix_api: UnixSocketAPI | None = None  # set on the first loop turn
        self.prepared: PreparedKernels | None = None
        if self.prepare_kernels and self.serverapp is not None:
            self.prepared = PreparedKernels(
                self.serverapp,
                ready_timeout=self.kernel_ready_timeout,
                adopt_timeout=self.prepared_kernel_timeout,
            )
        settings = Settings(kernel_runtime=self.kernel_runtime)
        if self.default_base_image:
            settings = dataclasses.replace(settings, default_base_image=self.default_base_image)
        if self.registry:
            settings = dataclasses.replace(settings, registry=self.registry)
        self.manager = EnvManager(Workspace(self.store_root, self.kernels_dir), settings)
        self.listings = ListingCache(self.manager)
        self.limits = SpecLimits(
            max_spec_bytes=self.max_spec_bytes,
            max_spec_lines=self.max_spec_lines,
            max_requirements=self.max_requirements,
        )
        self.queue = BuildQueue(
            self.manager, max_concurrent=self.max_concurrent_builds, log=self.log
        )
        self.log.info(
            "jupyter-envs %s: store %s, up to %d concurrent builds",
            __version__,
            self.manager.ws.root,
            self.max_concurrent_builds,
        )
        if self.manager.ws.read_only:
            self.log.warning(
                "jupyter-envs: the store %s is read-only (%s): environments can be listed and "
                "shown; building and removing them are refused (503)",
                self.manager.ws.root,
                self.manager.ws.read_only,
            )
        # Only now that everything above worked (a store that cannot be opened at all stops
        # the extension from loading): nothing half-started, no socket without an API.
        # The port is final only once the server listens, after extensions load: hand the link
        # to kernels from the first turn of the event loop, before any kernel can start.
        IOLoop.current().add_callback(self._export_link)
        # Containers of kernels whose server died (killed hard) are removed at start.
        IOLoop.current().add_callback(self._reap_orphans)

    async def _reap_orphans(self) -> None:
        from ...engines.kernels.reaper import reap_orphans

        try:
            removed = await asyncio.to_thread(reap_orphans)
        except EnvsError as exc:  # no engine here: nothing to reap
            self.log.debug("jupyter-envs: orphan reaper skipped: %s", exc)
            return
        if removed:
            self.log.info("jupyter-envs: removed %d orphaned kernel container(s)", len(removed))

    def _export_link(self) -> None:
        """Hand kernels what they need to reach this server: the one place it writes its own
        environment.

        Every kernel the server starts, whatever its kernelspec (the host's ``python3`` too:
        that is where ``%%env`` usually runs), inherits the server's environment, and
        jupyter_server offers no other hook into the environment of kernelspecs it does not own.
        So the kernel link (API URL, scoped token, Unix socket for container kernels) and the
        store the kernel side reads go there, once, and nothing else does: settings that change
        what is built travel in the manager's :class:`~jupyter_envs.facade.manager.Settings`.
        """
        if self.serverapp is None:
            return
        exported = {
            STORE_VAR: str(self.manager.ws.root),
            KERNELS_DIR_VAR: str(self.manager.ws.kernels_dir),
            **link_environment(self.serverapp, self.scoped_token),
        }
        socket_path = self._serve_unix_socket()
        if socket_path is not None:
            exported[API_SOCKET_VAR] = socket_path
        os.environ.update(exported)
        if API_URL_VAR in exported:
            self.log.info(
                "jupyter-envs: kernels reach the API at %s (scoped token)", exported[API_URL_VAR]
            )

    def _serve_unix_socket(self) -> str | None:
        """The API on a Unix socket too, for container kernels (the launcher mounts it)."""
        assert self.serverapp is not None
        try:
            self.unix_api = UnixSocketAPI(self.serverapp, default_handlers(self))
        except OSError as exc:
            self.log.warning(
                "jupyter-envs: no Unix socket for container kernels (%s): %%env in a container "
                "kernel will not reach this server",
                exc,
            )
            return None
        self.log.info("jupyter-envs: container kernels reach the API at %s", self.unix_api.path)
        return str(self.unix_api.path)

    def initialize_handlers(self) -> None:
        """Add the REST routes."""
        self.handlers.extend(default_handlers(self))

    async def stop_extension(self) -> None:
        """Cancel running builds when the server stops, so no build outlives it."""
        queue: BuildQueue | None = getattr(self, "queue", None)
        if queue is not None:
            await queue.stop()
        unix_api: UnixSocketAPI | None = getattr(self, "unix_api", None)
        if unix_api is not None:
            unix_api.close()
