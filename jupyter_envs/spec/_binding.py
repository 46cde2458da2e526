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
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import EnvsError

if TYPE_CHECKING:
    from ..engines.store import Workspace
    from ..events import Event
    from ..facade.manager import BuildResult
    from ._environment import Environment

__all__ = ["EnvironmentActions", "WithActions", "actions", "bind_actions"]


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


class WithActions:
    """The user-facing actions of :class:`~jupyter_envs.spec.Environment` (AzureML / Flyte
    style), each a call to the bound :class:`EnvironmentActions`."""

    def register(self, ws: Workspace | None = None) -> Environment:
        """Record this spec in the registry without building it; returns the stored version."""
        return actions().register(cast("Environment", self), ws)

    def build(
        self,
        force: bool = False,
        ws: Workspace | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> BuildResult:
        """Build (or reuse) and register this environment; see :class:`BuildResult`.

        Without ``ws``, inside a kernel of a Jupyter server with the jupyter-envs extension, the
        server builds (it owns the registry); elsewhere this process does.
        """
        return actions().build(cast("Environment", self), force=force, ws=ws, on_event=on_event)

    def dockerfile(self) -> str:
        """The Dockerfile the Docker builder builds for this spec (exactly that text)."""
        return actions().dockerfile(cast("Environment", self))

    def get_image_details(self) -> dict[str, Any]:
        """As AzureML: the image this spec builds; ``["ingredients"]["dockerfile"]`` included."""
        return actions().image_details(cast("Environment", self))

    def activate(self, version: int | None = None) -> str:
        """Switch the open notebook to this environment's kernel (the latest version by default).

        Returns the path taken: ``"comm"`` (the labextension or the server switches the notebook
        once the cell ends) or ``"manual"`` (no frontend to switch: the kernel to pick is
        printed). The version must have been built.
        """
        return actions().activate(cast("Environment", self), version)

    @staticmethod
    def list(ws: Workspace | None = None) -> dict[str, Environment]:
        """All registered environments, name → latest version (as AzureML's ``list``)."""
        return actions().list(ws)

    @staticmethod
    def get(name: str, version: int | None = None, ws: Workspace | None = None) -> Environment:
        """A registered environment (latest version unless ``version`` is given)."""
        return actions().get(name, version, ws)
