"""The kernel side of jupyter-envs inside built environments.

The magics must work in a built environment's kernel too (a user builds and switches again from
there). Installing jupyter-envs into every environment from an index would pin users to a
released version and would not work from a source checkout, so instead the running package is
copied once per content digest into the store, and each environment gets a ``.pth`` file that
puts that copy on its path. Its few dependencies are installed with the environment's own
requirements, so the resolver sees them together with the user's pins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from .._version import __version__

__all__ = [
    "KERNEL_SIDE_REQUIREMENTS",
    "PACKAGE_DIR",
    "ensure_runtime",
    "package_digest",
    "package_files",
]

#: Installed into every venv beside the user's requirements. Keep in step with pyproject.toml.
KERNEL_SIDE_REQUIREMENTS = (
    "ipykernel>=6.20",
    "jupyter_client>=8",
    "jupyter_core>=5",
    "packaging>=23",
    "PyYAML>=6",
    "traitlets>=5.9",
    "uv>=0.4",
    # The widget panel, shown again from an environment's own kernel after a switch.
    "ipywidgets>=8",
    # PEP 723 blocks and lock files are TOML (tomllib is 3.11+).
    "tomli>=1.1; python_version < '3.11'",
)

# The package root (this module lives in jupyter_envs/engines/).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The server extension and the prebuilt labextension run in the Jupyter server, never in a
# built environment's kernel.
_SKIP_DIRS = {"__pycache__", "labextension", "server"}


def package_files() -> list[Path]:
    """The files of the running package that kernels need (not the server or labextension)."""
    files: list[Path] = []
    for root, dirs, names in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        files.extend(Path(root) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo")))
    return files


@lru_cache(maxsize=1)
def package_digest() -> str:
    """A digest of the running package's files (changes whenever its code does)."""
    digest = hashlib.sha256()
    for path in package_files():
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_runtime(store_root: Path) -> Path:
    """Return a directory holding a copy of this package (made once, atomically)."""
    target = store_root / "runtime" / f"{__version__}-{package_digest()}"
    if (target / "jupyter_envs" / "__init__.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        dest = tmp / "jupyter_envs"
        for path in package_files():
            out = dest / path.relative_to(PACKAGE_DIR)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "jupyter_envs" / "__init__.py").is_file():
                raise  # not a lost race with another process: a real failure
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
