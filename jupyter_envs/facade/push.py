"""Push a Docker environment's image to a registry, record it, and write its Swarm kernelspec.

``EnvManager.push`` (and a build whose environment names a registry, or under a server whose
``registry`` setting names one) comes here. Only a push the registry confirmed with a digest is
recorded; then the version gets a second kernelspec, ``jenv-<name>-v<N>-swarm``, whose kernel
runs as a Swarm service of exactly that digest
(:class:`~jupyter_envs.engines.kernels.swarm_provisioner.SwarmKernelProvisioner`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines import docker as _docker
from ..engines.builders.docker import read_image_json
from ..engines.kernels.kernelspec import swarm_kernel_name, write_kernel_json
from ..engines.registry import REGISTRY_VAR, push_image, registry_reference
from ..engines.store import PushRecord, VersionRecord
from ..errors import RegistryError, SpecError
from ..events import Event, LogLine, Progress
from ..spec._fields import check_registry

if TYPE_CHECKING:
    from ._manager_base import ManagerBase

__all__ = ["push_version", "swarm_kernelspec"]


def _local_image(record: VersionRecord) -> tuple[str, str]:
    if record.backend != "docker" or not record.artifact:
        raise SpecError(
            f"'{record.name}' v{record.version} is a {record.backend} environment: only images "
            "are pushed; give it a base image (Environment(..., base_image=...)) to build one",
            field="registry",
        )
    info = read_image_json(Path(record.artifact))
    return str(info["tag"]), str(info.get("python") or "python3")


def push_version(
    manager: ManagerBase,
    name: str,
    version: int | None = None,
    *,
    registry: str | None = None,
    default: str | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> PushRecord:
    """Push ``name`` v``version`` (latest) to ``registry`` (else its spec's, else ``default``).

    Returns the recorded push. Raises :class:`RegistryError` (nothing recorded, the version
    stays usable here) or :class:`SpecError` (not an image, no registry named).
    """
    sink = on_event or (lambda _event: None)
    record = manager.record(name, version)
    target = check_registry(registry) or check_registry(record.spec.get("registry"))
    target = target or default
    if not target:
        raise SpecError(
            f"no registry to push '{name}' to: name one (--registry HOST:PORT/PATH, "
            f"Environment(..., registry=...)), or set {REGISTRY_VAR} / the server's "
            "JupyterEnvsApp.registry",
            field="registry",
        )
    image, python = _local_image(record)
    reference = registry_reference(target, record.name, record.version, record.spec_hash)
    sink(Progress("push", 0.0, f"pushing {record.name} v{record.version} to {reference}"))
    client = _docker.connect(None, purpose="to push the image")
    try:
        pushed = push_image(
            client,
            image,
            reference,
            environ=os.environ,
            on_progress=lambda f, m: sink(Progress("push", f, m)),
            on_line=lambda line: sink(LogLine(line)),
        )
    except RegistryError as exc:
        exc.args = (
            f"{exc} — {record.name} v{record.version} is built and usable on this machine; "
            "nothing was recorded as pushed",
        )
        raise
    finally:
        client.close()
    done = manager.ws.record_push(
        record.name, record.version, target, pushed.reference, pushed.digest
    )
    if record.kernel_name:
        swarm_kernelspec(manager, record, done, python)
    sink(LogLine(f"Pushed {done.pinned}"))
    sink(Progress("push", 1.0, f"pushed {record.name} v{record.version} to {target}"))
    return done


def swarm_kernelspec(
    manager: ManagerBase, record: VersionRecord, pushed: PushRecord, python: str
) -> str:
    """Write the version's Swarm kernelspec from its container kernelspec; return its name."""
    assert record.kernel_name
    source = manager.ws.kernels_dir / record.kernel_name / "kernel.json"
    spec: dict[str, Any] = json.loads(source.read_text())
    provisioner = spec.setdefault("metadata", {}).setdefault("kernel_provisioner", {})
    from ..engines.kernels.swarm_provisioner import SWARM_PROVISIONER_NAME

    provisioner["provisioner_name"] = SWARM_PROVISIONER_NAME
    provisioner["config"] = {
        **(provisioner.get("config") or {}),
        "image": pushed.pinned,
        "python": python,
    }
    spec["metadata"].setdefault("jupyter_envs", {})["runtime"] = "swarm"
    spec["metadata"]["jupyter_envs"]["registry"] = pushed.registry
    spec["display_name"] = f"{spec.get('display_name') or record.name} on Swarm"
    # Clients that ignore provisioners cannot start a service: they get told so.
    spec["argv"] = [sys.executable, "-m", "jupyter_envs.engines.kernels.swarm_provisioner"]
    name = swarm_kernel_name(record.kernel_name)
    write_kernel_json(manager.ws.kernels_dir, name, spec)
    return name
