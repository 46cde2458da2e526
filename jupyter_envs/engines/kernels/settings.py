"""What a container kernel's kernelspec says about its container, validated.

The settings travel in two forms (the provisioner's config in ``metadata.kernel_provisioner``
and the launcher's flags in ``argv``); :class:`ContainerSettings` writes and reads both.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import SpecError

__all__ = ["SECRETS_DIR_VAR", "ContainerSettings", "parse_memory", "validate_settings"]

#: A directory of secret files (``<dir>/<NAME>``), read when the server's environment lacks NAME.
SECRETS_DIR_VAR = "JUPYTER_ENVS_SECRETS_DIR"

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# Docker refuses a memory limit below 6 MiB; a kernel needs far more anyway.
_MIN_MEMORY = 6 * 1024**2


def parse_memory(text: str) -> int:
    """Bytes from a memory size such as ``512m``, ``4g``, ``4GiB`` or ``1073741824``.

    Units are binary (``k`` = 1024), as Docker reads them.
    """
    match = _MEMORY.match(text)
    if not match:
        raise SpecError(
            f"'{text}' is not a memory size (use e.g. 512m, 4g or 4GiB)", field="memory"
        )
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < _MIN_MEMORY:
        raise SpecError(f"memory '{text}' is below Docker's minimum of 6m", field="memory")
    return int(value)


def validate_settings(
    *,
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    secrets: list[str],
    env_vars: dict[str, str],
) -> None:
    """Raise :class:`SpecError` when a container setting cannot work."""
    if cpu is not None and not cpu > 0:
        raise SpecError(f"cpu must be a positive number of CPUs, not {cpu!r}", field="cpu")
    if memory is not None:
        parse_memory(memory)
    if gpu is not None and gpu != -1 and gpu < 1:
        raise SpecError(f"gpu must be a positive count (or -1 for all), not {gpu!r}", field="gpu")
    for name in [*secrets, *env_vars]:
        if not _VAR_NAME.match(name):
            field = "secrets" if name in secrets else "env_vars"
            raise SpecError(f"'{name}' is not a valid environment variable name", field=field)


@dataclass(frozen=True)
class ContainerSettings:
    """What a kernelspec says about its container (the provisioner config / launcher flags)."""

    image: str
    env_name: str = ""
    spec_hash: str = ""
    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    secrets: tuple[str, ...] = ()
    env_vars: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_settings(
            cpu=self.cpu,
            memory=self.memory,
            gpu=self.gpu,
            secrets=list(self.secrets),
            env_vars=dict(self.env_vars),
        )

    # The two forms a kernelspec carries them in: the provisioner's config and the launcher's
    # flags. Each is written and read here only, so the two cannot drift apart.
    def config(self) -> dict[str, Any]:
        """As ``metadata.kernel_provisioner.config`` (the provisioner's traits)."""
        return {
            "image": self.image,
            "env": self.env_name,
            "spec_hash": self.spec_hash,
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu": self.gpu,
            "secrets": list(self.secrets),
            "env_vars": dict(self.env_vars),
        }

    def flags(self) -> list[str]:
        """As the launcher's command-line flags (read back by :meth:`from_flags`)."""
        out = ["--image", self.image, "--env", self.env_name, "--spec-hash", self.spec_hash]
        if self.cpu is not None:
            out += ["--cpu", repr(float(self.cpu))]
        if self.memory is not None:
            out += ["--memory", self.memory]
        if self.gpu is not None:
            out += ["--gpu", str(self.gpu)]
        for name in self.secrets:
            out += ["--secret", name]
        for key, value in sorted(self.env_vars.items()):
            out += ["--env-var", f"{key}={value}"]
        return out

    @staticmethod
    def add_flags(parser: argparse.ArgumentParser) -> None:
        """Declare the flags :meth:`flags` writes."""
        parser.add_argument("--image", required=True, help="the environment's image")
        parser.add_argument("--env", default="", help="environment name (container label)")
        parser.add_argument("--spec-hash", default="", help="spec hash (container label)")
        parser.add_argument("--cpu", type=float, default=None, help="CPU limit (CPUs)")
        parser.add_argument("--memory", default=None, help="memory limit, e.g. 4g")
        parser.add_argument("--gpu", type=int, default=None, help="number of GPUs (-1: all)")
        parser.add_argument(
            "--secret", action="append", default=[], help="secret name (value from the environment)"
        )
        parser.add_argument(
            "--env-var", action="append", default=[], help="KEY=VALUE for the kernel"
        )

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> ContainerSettings:
        """The settings parsed by a parser that :meth:`add_flags` set up."""
        return cls(
            image=args.image,
            env_name=args.env,
            spec_hash=args.spec_hash,
            cpu=args.cpu,
            memory=args.memory,
            gpu=args.gpu,
            secrets=tuple(args.secret),
            env_vars=dict(item.split("=", 1) for item in args.env_var if "=" in item),
        )
