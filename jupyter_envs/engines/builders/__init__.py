"""The ordered list of builders and the ``detect()`` chain that picks one for a spec.

Order: docker → conda → venv. The first builder whose ``detect`` matches wins; ``venv`` matches
anything left, so it is last. Third-party builders register in the ``jupyter_envs.builders``
entry-point group: one with the name of a built-in replaces it in place, a new name is tried
just before ``venv``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ...errors import BackendUnavailableError
from .._plugins import merge_plugins
from ._process import CancelToken
from .base import Builder, BuildOutput, BuildRequest
from .conda import CondaBuilder
from .docker import DockerBuilder
from .fake import FakeBuilder
from .uv import UvBuilder

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = [
    "BuildOutput",
    "BuildRequest",
    "Builder",
    "CancelToken",
    "CondaBuilder",
    "DockerBuilder",
    "FakeBuilder",
    "UvBuilder",
    "available_builders",
    "choose_builder",
    "get_builder",
]

ENTRY_POINT_GROUP = "jupyter_envs.builders"


@lru_cache(maxsize=1)
def available_builders() -> tuple[Builder, ...]:
    """Every builder in detect order (built-ins, with entry-point plug-ins merged in)."""
    # DockerBuilder imports the docker SDK only when used: without the SDK or a running engine
    # it still detects Docker specs and its unavailable_reason() says which is missing.
    chain: list[Builder] = [DockerBuilder(), CondaBuilder(), UvBuilder()]
    # A new plug-in goes just before venv, which matches anything left.
    chain = merge_plugins(chain, ENTRY_POINT_GROUP, "builder", insert_at=-2)
    # The fake is never detected; it is chosen only by an explicit backend="fake".
    chain.append(FakeBuilder())
    return tuple(chain)


def choose_builder(env: Environment) -> Builder:
    """The builder for ``env``: the one it names, else the first whose ``detect`` matches."""
    if env.backend_named:
        return get_builder(env.backend_named)
    for builder in available_builders():
        if builder.detect(env):
            return builder
    raise BackendUnavailableError(env.kind, "no builder accepts this spec")


def get_builder(name: str) -> Builder:
    """The builder called ``name``; unknown names fail with the list of known ones."""
    for builder in available_builders():
        if builder.name == name:
            return builder
    known = ", ".join(b.name for b in available_builders())
    raise BackendUnavailableError(name, f"no builder of that name is installed (known: {known})")
