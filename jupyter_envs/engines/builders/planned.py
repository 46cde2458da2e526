"""Detect-only entries for backends an installation does not want to build.

They keep the detect chain honest: a spec with Docker settings or conda packages is recognised
as needing that backend and fails with an error saying so, instead of being built as a venv
that silently ignores half of it. An entry-point plug-in with the same name replaces them.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BackendUnavailableError
from ...events import Event
from ..kernels.runtimes import KernelTarget
from .base import Builder, BuildOutput, BuildRequest

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = ["CondaPlaceholder", "DockerPlaceholder"]


class _Placeholder(Builder):
    reason: str

    def unavailable_reason(self) -> str | None:
        return self.reason

    def build(self, request: BuildRequest) -> Generator[Event, None, BuildOutput]:
        raise BackendUnavailableError(self.name, self.reason)

    def kernel_target(self, artifact: Path) -> KernelTarget:
        raise BackendUnavailableError(self.name, self.reason)


class DockerPlaceholder(_Placeholder):
    """Recognises specs with Docker settings (base image, Dockerfile, apt packages, image).

    No longer in the default chain (:class:`~jupyter_envs.engines.builders.docker.DockerBuilder`
    reports a missing SDK or engine itself); kept for plug-ins and setups that want Docker
    specs refused outright.
    """

    name = "docker"
    reason = (
        "Docker builds are disabled in this installation; remove the Docker settings (base "
        "image, Dockerfile, apt packages) to build a virtualenv instead"
    )

    def detect(self, env: Environment) -> bool:
        return env.docker.enabled or bool(env.image)


class CondaPlaceholder(_Placeholder):
    """Recognises specs with conda packages other than ``python`` and ``pip``.

    No longer in the default chain (:class:`~jupyter_envs.engines.builders.conda.CondaBuilder`
    builds them); kept for plug-ins and setups that want conda specs refused outright.
    """

    name = "conda"
    reason = (
        "conda builds are disabled in this installation; an environment.yml that only pins "
        "python and lists pip packages builds as a virtualenv"
    )

    def detect(self, env: Environment) -> bool:
        conda = env.python.conda_dependencies
        return bool(conda and conda.needs_conda())
