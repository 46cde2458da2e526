"""Where an environment's kernel can run beyond this machine, and its Kubernetes kernel pod.

``jupyter envs where`` / ``%envs where`` list, per environment, the places its kernel can run:
``local`` (a venv on this machine), ``container`` (its image on this machine's Docker engine),
``swarm`` and ``k8s`` (its image on a cluster engine). ``jupyter envs k8s NAME`` renders the
kernel pod of a Docker environment, checks it against the Kubernetes client's models, and writes
a kernelspec for gateway_provisioners' KubernetesProvisioner (see
:mod:`jupyter_envs.engines.kernels.k8s`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines.builders.docker import read_image_json
from ..engines.kernels import k8s
from ..engines.kernels.kernelspec import display_name, kernel_name, swarm_kernel_name
from ..engines.store import PushRecord, VersionRecord
from ..errors import SpecError
from ._maintenance import record_env

if TYPE_CHECKING:
    from ._manager_base import ManagerBase

__all__ = ["Placement", "k8s_kernelspec", "k8s_pod", "where"]


@dataclass(frozen=True)
class Placement:
    """Where one version's kernel can run: each place with "yes" or why not."""

    name: str
    version: int
    places: dict[str, str]


def _image(manager: ManagerBase, record: VersionRecord) -> str:
    """The image a cluster pulls: as pushed (by digest) when it was, else the local tag."""
    if record.backend != "docker" or not record.artifact:
        raise SpecError(
            f"'{record.name}' v{record.version} is a {record.backend} environment: a cluster runs "
            "images; give it a base image (Environment(..., base_image=...)) to build one",
            field="backend",
        )
    pushed = manager.ws.pushes(record.name, record.version)
    if pushed:
        return pushed[0].pinned
    return str(read_image_json(Path(record.artifact))["tag"])


def _swarm(record: VersionRecord, pushed: list[PushRecord]) -> str:
    if record.backend != "docker":
        return "no: it has no image"
    if not pushed or not record.kernel_name:
        return (
            "no: its image is not in a registry (jupyter envs push NAME --registry "
            "HOST:PORT/PATH, or %%env NAME --push)"
        )
    kernel = swarm_kernel_name(record.kernel_name)
    return f"yes: kernel {kernel} runs {pushed[0].pinned} as a Swarm service"


def _module_missing(name: str) -> str | None:
    import importlib.util

    return None if importlib.util.find_spec(name) else name


def where(manager: ManagerBase, name: str | None = None) -> list[Placement]:
    """Where the latest version of each environment (or of ``name``) can run its kernel."""
    names = [name] if name else manager.names()
    missing = [m for m in (_module_missing("kubernetes"), _module_missing("gateway_provisioners"))
               if m]  # fmt: skip
    out = []
    for env_name in names:
        record = manager.record(env_name)
        places: dict[str, str] = {}
        docker = record.backend == "docker"
        places["local"] = "no: a Docker environment runs in a container" if docker else "yes"
        places["container"] = "yes" if docker else "no: it has no image"
        pushed = manager.ws.pushes(record.name, record.version) if docker else []
        places["swarm"] = _swarm(record, pushed)
        if not docker:
            places["k8s"] = "no: it has no image"
        elif missing:
            places["k8s"] = f"no: install {', '.join(missing)} (pip install 'jupyter-envs[k8s]')"
        elif pushed:
            places["k8s"] = "yes: jupyter envs k8s NAME writes its kernelspec"
        else:
            places["k8s"] = (
                "yes: jupyter envs k8s NAME writes its kernelspec (push the image first)"
            )
        out.append(Placement(record.name, record.version, places))
    return out


def k8s_pod(
    manager: ManagerBase,
    name: str,
    version: int | None = None,
    *,
    image: str | None = None,
    settings: k8s.K8sSettings | None = None,
) -> dict[str, Any]:
    """The checked kernel pod of ``name`` (its image, or ``image``: where the cluster pulls
    it from)."""
    record = manager.record(name, version)
    env = record_env(record)
    pod = k8s.render_pod(
        env, image or _image(manager, record), version=record.version, settings=settings
    )
    k8s.validate(pod)
    return pod


def k8s_kernelspec(
    manager: ManagerBase,
    name: str,
    folder: Path,
    version: int | None = None,
    *,
    image: str | None = None,
    settings: k8s.K8sSettings | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the KubernetesProvisioner kernelspec of ``name`` under ``folder``; its path and
    the pod."""
    record = manager.record(name, version)
    env = record_env(record)
    where_to = folder / f"{kernel_name(record.name, record.version)}-k8s"
    title = display_name(record.name, record.version, record.python_version or "")
    pod = k8s.write_kernelspec(
        where_to,
        env,
        image or _image(manager, record),
        display_name=f"{title} on Kubernetes",
        version=record.version,
        settings=settings,
    )
    return where_to, pod
