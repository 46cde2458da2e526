"""The jupyter_server extension of jupyter-envs: builds run in the server, behind a REST API.

Enabled with ``jupyter server extension enable jupyter_envs`` (installed enabled by
``jupyter-config/jupyter_server_config.d/jupyter_envs.json``). The routes are documented in
``docs/rest-api.md``. Importing this package imports jupyter_server and tornado, so nothing
outside it does.
"""

from __future__ import annotations

from typing import Any

from ._app import JupyterEnvsApp
from ._builds import BuildJob, BuildQueue, ConflictError
from ._handlers import API_PREFIX, AUTH_RESOURCE

__all__ = [
    "API_PREFIX",
    "AUTH_RESOURCE",
    "BuildJob",
    "BuildQueue",
    "ConflictError",
    "JupyterEnvsApp",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter_server finds the extension app."""
    return [{"module": "jupyter_envs.frontends.server", "app": JupyterEnvsApp}]
