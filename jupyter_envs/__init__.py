"""jupyter-envs: build software environments from a notebook cell and run kernels in them.

The public API is what ``__all__`` lists; modules with a leading underscore are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._sections import DockerSection, PythonSection, Resources
from ._version import __version__
from .builders import Builder, CancelToken
from .conda import CondaDependencies
from .errors import (
    ApiError,
    BackendUnavailableError,
    BuildCancelledError,
    BuildError,
    EnvsError,
    KernelStartError,
    NotFoundError,
    PythonNotFoundError,
    SpecError,
    StoreError,
)
from .events import LogLine, Progress
from .manager import BuildResult, EnvManager
from .spec import Environment
from .store import Workspace

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "ApiError",
    "BackendUnavailableError",
    "BuildCancelledError",
    "BuildError",
    "BuildResult",
    "Builder",
    "CancelToken",
    "CondaDependencies",
    "DockerSection",
    "EnvManager",
    "Environment",
    "EnvsError",
    "KernelStartError",
    "LogLine",
    "NotFoundError",
    "Progress",
    "PythonNotFoundError",
    "PythonSection",
    "Resources",
    "SpecError",
    "StoreError",
    "Workspace",
    "__version__",
    "load_ipython_extension",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """jupyter_server's hook: the server extension lives in :mod:`jupyter_envs.server`.

    Imported only when a server loads the extension, so ``import jupyter_envs`` (in kernels,
    where jupyter_server may be missing) never imports jupyter_server or tornado.
    """
    from .server import JupyterEnvsApp

    return [{"module": "jupyter_envs.server", "app": JupyterEnvsApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """For ``jupyter labextension develop``: where the prebuilt labextension is."""
    return [{"src": "labextension", "dest": "jupyter-envs"}]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext jupyter_envs``: register the ``%%env`` and ``%envs`` magics."""
    from .magics import register

    register(ipython)
