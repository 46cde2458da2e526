"""The façade's data: what a build did, what gc found, and the settings it is handed."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engines.builders.dockerfile import default_base_image
from ..engines.kernels.kernelspec import display_name
from ..engines.registry import default_registry

__all__ = ["BuildResult", "Garbage", "Settings"]


@dataclass(frozen=True)
class BuildResult:
    """What :meth:`EnvManager.build` did."""

    name: str
    version: int
    spec_hash: str
    cache_hit: bool
    duration: float
    kernel_name: str
    log_path: str | None
    artifact: str
    backend: str
    python_version: str = ""
    #: ``registry/name:tag@sha256:…`` when the build pushed the image (else None).
    pushed: str | None = None

    @property
    def display_name(self) -> str:
        """The kernel's name as people see it in the kernel picker."""
        return display_name(self.name, self.version, self.python_version)

    def summary(self) -> str:
        """One line for people: env, version, cache hit or build time, kernel name."""
        how = "cache hit" if self.cache_hit else f"built in {self.duration:.1f} s"
        line = f"{self.name} v{self.version} ({how}) — kernel: {self.kernel_name}"
        return f"{line}; pushed {self.pushed}" if self.pushed else line

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class Garbage:
    """One Docker leftover :meth:`EnvManager.gc` found (and removed, unless listing)."""

    kind: str  # "container" or "image"
    name: str
    detail: str


@dataclass(frozen=True)
class Settings:
    """What an administrator configures, passed in (the server passes its traitlets).

    ``default_base_image`` is what Docker specs without a base image build on; it becomes part
    of the spec (and so of its hash) before the build, so changing it builds anew instead of
    reusing images made on the old base. Default: ``$JUPYTER_ENVS_DEFAULT_BASE_IMAGE``, else
    ``python:3.12-slim``. ``kernel_runtime`` names the runtime every kernelspec uses (default:
    the first runtime that accepts what the build made).
    """

    default_base_image: str = field(default_factory=default_base_image)
    kernel_runtime: str | None = None
    #: Where Docker environments that name no registry are pushed after a build (None: they
    #: are not). Default: ``$JUPYTER_ENVS_REGISTRY``.
    registry: str | None = field(default_factory=default_registry)
