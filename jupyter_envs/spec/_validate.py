"""Small validators shared by the spec classes. Each raises SpecError naming the field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..errors import SpecError

# These patterns are used with ``fullmatch``: with ``match``, ``$`` also matches before a
# trailing newline, which let "name\n" through as an environment name (a directory and kernel
# name) and "FOO\n" as an environment variable or secret name.
# Names become directory names, kernel names and Docker tags: keep them to a portable alphabet
# and never let one be a path.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMORY = re.compile(r"[1-9][0-9]*(?:\.[0-9]+)?\s*(?:[KMGT]i?|[kmgt]|[KMGT]i?B|b)?")
_PYTHON = re.compile(r"3(?:\.[0-9]+){0,2}(?:\.\*)?")
_STR_ITEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:=~_-]*")
# An image reference (``[registry[:port]/]name[:tag][@digest]``): only the characters Docker
# allows, so no whitespace or shell metacharacters can reach a Dockerfile or a command line.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")


def validate_name(value: Any, field: str = "name") -> str:
    """Return ``value`` if it is a valid environment name."""
    if not isinstance(value, str):
        raise SpecError(f"must be a string, got {type(value).__name__}", field=field)
    if not _NAME.fullmatch(value) or value in (".", "..") or ".." in value:
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
        if not isinstance(key, str) or not _ENV_VAR.fullmatch(key):
            raise SpecError(f"invalid environment variable name {key!r}", field=field)
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise SpecError(f"value of {key} must be a string or number, got {val!r}", field=field)
        out[key] = str(val)
    return out


def validate_secret_names(value: Iterable[str] | None) -> tuple[str, ...]:
    """Secrets are names only: their values are read at kernel start and never stored."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        # Iterating a dict would keep its keys and silently drop the values the user passed,
        # which then never reach the kernel: say how secrets work instead.
        raise SpecError(
            f"secrets are names only, not a mapping of values (got keys {sorted(value)}): pass "
            "the environment-variable names; their values are read when the kernel starts",
            field="secrets",
        )
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for name in value:
        if not isinstance(name, str) or not _ENV_VAR.fullmatch(name):
            # "NAME=value" is a value given by mistake: never echo it into an error message
            # (which ends up in notebook outputs and logs).
            shown = f"{name.split('=', 1)[0]}=…" if isinstance(name, str) and "=" in name else name
            raise SpecError(
                f"invalid secret name {shown!r}: secrets are given by environment-variable "
                "name only (their values are read when the kernel starts, never stored)",
                field="secrets",
            )
        if name not in out:
            out.append(name)
    return tuple(out)


#: ipykernel's oldest Python: an environment asking for an older one cannot run a kernel.
KERNEL_MIN_PYTHON = (3, 9)


def too_old_for_kernel(version: str | None) -> bool:
    """True for an exact ``X.Y[.Z]`` (or ``X.Y.*``) older than :data:`KERNEL_MIN_PYTHON`."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.[\d*]+)?\*?$", (version or "").strip())
    return match is not None and (int(match[1]), int(match[2])) < KERNEL_MIN_PYTHON


def validate_python_version(value: Any) -> str | None:
    """Accept ``None``, ``"3.11"``, ``"3.11.7"``, ``">=3.10"`` and similar."""
    if value is None:
        return None
    if not isinstance(value, str) or not _is_python_request(value.strip()):
        raise SpecError(
            f"invalid Python version {value!r} (expected e.g. '3.11', '3.12.1' or '>=3.10')",
            field="python",
        )
    return value.strip()


def _is_python_request(text: str) -> bool:
    if _PYTHON.fullmatch(text):
        return True
    # A specifier set (">=3.10", "~=3.11", ">=3.10,<3.13"). This used to accept anything that
    # merely started with an operator character (">=banana", "==; rm -rf /").
    if not text or text[0] not in "<>=!~":
        return False
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        return False
    return len(spec) > 0


def validate_memory(value: Any) -> str | None:
    """Accept ``None`` or sizes such as ``"512Mi"``, ``"2Gi"``, ``"1g"``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MEMORY.fullmatch(value.strip()):
        raise SpecError(
            f"invalid memory size {value!r} (expected e.g. '512Mi', '2Gi' or '1g')",
            field="resources.memory",
        )
    return value.strip()


def as_string_list(value: Any, field: str) -> list[str]:
    """``value`` as a list of strings: one string, or a list, tuple or set of strings.

    Anything else is refused naming ``field``, never coerced: a mapping would silently become
    its keys (``{"a": 1}`` read as ``["a"]``), a number or a list holding one is a mistake.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping | bytes | bytearray) or not isinstance(value, Iterable):
        raise SpecError(f"must be a list of strings, not {type(value).__name__}", field=field)
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise SpecError(
                f"invalid entry {item!r}: must be a string, not {type(item).__name__}",
                field=field,
            )
    return items


def validate_str_list(value: Any, field: str) -> tuple[str, ...]:
    """A list of non-empty strings without shell metacharacters."""
    if value is None:
        return ()
    out: list[str] = []
    for item in as_string_list(value, field):
        if not isinstance(item, str) or not _STR_ITEM.fullmatch(item):
            raise SpecError(f"invalid entry {item!r}", field=field)
        out.append(item)
    return tuple(out)


def validate_image_ref(value: Any, field: str) -> str | None:
    """Accept ``None`` or a Docker image reference (``python:3.12-slim``, ``ghcr.io/o/i:1``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _IMAGE.fullmatch(value):
        raise SpecError(
            f"invalid image reference {value!r} (expected e.g. 'python:3.12-slim')", field=field
        )
    return value


def read_spec_file(path: Path, field: str) -> str:
    """Read a spec file; a missing or unreadable file is a SpecError naming ``field``."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}", field=field) from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}", field=field) from None
