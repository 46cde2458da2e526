"""The spec layer: what an environment is, as pure data.

The :class:`Environment` object and its sections, the readers for requirements.txt /
environment.yml / Dockerfile text, validation and hashing. Nothing here builds, runs or stores
anything, and nothing here imports a layer above it (a test enforces it): the user-facing actions
(``Environment.build()``, ``register()``, ``activate()``...) are bound by the package's top level
(see :mod:`jupyter_envs.spec._binding`).
"""

from ._conda import CondaDependencies
from ._environment import Environment
from ._sections import DockerSection, PythonSection, Resources

__all__ = ["CondaDependencies", "DockerSection", "Environment", "PythonSection", "Resources"]
