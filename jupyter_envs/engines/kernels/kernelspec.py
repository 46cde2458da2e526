"""Kernelspecs for built versions.

Each built version gets ``<kernels dir>/jenv-<name>-v<N>/kernel.json``. A Jupyter server rescans
kernelspecs on every request, so a new one appears in the launcher without a restart, and a
notebook saved on ``jenv-nlp-v2`` keeps opening on exactly that version after ``nlp`` is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..store import STORE_VAR

__all__ = [
    "KERNEL_PREFIX",
    "kernel_name",
    "remove_kernelspec",
    "swarm_kernel_name",
    "write_kernel_json",
    "write_kernelspec",
]

KERNEL_PREFIX = "jenv-"


def kernel_name(env_name: str, version: int) -> str:
    """The kernelspec name of a version: ``jenv-<name>-v<N>``."""
    return f"{KERNEL_PREFIX}{env_name}-v{version}"


def display_name(env_name: str, version: int, python_version: str) -> str:
    """The name people see in the kernel picker, e.g. ``nlp v2 (Python 3.11.7)``."""
    plain = f"{env_name} v{version}"
    return f"{plain} (Python {python_version})" if python_version else plain


def write_kernelspec(
    kernels_dir: Path,
    *,
    env_name: str,
    version: int,
    spec_hash: str,
    backend: str,
    argv: list[str],
    python_version: str,
    env_vars: dict[str, str],
    store_root: Path,
    description: str = "",
    interrupt_mode: str = "signal",
    extra_metadata: dict[str, Any] | None = None,
    runtime: str = "local",
) -> str:
    """Write (or replace, atomically) the kernelspec of one version; return its name.

    ``extra_metadata`` is merged into ``metadata`` (e.g. a ``kernel_provisioner`` entry).
    """
    name = kernel_name(env_name, version)
    spec: dict[str, Any] = {
        "argv": argv,
        "display_name": display_name(env_name, version, python_version),
        "language": "python",
        # The kernel's own magics must find the same registry as the process that built it.
        "env": {**env_vars, STORE_VAR: str(store_root)},
        "interrupt_mode": interrupt_mode,
        "metadata": {
            **(extra_metadata or {}),
            "debugger": True,
            "jupyter_envs": {
                "env": env_name,
                "version": version,
                "spec_hash": spec_hash,
                "backend": backend,
                "runtime": runtime,
                "description": description,
            },
        },
    }
    write_kernel_json(kernels_dir, name, spec)
    return name


def write_kernel_json(kernels_dir: Path, name: str, spec: dict[str, Any]) -> None:
    """Write (or replace, atomically: a reader sees the old or the new one) ``name``'s
    kernel.json."""
    kernels_dir.mkdir(parents=True, exist_ok=True)
    target = kernels_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=kernels_dir))
    (tmp / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=kernels_dir))
        os.replace(target, old / name)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def swarm_kernel_name(kernel: str) -> str:
    """The Swarm kernelspec's name beside a version's kernelspec ``kernel``."""
    return f"{kernel}-swarm"


def remove_kernelspec(kernels_dir: Path, name: str) -> None:
    """Remove a kernelspec directory, and the Swarm one beside it (no error if gone)."""
    shutil.rmtree(kernels_dir / name, ignore_errors=True)
    shutil.rmtree(kernels_dir / swarm_kernel_name(name), ignore_errors=True)


def kernelspec_exists(kernels_dir: Path, name: str) -> bool:
    """True when ``<kernels_dir>/<name>/kernel.json`` exists."""
    return (kernels_dir / name / "kernel.json").is_file()
