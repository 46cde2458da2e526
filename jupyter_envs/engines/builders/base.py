"""The builder contract.

A builder turns an :class:`~jupyter_envs.Environment` into an artifact (a venv prefix, a conda
prefix, an image) and says how to start a kernel in it. Builders are plug-ins: the built-ins plus
any registered under the ``jupyter_envs.builders`` entry-point group, tried in order; the first
whose :meth:`Builder.detect` matches builds the spec.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...events import Event
from ..kernels.runtimes import KernelTarget
from ._process import CancelToken

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = ["BuildOutput", "BuildRequest", "Builder"]


@dataclass(frozen=True)
class BuildRequest:
    """What the manager hands a builder.

    ``staging`` is an empty directory the builder owns; the manager moves it into place only
    after :meth:`Builder.build` returns, so a builder never writes to a registered location.
    """

    env: Environment
    staging: Path
    cancel: CancelToken
    runtime_dir: Path
    #: Where a builder may keep caches shared by every build of the store (created on demand).
    cache_dir: Path
    #: Exact versions to install instead of resolving the spec (a lock a notebook carried, one
    #: ``name==version`` per line); a builder that cannot honour one refuses the build.
    lock: str | None = None
    #: Where the artifact will live once registered (``staging`` is renamed to it). Builders
    #: whose files record their own location (conda prefixes) write this path into them.
    target: Path | None = None


@dataclass(frozen=True)
class BuildOutput:
    """What a successful build produced."""

    lock: str
    python_version: str
    details: dict[str, Any] = field(default_factory=dict)


def missing_directory(artifact: Path) -> str | None:
    """Says so when an artifact's directory is gone (the check every builder starts with)."""
    if not artifact.is_dir():
        return f"its directory {artifact} is gone"
    return None


class Builder(ABC):
    """One way of building environments. Subclasses set :attr:`name`."""

    #: Backend name used in specs (``backend=...``), the registry and kernelspec metadata.
    name: ClassVar[str]
    #: Whether :attr:`BuildRequest.lock` can be installed (else a carried lock is refused
    #: before anything starts, and only a rebuild from the spec is possible).
    honours_lock: ClassVar[bool] = True

    @abstractmethod
    def detect(self, env: Environment) -> bool:
        """Called by the detect chain in order; True if this builder should build ``env``."""

    def unavailable_reason(self) -> str | None:
        """Called before a build; a reason string when this builder cannot run on this machine."""
        return None

    @abstractmethod
    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        """Build into ``request.staging``, yielding log lines and progress as they happen.

        Called by the manager with the per-name build lock held. Must check
        ``request.cancel`` (or run commands through ``run_streaming``, which does) and raise
        :class:`~jupyter_envs.errors.BuildError` on failure; the manager removes the staging
        directory whatever happens.
        """

    @abstractmethod
    def kernel_target(self, artifact: Path) -> KernelTarget:
        """What runs a kernel of an artifact at its final location (an interpreter on this
        machine, or an image). Where that kernel runs is the kernel runtime's choice, not the
        builder's (see :mod:`jupyter_envs.engines.kernels.runtimes`)."""

    def artifact_problem(self, artifact: Path) -> str | None:
        """Why a registered artifact can no longer be used (deleted behind our back), or None.

        Called on every cache hit, so it must be cheap: no subprocess. When it answers, the
        manager rebuilds instead of handing out a version that cannot start.
        """
        return missing_directory(artifact)

    def remove(self, artifact: Path) -> None:
        """Delete an artifact; called when a version is removed."""
        shutil.rmtree(artifact, ignore_errors=True)
