"""Small validators shared by the spec classes. Each raises SpecError naming the field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError

# Names become directory names, kernel names and Docker tags: keep them to a portable alphabet
# and never let one be a path.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = re.compile(r"^[1-9][0-9]*(?:\.[0-9]+)?\s*(?:[KMGT]i?|[kmgt]|[KMGT]i?B|b)?$")
_PYTHON = re.compile(r"^(?:[<>=!~]=?\s*)?3(?:\.[0-9]+){0,2}(?:\.\*)?$|^[<>=!~]")


def validate_name(value: Any, field: str = "name") -> str:
    """Return ``value`` if it is a valid environment name."""
    if not isinstance(value, str):
        raise SpecError(f"must be a string, got {type(value).__name__}", field=field)
    if not _NAME.match(value) or value in (".", "..") or ".." in value:
        raise SpecError(
            f"invalid environment name {value!r}: use 1-63 lowercase letters, digits, '-', '_' "
            "or '.', starting with a letter or digit (no spaces, no path separators)",
            field=field,
        )
    return value


def validate_env_vars(value: Mapping[str, Any] | None, field: str = "env_vars") -> dict[str, str]:
    """Return a str→str copy of ``value`` after checking every key is a valid variable name."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError("must be a mapping of names to values", field=field)
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_VAR.match(key):
            raise SpecError(f"invalid environment variable name {key!r}", field=field)
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise SpecError(f"value of {key} must be a string or number, got {val!r}", field=field)
        out[key] = str(val)
    return out


def validate_secret_names(value: Iterable[str] | None) -> tuple[str, ...]:
    """Secrets are names only: their values are read at kernel start and never stored."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for name in value:
        if not isinstance(name, str) or not _ENV_VAR.match(name):
            raise SpecError(
                f"invalid secret name {name!r}: secrets are given by environment-variable "
                "name only (their values are read when the kernel starts, never stored)",
                field="secrets",
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def validate_python_version(value: Any) -> str | None:
    """Accept ``None``, ``"3.11"``, ``"3.11.7"``, ``">=3.10"`` and similar."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not _PYTHON.match(value.strip()):
        raise SpecError(
            f"invalid Python version {value!r} (expected e.g. '3.11', '3.12.1' or '>=3.10')",
            field="python",
        )
    return value.strip()


def validate_memory(value: Any) -> str | None:
    """Accept ``None`` or sizes such as ``"512Mi"``, ``"2Gi"``, ``"1g"``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MEMORY.match(value.strip()):
        raise SpecError(
            f"invalid memory size {value!r} (expected e.g. '512Mi', '2Gi' or '1g')",
            field="resources.memory",
        )
    return value.strip()


def validate_str_list(value: Any, field: str) -> tuple[str, ...]:
    """A list of non-empty strings without shell metacharacters."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.+:=~_-]*$", item):
            raise SpecError(f"invalid entry {item!r}", field=field)
        out.append(item)
    return tuple(out)


def read_spec_file(path: Path, field: str) -> str:
    """Read a spec file; a missing or unreadable file is a SpecError naming ``field``."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}", field=field) from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}", field=field) from None
