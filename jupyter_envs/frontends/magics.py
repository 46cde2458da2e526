"""``%%env`` and ``%envs``: the notebook front-end. Translates cells to façade calls, no more.

IPython's own ``%env`` *line* magic keeps working: only a *cell* magic named ``env`` is added.
Every environment kernel loads this at start (``--ext=jupyter_envs``), so registering the magics
imports nothing else: what they do lives in :mod:`._notebook`, imported on first use.
"""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

__all__ = ["EnvMagics", "register"]


@magics_class
class EnvMagics(Magics):
    """The ``%%env`` cell magic and the ``%envs`` line magic."""

    @cell_magic("env")  # type: ignore[arg-type, unused-ignore]  # IPython 9 stubs: Never
    def env_cell(self, line: str, cell: str) -> None:
        """%%env NAME [--python X] [--backend B] [--format F] [--force] [--no-activate] [--env K=V]
        [--push] [--registry HOST:PORT/PATH]


        The cell body is requirements.txt, environment.yml or Dockerfile text. Builds (or reuses)
        the environment and registers a kernel for it. ``--push`` (with ``--registry``, else
        ``$JUPYTER_ENVS_REGISTRY``) pushes a Docker environment's image after the build, for
        its "on Swarm" kernel.
        """
        from ._notebook import env_cell

        env_cell(line, cell)

    @line_magic("envs")  # type: ignore[arg-type, unused-ignore]
    def envs_line(self, line: str) -> None:
        """%envs list | show | versions | build | remove | export | logs | activate NAME

        Also ``%envs curated`` (the ready-made environments), ``%envs create -f FILE NAME``,
        ``%envs restore`` (what this notebook carries) and ``%envs panel`` (the widget panel).
        """
        from ._notebook import envs_line

        envs_line(line)


def register(ipython: InteractiveShell | Any) -> None:
    """Register the magics on a shell (called by ``%load_ext jupyter_envs``)."""
    ipython.register_magics(EnvMagics)
