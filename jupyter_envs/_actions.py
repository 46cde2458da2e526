"""The implementation of ``Environment.build()`` and its siblings (see spec/_binding.py).

Bound by the package's top level. Each method imports what it uses when called, so that
``import jupyter_envs`` (which every environment kernel does at start) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engines.store import Workspace
    from .events import Event
    from .facade.manager import BuildResult
    from .spec import Environment


class FacadeActions:
    """Spec actions served by the manager façade (and, in a server's kernel, the server)."""

    def register(self, env: Environment, ws: Workspace | None) -> Environment:
        """See :meth:`Environment.register`."""
        from .facade.manager import get_manager

        return get_manager(ws).register(env)

    def build(
        self,
        env: Environment,
        *,
        force: bool,
        ws: Workspace | None,
        on_event: Callable[[Event], None] | None,
    ) -> BuildResult:
        """See :meth:`Environment.build`: the server builds when this kernel has one."""
        if ws is None:
            from .clients.envs import connect

            return connect().build(env, force=force, on_event=on_event)
        from .facade.manager import get_manager

        return get_manager(ws).build(env, force=force, on_event=on_event)

    def dockerfile(self, env: Environment) -> str:
        """See :meth:`Environment.dockerfile`."""
        from .engines.builders.dockerfile import render_dockerfile

        return render_dockerfile(env)

    def image_details(self, env: Environment) -> dict[str, Any]:
        """See :meth:`Environment.get_image_details`."""
        from .engines.builders.dockerfile import image_details

        return image_details(env)

    def activate(self, env: Environment, version: int | None) -> str:
        """See :meth:`Environment.activate`."""
        from .facade.manager import get_manager
        from .frontends.activation import switch_notebook, target_for

        manager = get_manager()
        record = manager.record(env.name, version)
        return switch_notebook(target_for(record, manager.pushes(record.name, record.version)))

    def list(self, ws: Workspace | None) -> dict[str, Environment]:
        """See :meth:`Environment.list`."""
        from .facade.manager import get_manager

        return get_manager(ws).list()

    def get(self, name: str, version: int | None, ws: Workspace | None) -> Environment:
        """See :meth:`Environment.get`."""
        from .facade.manager import get_manager

        return get_manager(ws).get(name, version)
