"""The façade: the only place that orchestrates spec → build → register → kernelspec.

Front-ends (magics, CLI, REST handlers, later the widget panel) translate I/O and call an
:class:`EnvManager` (kernel-side ones through :mod:`jupyter_envs.clients.envs`); nothing here
knows about IPython, tornado or ipywidgets. The data types live in ``_types.py`` and the verbs
that do not build in ``_manager_base.py``; this module re-exports the types.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO

from ..engines._procs import processes_running_from
from ..engines.builders import (
    Builder,
    BuildOutput,
    BuildRequest,
    CancelToken,
    choose_builder,
    get_builder,
)
from ..engines.builders.base import missing_directory
from ..engines.kernels.kernelspec import (
    kernel_name,
    kernelspec_exists,
    remove_kernelspec,
    swarm_kernel_name,
    write_kernelspec,
)
from ..engines.kernels.runtimes import KernelRequest, choose_runtime
from ..engines.runtime import ensure_runtime
from ..engines.store import PushRecord, VersionRecord, Workspace, default_root
from ..errors import (
    BackendUnavailableError,
    BuildCancelledError,
    BuildError,
    EnvsError,
    LockNotHonouredError,
    SpecError,
)
from ..events import Event, LogLine, Progress
from ..spec._carried import Carried
from ..spec._environment import Environment
from . import carry
from ._maintenance import record_env
from ._manager_base import ManagerBase
from ._types import BuildResult, Garbage, Settings
from .carry import RestorePlan
from .push import push_version

__all__ = ["BuildResult", "EnvManager", "Garbage", "Settings", "get_manager"]

EventSink = Callable[[Event], None]


class EnvManager(ManagerBase):
    """Builds and registers environments in one :class:`Workspace`."""

    def __init__(
        self, workspace: Workspace | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__(workspace)
        self.settings = settings if settings is not None else Settings()

    def resolve(self, env: Environment) -> Environment:
        """``env`` as it will be built: a Docker spec that names no base (no base image, image
        or Dockerfile) gets :attr:`Settings.default_base_image`; other specs come back as they
        are."""
        docker = env.docker
        if env.kind != "docker" or docker.base_image or docker.base_dockerfile or env.image:
            return env
        resolved = env.clone_with(base_image=self.settings.default_base_image)
        resolved.detected_format = env.detected_format
        return resolved

    # -- building ----------------------------------------------------------------------------
    def _hit(
        self, env: Environment, spec_hash: str, sink: EventSink | None = None
    ) -> VersionRecord | None:
        record = self.ws.find(env.name, spec_hash)
        if record is None or record.status != "ready" or not record.artifact:
            return None
        try:
            builder = get_builder(record.backend)
        except EnvsError:
            builder = None
        artifact = Path(record.artifact)
        problem = (
            builder.artifact_problem(artifact)
            if builder is not None
            else missing_directory(artifact)
        )
        if problem is not None:
            # Deleted behind our back: rebuild rather than hand out a kernel that cannot start.
            if sink is not None:
                sink(
                    LogLine(
                        f"{record.name} v{record.version} cannot be reused ({problem}); rebuilding"
                    )
                )
            return None
        if record.kernel_name and not kernelspec_exists(self.ws.kernels_dir, record.kernel_name):
            self._write_kernelspec(
                env, record.version, spec_hash, Path(record.artifact), record.python_version or ""
            )
        return record

    def _hit_result(self, record: VersionRecord, started: float) -> BuildResult:
        return BuildResult(
            name=record.name,
            version=record.version,
            spec_hash=record.spec_hash,
            cache_hit=True,
            duration=time.perf_counter() - started,
            kernel_name=record.kernel_name or "",
            log_path=record.log_path,
            artifact=record.artifact or "",
            backend=record.backend,
            python_version=record.python_version or "",
        )

    def builder_for(self, env: Environment) -> Builder:
        """The builder that would build ``env``; BackendUnavailableError (with the reason) when
        it cannot run on this machine."""
        builder = choose_builder(env)
        reason = builder.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(
                builder.name, f"{reason} (needed by environment '{env.name}')"
            )
        return builder

    def build(
        self,
        env: Environment,
        *,
        force: bool = False,
        on_event: EventSink | None = None,
        cancel: CancelToken | None = None,
        lock: str | None = None,
    ) -> BuildResult:
        """Build ``env`` (or reuse the registered version with the same spec hash).

        ``lock`` (the lock of the same spec, built elsewhere) installs exactly those versions
        instead of resolving the spec anew.

        An unchanged spec answers from the catalogue without starting any process. Otherwise the
        build runs under the per-name lock (a second process building the same spec waits, then
        reuses the result), streams events to ``on_event``, and registers the version only once
        its artifact is complete.
        """
        started = time.perf_counter()
        sink: EventSink = on_event or (lambda _event: None)
        env = self.resolve(env)
        spec_hash = env.spec_hash
        if not force and (record := self._hit(env, spec_hash, sink)) is not None:
            return self._pushed(env, self._hit_result(record, started), sink)
        builder = self.builder_for(env)
        if env.registry and builder.name != "docker":
            raise SpecError(
                f"only Docker environments have an image to push, and '{env.name}' builds with "
                f"the {builder.name} builder: give it a base image (base_image=...) or drop "
                "the registry",
                field="registry",
            )
        if lock is not None and not builder.honours_lock:
            raise SpecError(
                f"the {builder.name} builder cannot rebuild an environment from a carried lock "
                "yet: rebuild it from its spec (jupyter envs restore --re-resolve; versions may "
                "differ from the first machine's)",
                field="lock",
            )

        def waiting() -> None:
            sink(LogLine(f"Another build of '{env.name}' is running; waiting for it to finish"))

        with self.ws.build_lock(env.name, on_wait=waiting):
            if not force and (record := self._hit(env, spec_hash)) is not None:
                return self._hit_result(record, started)
            self.ws.mark_interrupted_builds(env.name)
            self._sweep(env.name)
            try:
                result = self._build_locked(
                    env, spec_hash, builder.name, sink, cancel or CancelToken(), started, lock
                )
            except BuildCancelledError:
                raise
            except BuildError as exc:
                if lock is None:
                    raise
                raise LockNotHonouredError(exc, carry.unhonoured(lock, exc)) from None
        return self._pushed(env, result, sink)

    def _pushed(self, env: Environment, result: BuildResult, sink: EventSink) -> BuildResult:
        """Push a Docker version to its registry (the spec's, else the default) unless it is
        there already; the result says where. A failed push raises :class:`RegistryError`:
        the version stays registered and usable here."""
        registry = env.registry or self.settings.registry
        if not registry or result.backend != "docker":
            return result
        done = [p for p in self.ws.pushes(result.name, result.version) if p.registry == registry]
        if done:
            return dataclasses.replace(result, pushed=done[0].pinned)
        pushed = self.push(result.name, result.version, registry=registry, on_event=sink)
        return dataclasses.replace(result, pushed=pushed.pinned)

    def push(
        self,
        name: str,
        version: int | None = None,
        *,
        registry: str | None = None,
        on_event: EventSink | None = None,
    ) -> PushRecord:
        """Push a Docker version's image (latest by default) to ``registry`` (else its spec's,
        else the default registry), record its digest, and write its Swarm kernelspec.

        Raises :class:`RegistryError` when the registry is unreachable, refuses the
        credentials or the push is cut off: nothing is recorded, the version stays usable.
        """
        with self.ws.build_lock(name):
            return push_version(
                self,
                name,
                version,
                registry=registry,
                default=self.settings.registry,
                on_event=on_event,
            )

    def _build_locked(
        self,
        env: Environment,
        spec_hash: str,
        backend: str,
        sink: EventSink,
        cancel: CancelToken,
        started: float,
        lock: str | None = None,
    ) -> BuildResult:
        builder = get_builder(backend)
        build_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        log_path = self.ws.start_build(build_id, env.name, spec_hash)
        staging = self.ws.env_dir(env.name) / f".staging-{build_id}"
        staging.parent.mkdir(parents=True, exist_ok=True)
        # Named before the build: the per-name lock is held, so no other build of this name can
        # take the version number, and builders that write their location into files need it.
        artifact = self.ws.env_dir(env.name) / (
            f"v{self.ws.next_version(env.name, spec_hash)}-{build_id[-8:]}"
        )
        request = BuildRequest(
            env=env,
            staging=staging,
            cancel=cancel,
            runtime_dir=ensure_runtime(self.ws.root),
            cache_dir=self.ws.root / "cache",
            lock=lock,
            target=artifact,
        )
        sink(Progress("start", 0.0, f"building '{env.name}' with the {backend} builder"))
        try:
            with open(log_path, "a", buffering=1) as log:
                output = yield_events(builder.build(request), sink, log)
                version = self.ws.next_version(env.name, spec_hash)
                if staging.exists():
                    staging.rename(artifact)
                else:
                    artifact.mkdir()
                duration = time.perf_counter() - started
                previous = self.ws.find(env.name, spec_hash)
                kernel = self._register_built(
                    env,
                    spec_hash,
                    backend,
                    artifact,
                    output.lock,
                    output.python_version,
                    duration,
                    log_path,
                )
                log.write(
                    f"Registered {env.name} v{version} as kernel {kernel} in {duration:.2f} s\n"
                )
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._drop_if_empty(env.name)
            self._fail(build_id, exc, log_path)
            if isinstance(exc, KeyboardInterrupt):
                raise BuildCancelledError(
                    "interrupted", env_name=env.name, log_path=str(log_path)
                ) from exc
            raise
        if previous is not None and previous.artifact and previous.artifact != str(artifact):
            # A forced rebuild replaced it: delete it, unless a kernel still runs from it (then a
            # later build of this name sweeps it once that kernel has stopped).
            users = processes_running_from(Path(previous.artifact))
            if users:
                pids = ", ".join(str(pid) for pid in users)
                sink(
                    LogLine(
                        f"The replaced build {previous.artifact} is kept while its kernel runs "
                        f"(pid {pids}); a later build of '{env.name}' removes it"
                    )
                )
            else:
                builder.remove(Path(previous.artifact))
        self.ws.finish_build(build_id, "succeeded", version=version)
        sink(Progress("done", 1.0, f"{env.name} v{version} is ready"))
        return BuildResult(
            name=env.name,
            version=version,
            spec_hash=spec_hash,
            cache_hit=False,
            duration=duration,
            kernel_name=kernel,
            log_path=str(log_path),
            artifact=str(artifact),
            backend=backend,
            python_version=output.python_version,
        )

    def _register_built(
        self,
        env: Environment,
        spec_hash: str,
        backend: str,
        artifact: Path,
        lock: str,
        python_version: str,
        duration: float,
        log_path: Path,
    ) -> str:
        try:
            with self.ws.transaction() as db:
                version = self.ws.upsert_version(
                    db,
                    name=env.name,
                    description=env.description,
                    spec_hash=spec_hash,
                    spec=env.to_dict(),
                    backend=backend,
                    status="ready",
                    artifact=str(artifact),
                    lock=lock,
                    python_version=python_version,
                    build_seconds=round(duration, 3),
                    log_path=str(log_path),
                )
                kernel = self._write_kernelspec(env, version, spec_hash, artifact, python_version)
                # A forced rebuild made another image: what was pushed of the old one is stale.
                db.execute("DELETE FROM pushes WHERE name=? AND version=?", (env.name, version))
                shutil.rmtree(self.ws.kernels_dir / swarm_kernel_name(kernel), ignore_errors=True)
                db.execute(
                    "UPDATE versions SET kernel_name=? WHERE name=? AND version=?",
                    (kernel, env.name, version),
                )
        except BaseException:
            shutil.rmtree(artifact, ignore_errors=True)
            raise
        return kernel

    def _write_kernelspec(
        self, env: Environment, version: int, spec_hash: str, artifact: Path, python_version: str
    ) -> str:
        builder = choose_builder(env)
        target = builder.kernel_target(artifact)
        runtime = choose_runtime(target, self.settings.kernel_runtime)
        fields = runtime.kernelspec_fields(KernelRequest(target, env, version, spec_hash))
        return write_kernelspec(
            self.ws.kernels_dir,
            env_name=env.name,
            version=version,
            spec_hash=spec_hash,
            backend=builder.name,
            argv=list(fields["argv"]),
            python_version=python_version,
            env_vars={**target.env, **env.kernel_env_vars},
            store_root=self.ws.root,
            description=env.description,
            interrupt_mode=str(fields.get("interrupt_mode", "signal")),
            extra_metadata=dict(fields.get("metadata") or {}),
            runtime=runtime.name,
        )

    def _fail(self, build_id: str, exc: BaseException, log_path: Path) -> None:
        cancelled = isinstance(exc, BuildCancelledError | KeyboardInterrupt)
        message = str(exc) or type(exc).__name__
        with open(log_path, "a") as log:
            log.write(f"\nBuild {'cancelled' if cancelled else 'failed'}: {message}\n")
        if isinstance(exc, BuildError) and exc.log_path is None:
            exc.log_path = str(log_path)
            exc.args = (exc._render(),)
        self.ws.finish_build(build_id, "cancelled" if cancelled else "failed", error=message[:2000])

    def _sweep(self, name: str) -> None:
        """Remove leftovers of killed builds: staging dirs and unregistered artifacts."""
        env_dir = self.ws.env_dir(name)
        if not env_dir.is_dir():
            return
        versions = self.ws.versions(name)
        known = {v.artifact for v in versions}
        for child in env_dir.iterdir():
            if str(child) in known:
                continue
            if not child.name.startswith(".") and processes_running_from(child):
                continue  # replaced by a forced rebuild, but a kernel still runs from it
            shutil.rmtree(child, ignore_errors=True)
        self._drop_if_empty(name)
        # A kernelspec written just before a kill, whose version never committed.
        registered = {v.kernel_name for v in versions}
        numbers = [v.version for v in versions]
        for number in range(1, max(numbers, default=0) + 2):
            candidate = kernel_name(name, number)
            if candidate not in registered:
                remove_kernelspec(self.ws.kernels_dir, candidate)

    def _drop_if_empty(self, name: str) -> None:
        """A name never registered keeps no folder: the first build's failure leaves none."""
        if not self.ws.versions(name):
            with contextlib.suppress(OSError):  # not empty, or already gone: leave it
                self.ws.env_dir(name).rmdir()

    # -- registry ----------------------------------------------------------------------------
    def register(self, env: Environment) -> Environment:
        """Record a spec without building it (a no-op if that spec is registered already)."""
        env = self.resolve(env)
        spec_hash = env.spec_hash
        with self.ws.build_lock(env.name):
            existing = self.ws.find(env.name, spec_hash)
            if existing is None:
                with self.ws.transaction() as db:
                    self.ws.upsert_version(
                        db,
                        name=env.name,
                        description=env.description,
                        spec_hash=spec_hash,
                        spec=env.to_dict(),
                        backend=env.backend,
                        status="registered",
                    )
                existing = self.ws.find(env.name, spec_hash)
        assert existing is not None
        return record_env(existing)

    def build_named(
        self, name: str, *, force: bool = False, on_event: EventSink | None = None
    ) -> BuildResult:
        """Build a registered environment, or a curated one, by name."""
        return self.build(self.spec_named(name), force=force, on_event=on_event)

    # -- notebooks that carry their environment -----------------------------------------------
    def restore_plan(
        self, record: Carried, *, name: str | None = None, re_resolve: bool = False
    ) -> RestorePlan:
        """What :meth:`restore` would build for a notebook's record, checked against this
        machine (see :func:`jupyter_envs.facade.carry.plan`)."""
        return carry.plan(self, record, name=name, re_resolve=re_resolve)

    def restore(
        self,
        record: Carried,
        *,
        name: str | None = None,
        re_resolve: bool = False,
        on_event: EventSink | None = None,
    ) -> BuildResult:
        """Build a notebook's carried environment: from its lock unless ``re_resolve``."""
        return carry.restore(self, record, name=name, re_resolve=re_resolve, on_event=on_event)


def yield_events(
    gen: Generator[Event, None, BuildOutput], sink: EventSink, log: IO[str]
) -> BuildOutput:
    """Drive a builder's generator: log lines go to the log file and the sink as they come."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            output: BuildOutput = stop.value
            return output
        if isinstance(event, LogLine):
            log.write(event.text + "\n")
        sink(event)


_managers: dict[str, EnvManager] = {}


def get_manager(ws: Workspace | None = None) -> EnvManager:
    """The manager for ``ws``; the default local workspace (cached per location) when None.

    Refused in a container kernel (see
    :func:`~jupyter_envs.engines.kernels.environ.container_kernel_problem`).
    """
    if ws is not None:
        return EnvManager(ws)
    from ..engines.kernels.environ import container_kernel_problem

    problem = container_kernel_problem(registry=True)
    if problem is not None:
        raise EnvsError(problem)
    key = str(default_root())
    manager = _managers.get(key)
    if manager is None:
        manager = _managers[key] = EnvManager(Workspace(key))
    return manager
