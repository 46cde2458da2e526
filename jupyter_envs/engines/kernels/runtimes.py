"""Where an environment's kernel runs: the second plug-in axis, beside the builders.

How an environment is *built* (uv venv, conda prefix, Docker image) and how its kernel *runs*
(a local process, a container on this engine; a cluster engine later) are separate choices. A
builder says what it made as a :class:`KernelTarget` (an interpreter on this machine, or an
image and the interpreter inside it); the façade asks the ordered runtime chain for the first
runtime that accepts that target (or the one a setting names) and writes the kernelspec fields
it returns. Third-party runtimes register in the ``jupyter_envs.runtimes`` entry-point group:
one named like a built-in replaces it, a new one is tried first (a cluster runtime configured
on purpose should win over the local engine).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import BackendUnavailableError
from .._plugins import merge_plugins

if TYPE_CHECKING:
    from ...spec import Environment

__all__ = [
    "ENTRY_POINT_GROUP",
    "ContainerRuntime",
    "KernelRuntime",
    "KernelTarget",
    "LocalProcessRuntime",
    "available_runtimes",
    "choose_runtime",
]

ENTRY_POINT_GROUP = "jupyter_envs.runtimes"


@dataclass(frozen=True)
class KernelTarget:
    """What a build made, as far as running a kernel is concerned.

    ``python`` is the interpreter that runs ipykernel: a path on this machine when ``image`` is
    None, else inside the image (a name on its PATH or an absolute path). ``magics`` loads the
    ``jupyter_envs`` extension at kernel start, so ``%%env`` works in the new kernel at once.
    """

    python: str
    image: str | None = None
    magics: bool = True
    #: Variables the kernel needs to run in the artifact (a conda prefix's activation: its
    #: ``bin`` first on PATH, CONDA_PREFIX); ``${VAR}`` is jupyter_client's substitution.
    env: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class KernelRequest:
    """What a runtime gets to write a kernelspec for one built version."""

    target: KernelTarget
    env: Environment
    version: int
    spec_hash: str


class KernelRuntime(ABC):
    """One place a kernel can run. Subclasses set :attr:`name`."""

    #: Name used in settings and the kernelspec's ``metadata.jupyter_envs.runtime``.
    name: ClassVar[str]

    @abstractmethod
    def accepts(self, target: KernelTarget) -> bool:
        """Called by the chain in order; True if this runtime can run kernels of ``target``."""

    @abstractmethod
    def kernelspec_fields(self, request: KernelRequest) -> dict[str, Any]:
        """The kernelspec fields for one version: ``argv`` (required), and optionally
        ``interrupt_mode`` and ``metadata`` (merged into the kernelspec's metadata).

        Called by the façade after a build, before the kernelspec is written; a problem with
        the spec's kernel settings raises :class:`~jupyter_envs.errors.SpecError`.
        """


def ipykernel_argv(python: str, *, magics: bool = True) -> list[str]:
    """``python -m ipykernel_launcher [--ext=jupyter_envs] -f {connection_file}``.

    ``--ext`` loads ``jupyter_envs`` in every kernel of a built env, so a notebook that just
    switched can build and switch again without ``%load_ext`` (a failing load only warns).
    """
    ext = ["--ext=jupyter_envs"] if magics else []
    return [python, "-m", "ipykernel_launcher", *ext, "-f", "{connection_file}"]


class LocalProcessRuntime(KernelRuntime):
    """The kernel is a process on this machine, run by the environment's interpreter."""

    name = "local"

    def accepts(self, target: KernelTarget) -> bool:
        """Any interpreter on this machine (no image)."""
        return target.image is None

    def kernelspec_fields(self, request: KernelRequest) -> dict[str, Any]:
        """A plain argv; the server signals the process to interrupt it."""
        return {"argv": ipykernel_argv(request.target.python, magics=request.target.magics)}


class ContainerRuntime(KernelRuntime):
    """The kernel runs in a container on this machine's Docker engine, started by the
    ``jupyter-envs-docker`` provisioner (or, for clients that ignore provisioners, by the
    launcher in ``argv``)."""

    name = "docker"

    def accepts(self, target: KernelTarget) -> bool:
        """Any image."""
        return target.image is not None

    def kernelspec_fields(self, request: KernelRequest) -> dict[str, Any]:
        """Resources, env vars and secret *names* travel in the kernelspec; secret values are
        read each time a kernel starts."""
        from . import docker_kernelspec_fields

        env, target = request.env, request.target
        assert target.image is not None
        resources = env.resources
        return docker_kernelspec_fields(
            target.image,
            env_name=env.name,
            version=request.version,
            spec_hash=request.spec_hash,
            cpu=resources.cpu,
            memory=resources.memory,
            gpu=resources.gpu or None,
            secrets=list(env.secrets),
            env_vars=env.kernel_env_vars,
        )


@lru_cache(maxsize=1)
def available_runtimes() -> tuple[KernelRuntime, ...]:
    """Every runtime in the order they are tried (plug-ins first, then the built-ins)."""
    chain: list[KernelRuntime] = [ContainerRuntime(), LocalProcessRuntime()]
    chain = merge_plugins(chain, ENTRY_POINT_GROUP, "kernel runtime", insert_at=0)
    return tuple(chain)


def choose_runtime(target: KernelTarget, name: str | None = None) -> KernelRuntime:
    """The runtime called ``name`` (it must accept ``target``), else the first that accepts it.

    An unknown name, or one that cannot run this target, fails naming the runtimes there are.
    """
    chain = available_runtimes()
    known = ", ".join(r.name for r in chain)
    what = f"image {target.image}" if target.image else f"interpreter {target.python}"
    if name:
        for runtime in chain:
            if runtime.name == name:
                if not runtime.accepts(target):
                    raise BackendUnavailableError(
                        name, f"the kernel runtime '{name}' cannot run a kernel of {what}"
                    )
                return runtime
        raise BackendUnavailableError(
            name, f"no kernel runtime of that name is installed (known: {known})"
        )
    for runtime in chain:
        if runtime.accepts(target):
            return runtime
    raise BackendUnavailableError("kernel", f"no kernel runtime runs {what} (known: {known})")
