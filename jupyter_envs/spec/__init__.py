"""The spec layer: what an environment is, as pure data.

The :class:`Environment` object and its sections, the readers for requirements.txt /
environment.yml / Dockerfile text, validation and hashing. Nothing here builds, runs or stores
anything, and nothing here imports a layer above it (a test enforces it): the user-facing actions
(``Environment.build()``, ``register()``, ``activate()``...) are bound by the package's top level
(see :mod:`jupyter_envs.spec._binding`).

Names are imported on first use: ``import jupyter_envs`` (every environment kernel's start) must
not pay for the YAML and requirement parsers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._conda import CondaDependencies
    from ._environment import Environment
    from ._sections import DockerSection, PythonSection, Resources

__all__ = ["CondaDependencies", "DockerSection", "Environment", "PythonSection", "Resources"]

_LAZY = {
    "CondaDependencies": "._conda",
    "DockerSection": "._sections",
    "Environment": "._environment",
    "PythonSection": "._sections",
    "Resources": "._sections",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
