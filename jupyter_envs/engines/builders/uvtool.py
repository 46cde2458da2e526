"""Finding uv and the environment it runs in: shared by the uv builder and by what runs uv for
other tools' lock formats (:mod:`jupyter_envs.engines.uvlock`)."""

from __future__ import annotations

import os
import shutil

from . import pipconfig

__all__ = ["find_uv", "uv_environment"]


def find_uv() -> str | None:
    """The uv executable: ``JUPYTER_ENVS_UV``, the one installed with this Python, or PATH."""
    explicit = os.environ.get("JUPYTER_ENVS_UV")
    if explicit:
        return explicit
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def uv_environment() -> tuple[dict[str, str], dict[str, str]]:
    """The environment uv runs in (the host's pip configuration as uv's variables), and the
    pip settings it honours (to tell the user)."""
    env = dict(os.environ)
    # A kernel started inside another venv must not make uv install into that one.
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME"):
        env.pop(var, None)
    extra = pipconfig.uv_environment(env)
    env.update(extra)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env["NO_COLOR"] = "1"
    return env, pipconfig.pip_settings(env)
