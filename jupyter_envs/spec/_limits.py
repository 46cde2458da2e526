"""Size limits for specs that arrive from elsewhere (the REST API): bytes, lines, requirements.

A spec is a few dozen lines; one of 800,000 lines is a mistake or an attack, and used to start a
real build. Text is measured before it is parsed (parsing is the expensive part); the number of
requirements once it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecTooLargeError

if TYPE_CHECKING:
    from ._environment import Environment

__all__ = ["SpecLimits"]


@dataclass(frozen=True)
class SpecLimits:
    """The largest spec accepted; each limit's name is the server setting that sets it."""

    #: Bytes of spec text (UTF-8), or of a spec object written as JSON.
    max_spec_bytes: int = 1024 * 1024
    #: Lines of spec text.
    max_spec_lines: int = 20_000
    #: Requirements of every kind together: pip and conda packages, apt packages.
    max_requirements: int = 2_000

    def check_text(self, text: str, field: str = "text") -> None:
        """Refuse ``text`` over the byte or line limit, before it is parsed."""
        # len(str) <= bytes <= 4 * len(str): encode only when the answer is not already known.
        if len(text) > self.max_spec_bytes or (
            4 * len(text) > self.max_spec_bytes and len(text.encode()) > self.max_spec_bytes
        ):
            self._over("max_spec_bytes", f"{self.max_spec_bytes} bytes", field)
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines > self.max_spec_lines:
            self._over("max_spec_lines", f"{self.max_spec_lines} lines ({lines} given)", field)

    def check_object(self, spec: Any, field: str = "spec") -> None:
        """Refuse a spec object whose JSON form is over the byte limit."""
        self.check_text(json.dumps(spec, separators=(",", ":")), field)

    def check_environment(self, env: Environment) -> None:
        """Refuse a parsed spec with more requirements than allowed."""
        conda = env.python.conda_dependencies
        count = (
            len(env.all_pip_requirements())
            + (len(conda.conda_packages) if conda else 0)
            + len(env.docker.apt_packages)
        )
        if count > self.max_requirements:
            self._over(
                "max_requirements", f"{self.max_requirements} requirements ({count} given)", None
            )

    @staticmethod
    def _over(limit: str, what: str, field: str | None) -> None:
        raise SpecTooLargeError(
            f"the spec is over this server's limit of {what} (its setting: {limit})",
            limit=limit,
            field=field,
        )
