"""Field checks of :class:`~jupyter_envs.spec.Environment` that are not a section's, and the
table ``clone_with`` applies changes with."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from ..errors import SpecError
from ._requirements import requirement_of
from ._sections import Resources
from ._validate import validate_secret_names

if TYPE_CHECKING:
    from ._environment import Environment

__all__ = [
    "apply_change",
    "as_dependencies",
    "check_backend",
    "check_description",
    "check_interruptible",
    "check_registry",
    "req_key",
]


def check_backend(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.isidentifier():
        raise SpecError(f"invalid backend {value!r}", field="backend")
    return value


def check_description(value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError("must be a string", field="description")
    return value


def check_interruptible(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError("must be True or False", field="interruptible")
    return value


# host[:port][/path]: what `docker push` accepts before the image name. A scheme or credentials
# are refused: credentials come from the Docker config or the server's secret, never a spec.
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_REGISTRY_PATH = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")


def check_registry(value: Any, field: str = "registry") -> str | None:
    """``host[:port][/path]`` (lower case), or None; why not otherwise, naming ``field``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SpecError(f"must be a string like 'host:5000/team', got {value!r}", field=field)
    text = value.strip().rstrip("/")
    if "://" in text:
        raise SpecError(
            f"{value!r}: give host[:port][/path] without a scheme (e.g. 'host:5000/team')",
            field=field,
        )
    host, _, path = text.partition("/")
    if "@" in host:
        raise SpecError(
            "must not hold credentials: log in with `docker login HOST` (or set "
            "JUPYTER_ENVS_REGISTRY_USERNAME/_PASSWORD for the server) instead",
            field=field,
        )
    if not _REGISTRY_HOST.match(host) or (
        "." not in host and ":" not in host and host != "localhost"
    ):
        raise SpecError(
            f"{value!r}: the registry must start with a host name with a dot or a port "
            "(e.g. 'registry.example.org/team' or '127.0.0.1:5000'); lower case only",
            field=field,
        )
    if path and not all(_REGISTRY_PATH.match(part) for part in path.split("/")):
        raise SpecError(
            f"{value!r}: each path part after the host must be lower-case letters, digits and "
            "'.', '_' or '-' between them",
            field=field,
        )
    return text


def as_dependencies(value: Iterable[Environment | str] | Environment | str) -> list[Any]:
    # A lone name is one dependency: iterating "base" would depend on "b", "a", "s" and "e".
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]  # a name, or one Environment (not iterable)
    if isinstance(value, Mapping):  # would be read as its keys
        raise SpecError(
            f"must be a list of environments or names, not {type(value).__name__}",
            field="depends_on",
        )
    return list(value)


def req_key(req: str) -> str:
    parsed = requirement_of(req)
    return f"{canonicalize_name(parsed.name)};{parsed.marker}"


_SETTERS: dict[str, Callable[[Environment, Any], None]] = {
    "python": lambda env, v: setattr(env.python, "version", v),
    "pip": lambda env, v: setattr(env, "pip_requirements", v),
    "conda_dependencies": lambda env, v: setattr(env.python, "conda_dependencies", v),
    "base_image": lambda env, v: setattr(env.docker, "base_image", v),
    "apt_packages": lambda env, v: setattr(env.docker, "apt_packages", v),
    "env_vars": lambda env, v: setattr(env, "env_vars", v),
    "secrets": lambda env, v: setattr(env, "secrets", validate_secret_names(v)),
    "resources": lambda env, v: setattr(env, "resources", Resources.coerce(v)),
    "description": lambda env, v: setattr(env, "description", check_description(v)),
    "image": lambda env, v: setattr(env, "image", v),
    # Checked as in the constructor (bool("no") is True).
    "interruptible": lambda env, v: setattr(env, "interruptible", check_interruptible(v)),
    "pod_template": lambda env, v: setattr(env, "pod_template", v),
    "backend": lambda env, v: setattr(env, "backend", v),
    "pip_options": lambda env, v: setattr(env, "pip_options", v),
    "registry": lambda env, v: setattr(env, "registry", v),
}


def apply_change(env: Environment, key: str, value: Any) -> None:
    if key == "depends_on":
        env.depends_on = ()
        for dep in as_dependencies(value):
            env.add_dependency(dep)
        return
    setter = _SETTERS.get(key)
    if setter is None:
        raise SpecError(f"clone_with got an unknown field {key!r} (known: {sorted(_SETTERS)})")
    setter(env, copy.deepcopy(value))
