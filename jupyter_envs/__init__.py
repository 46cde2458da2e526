"""jupyter-envs: build software environments from a notebook cell and run kernels in them.

The public API is what ``__all__`` lists (pinned by tests/test_layers.py); modules with a
leading underscore are private. The package is layered, each folder importing only those below
it: ``spec`` (what an environment is) → ``engines`` (builders, kernels, the store) → ``facade``
(the manager) → ``clients`` (the link to a server) → ``frontends`` (magics, CLI, REST).

Names are imported on first use (PEP 562): every environment kernel runs
``import jupyter_envs`` at start (``--ext=jupyter_envs``), and must not pay for the builders,
the store or YAML there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._actions import FacadeActions
from ._version import __version__
from .errors import (
    ApiError,
    BackendUnavailableError,
    BuildCancelledError,
    BuildError,
    ConflictError,
    EnvsError,
    KernelLaunchError,
    KernelStartError,
    LockNotHonouredError,
    NotFoundError,
    PythonNotFoundError,
    ReadOnlyStoreError,
    RegistryError,
    SpecError,
    SpecTooLargeError,
    StoreError,
    UsageError,
)
from .events import LogLine, Progress
from .spec._binding import bind_actions

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .engines.builders import Builder, CancelToken
    from .engines.store import Workspace
    from .facade.container import Container
    from .facade.manager import BuildResult, EnvManager
    from .frontends.panel import panel
    from .spec import CondaDependencies, DockerSection, Environment, PythonSection, Resources

__all__ = [
    "ApiError",
    "BackendUnavailableError",
    "BuildCancelledError",
    "BuildError",
    "BuildResult",
    "Builder",
    "CancelToken",
    "CondaDependencies",
    "ConflictError",
    "Container",
    "DockerSection",
    "EnvManager",
    "Environment",
    "EnvsError",
    "KernelLaunchError",
    "KernelStartError",
    "LockNotHonouredError",
    "LogLine",
    "NotFoundError",
    "Progress",
    "PythonNotFoundError",
    "PythonSection",
    "ReadOnlyStoreError",
    "RegistryError",
    "Resources",
    "SpecError",
    "SpecTooLargeError",
    "StoreError",
    "UsageError",
    "Workspace",
    "__version__",
    "load_ipython_extension",
    "panel",
]

# Where each lazily imported public name lives.
_LAZY = {
    "Builder": "engines.builders",
    "CancelToken": "engines.builders",
    "Workspace": "engines.store",
    "Container": "facade.container",
    "BuildResult": "facade.manager",
    "EnvManager": "facade.manager",
    "CondaDependencies": "spec",
    "DockerSection": "spec",
    "Environment": "spec",
    "PythonSection": "spec",
    "Resources": "spec",
    "panel": "frontends.panel",
}

bind_actions(FacadeActions())


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """jupyter_server's hook: the server extension lives in :mod:`jupyter_envs.frontends.server`.

    Imported only when a server loads the extension, so ``import jupyter_envs`` (in kernels,
    where jupyter_server may be missing) never imports jupyter_server or tornado.
    """
    from .frontends.server import JupyterEnvsApp

    return [{"module": "jupyter_envs.frontends.server", "app": JupyterEnvsApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """For ``jupyter labextension develop``: where the prebuilt labextension is."""
    return [{"src": "labextension", "dest": "jupyter-envs"}]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext jupyter_envs``: register the ``%%env`` and ``%envs`` magics."""
    from .frontends.magics import register

    register(ipython)
