"""The sections of an Environment: ``python``, ``docker`` and ``resources``.

``PythonSection`` and ``DockerSection`` are mutable like AzureML's (``env.python.conda_dependencies
= cd`` is how users attach conda dependencies) but validate every assignment, so an invalid value
fails where it is set, naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ._conda import CondaDependencies
from ._validate import (
    validate_image_ref,
    validate_memory,
    validate_python_version,
    validate_str_list,
)

__all__ = ["DockerSection", "PythonSection", "Resources"]


@dataclass(frozen=True)
class Resources:
    """Compute resources for the kernel: CPUs, memory (``"2Gi"``) and GPUs.

    Applied to container kernels; recorded (not enforced) for local virtualenv kernels.
    """

    cpu: float | None = None
    memory: str | None = None
    gpu: int = 0

    def __post_init__(self) -> None:
        # isfinite: NaN passed the "<= 0" test and inf is no CPU count either.
        if self.cpu is not None and (
            isinstance(self.cpu, bool)
            or not isinstance(self.cpu, int | float)
            or not math.isfinite(self.cpu)
            or self.cpu <= 0
        ):
            raise SpecError(f"must be a positive number, got {self.cpu!r}", field="resources.cpu")
        object.__setattr__(self, "memory", validate_memory(self.memory))
        if isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0:
            raise SpecError(f"must be a whole number >= 0, got {self.gpu!r}", field="resources.gpu")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for serialisation."""
        return {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu}

    @classmethod
    def coerce(cls, value: Resources | dict[str, Any] | None) -> Resources:
        """Accept a Resources, a dict of its fields, or None."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"cpu", "memory", "gpu"}
            if unknown:
                raise SpecError(f"unknown keys {sorted(unknown)}", field="resources")
            return cls(**value)
        raise SpecError("must be Resources(cpu, memory, gpu) or a dict", field="resources")


class PythonSection:
    """How the Python side of an environment is made (AzureML's ``env.python``)."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._conda: CondaDependencies | None = None
        self.user_managed_dependencies: bool = False
        self._interpreter_path: str | None = None

    @property
    def version(self) -> str | None:
        """Requested Python version (``"3.11"``); None means the server's own Python version."""
        return self._version

    @version.setter
    def version(self, value: str | None) -> None:
        self._version = validate_python_version(value)

    @property
    def conda_dependencies(self) -> CondaDependencies | None:
        """Attached :class:`CondaDependencies`, if any."""
        return self._conda

    @conda_dependencies.setter
    def conda_dependencies(self, value: CondaDependencies | None) -> None:
        if value is not None and not isinstance(value, CondaDependencies):
            raise SpecError("must be a CondaDependencies", field="python.conda_dependencies")
        self._conda = value

    @property
    def interpreter_path(self) -> str | None:
        """With ``user_managed_dependencies``: the interpreter that already has everything."""
        return self._interpreter_path

    @interpreter_path.setter
    def interpreter_path(self, value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise SpecError("must be an absolute path", field="python.interpreter_path")
        self._interpreter_path = value

    def to_dict(self) -> dict[str, Any]:
        """Plain data for serialisation."""
        return {
            "version": self._version,
            "conda_dependencies": self._conda.to_dict() if self._conda else None,
            "user_managed_dependencies": self.user_managed_dependencies,
            "interpreter_path": self._interpreter_path,
        }


class DockerSection:
    """Docker settings: a base image or a base Dockerfile, and apt packages."""

    def __init__(self) -> None:
        self._base_image: str | None = None
        self._base_dockerfile: str | None = None
        self._apt: tuple[str, ...] = ()

    @property
    def base_image(self) -> str | None:
        """Image to build on (``"python:3.12-slim"``)."""
        return self._base_image

    @base_image.setter
    def base_image(self, value: str | None) -> None:
        # Checked against the image-reference alphabet: only refusing whitespace let shell
        # metacharacters through ("python:3.12;rm").
        self._base_image = validate_image_ref(value, "docker.base_image")

    @property
    def base_dockerfile(self) -> str | None:
        """Dockerfile text prepended to the generated one (as AzureML does)."""
        return self._base_dockerfile

    @base_dockerfile.setter
    def base_dockerfile(self, value: str | Path | None) -> None:
        # AzureML takes a path to a Dockerfile as well as its text.
        if isinstance(value, Path) or (
            isinstance(value, str)
            and "\n" not in value
            and value.strip()
            and " " not in value.strip()
        ):
            path = Path(value).expanduser()
            try:
                value = path.read_text()
            except OSError as exc:
                raise SpecError(
                    f"cannot read the Dockerfile {path}: {exc.strerror}",
                    field="docker.base_dockerfile",
                ) from None
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise SpecError("must be non-empty Dockerfile text", field="docker.base_dockerfile")
            # The line of the first instruction (it used to be reported as line 1 even when
            # comments or blank lines came before it).
            lineno, first = next(
                (
                    (i, ln.strip())
                    for i, ln in enumerate(value.splitlines(), start=1)
                    if ln.strip() and not ln.lstrip().startswith("#")
                ),
                (1, ""),
            )
            if not first.upper().startswith(("FROM ", "ARG ")):
                raise SpecError(
                    "a Dockerfile must start with FROM (or ARG before FROM)",
                    field="docker.base_dockerfile",
                    line=lineno,
                    text=first,
                )
        self._base_dockerfile = value

    @property
    def apt_packages(self) -> tuple[str, ...]:
        """Debian/Ubuntu packages installed in the image."""
        return self._apt

    @apt_packages.setter
    def apt_packages(self, value: Any) -> None:
        self._apt = validate_str_list(value, "docker.apt_packages")

    @property
    def enabled(self) -> bool:
        """True when any Docker setting is present (the docker builder is then chosen)."""
        return bool(self._base_image or self._base_dockerfile or self._apt)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for serialisation."""
        return {
            "base_image": self._base_image,
            "base_dockerfile": self._base_dockerfile,
            "apt_packages": list(self._apt),
        }
