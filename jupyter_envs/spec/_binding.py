"""How ``Environment.build()`` and its siblings reach the layers above the spec without
importing them.

The spec layer is pure data, yet users expect AzureML / Flyte style actions on the object
(``env.build()``, ``env.register()``, ``Environment.list()``...). The spec declares what it
needs (:class:`EnvironmentActions`); the package's top level binds an implementation once, at
``import jupyter_envs`` (which every import of a submodule runs first). Tests, or another
façade, can bind their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import EnvsError

if TYPE_CHECKING:
    from ..engines.store import Workspace
    from ..events import Event
    from ..facade.manager import BuildResult
    from ._environment import Environment

__all__ = ["EnvironmentActions", "actions", "bind_actions"]


class EnvironmentActions(Protocol):
    """What the spec's action methods call; each mirrors the method of the same name."""

    def register(self, env: Environment, ws: Workspace | None) -> Environment:
        """Record ``env`` without building it; the stored version."""

    def build(
        self,
        env: Environment,
        *,
        force: bool,
        ws: Workspace | None,
        on_event: Callable[[Event], None] | None,
    ) -> BuildResult:
        """Build (or reuse) and register ``env``."""

    def dockerfile(self, env: Environment) -> str:
        """The Dockerfile text the Docker builder builds for ``env``."""

    def image_details(self, env: Environment) -> dict[str, Any]:
        """What building ``env`` as an image would make."""

    def activate(self, env: Environment, version: int | None) -> str:
        """Switch the open notebook to ``env``'s kernel; the path taken."""

    def list(self, ws: Workspace | None) -> dict[str, Environment]:
        """All registered environments, name → latest version."""

    def get(self, name: str, version: int | None, ws: Workspace | None) -> Environment:
        """A registered environment."""


_bound: EnvironmentActions | None = None


def bind_actions(impl: EnvironmentActions) -> EnvironmentActions | None:
    """Make ``impl`` serve the spec's action methods; returns the one bound before."""
    global _bound
    previous, _bound = _bound, impl
    return previous


def actions() -> EnvironmentActions:
    """The bound actions; an EnvsError when nothing bound them (a broken install)."""
    if _bound is None:
        raise EnvsError(
            "Environment actions are not bound: import jupyter_envs (its top level binds them)"
        )
    return _bound
