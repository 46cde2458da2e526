"""The ipywidgets panel (``%envs panel``, ``jupyter_envs.panel()``): create, build, watch,
cancel, activate and remove environments from a notebook. See :class:`EnvPanel`."""

from __future__ import annotations

__all__ = ["panel"]


def panel() -> None:
    """Show the environments panel in this notebook.

    Returns nothing, so that a cell ending with ``jupyter_envs.panel()`` shows it once; for the
    object, ``EnvPanel().show()`` (``jupyter_envs.frontends.panel._view``). Needs ipywidgets in
    the kernel (every environment's kernel has it); a frontend without widget support shows the
    environment table as text and how to use the magics instead.
    """
    from ._view import EnvPanel

    EnvPanel().show()
