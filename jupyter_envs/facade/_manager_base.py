"""The manager's verbs that do not build: read, export, remove, clean up.

:class:`~jupyter_envs.facade.manager.EnvManager` adds building to these (split off only to keep
each module readable); both work on one :class:`~jupyter_envs.engines.store.Workspace`, the
store.
"""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engines.builders import get_builder
from ..engines.kernels.kernelspec import remove_kernelspec
from ..engines.store import BuildRecord, EnvQuery, Page, PushRecord, VersionRecord, Workspace
from ..errors import NotFoundError
from ..spec import curated
from ..spec._environment import Environment
from . import cluster
from ._maintenance import collect_garbage, export_text, record_env
from ._types import Garbage

if TYPE_CHECKING:
    from ..engines.kernels.k8s import K8sSettings
    from .cluster import Placement

__all__ = ["ManagerBase"]


class ManagerBase:
    """The environments registered in one :class:`Workspace` (the store), and what can be done
    to them without building."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.ws = workspace if workspace is not None else Workspace.default()

    def list(self) -> dict[str, Environment]:
        """Every registered environment, name → latest version."""
        return {item.record.name: record_env(item.record) for item in self.ws.page().items}

    def page(self, query: EnvQuery | None = None) -> Page:
        """Registered environments (latest versions) matching ``query``: filters and a page."""
        return self.ws.page(query)

    def get(self, name: str, version: int | None = None) -> Environment:
        """A registered environment (latest version by default)."""
        return record_env(self.ws.get(name, version))

    def record(self, name: str, version: int | None = None) -> VersionRecord:
        """The catalogue record of a version (lock, kernel, artifact, timings)."""
        return self.ws.get(name, version)

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        """All versions of ``name``; NotFoundError if there are none."""
        found = self.ws.versions(name)
        if not found:
            raise NotFoundError(f"no environment named '{name}' is registered")
        return found

    def remove(self, name: str, version: int | None = None) -> builtins.list[VersionRecord]:
        """Unregister ``name`` (or one version) and delete its kernelspecs and files.

        A name that was never registered but has files (a failed first build killed before it
        cleaned up, or one of an older version that left its folder) has them removed, and an
        empty list is returned; a name with neither raises NotFoundError.
        """
        with self.ws.build_lock(name):
            if version is None and not self.ws.versions(name) and self._leftovers(name):
                for path in self._leftovers(name):
                    shutil.rmtree(path, ignore_errors=True)
                return []
            removed = self.ws.delete(name, version)
            for record in removed:
                if record.kernel_name:
                    remove_kernelspec(self.ws.kernels_dir, record.kernel_name)
                if record.artifact:
                    get_builder(record.backend).remove(Path(record.artifact))
            if version is None:
                shutil.rmtree(self.ws.env_dir(name), ignore_errors=True)
                shutil.rmtree(self.ws.root / "logs" / name, ignore_errors=True)
        return removed

    def _leftovers(self, name: str) -> builtins.list[Path]:
        """The folders an unregistered ``name`` still has in the store."""
        candidates = (self.ws.env_dir(name), self.ws.root / "logs" / name)
        return [path for path in candidates if path.is_dir()]

    def names(self) -> builtins.list[str]:
        """The names of every registered environment, sorted."""
        return self.ws.names()

    def spec_named(self, name: str) -> Environment:
        """The latest registered spec of ``name``, else the curated one of that name."""
        try:
            return self.get(name)
        except NotFoundError:
            if name not in curated.names():
                raise NotFoundError(
                    f"no environment named '{name}' is registered, and no curated environment "
                    f"has that name (curated: {', '.join(curated.names())})"
                ) from None
            return curated.get(name)

    def gc(self, *, remove: bool = True) -> builtins.list[Garbage]:
        """Docker leftovers: containers of kernels whose server died, then images that no
        registered version of this store uses any more (``remove=False`` only lists them).

        Only images labelled by jupyter-envs and named after an environment this store has
        built are considered, so another store's images on the same engine are left alone.
        """
        return collect_garbage(self.ws, remove=remove)

    def export(self, name: str, version: int | None = None, fmt: str = "lock") -> str:
        """A version as text: ``lock`` (exact versions), ``requirements``, ``conda`` or ``json``."""
        return export_text(self.ws.get(name, version), fmt)

    def disk_usage(self, record: VersionRecord) -> int | None:
        """Bytes a version's folder takes (a venv: files counted once per path, hard-linked
        bytecode included); None when it has none here (a Docker version lives in the engine)."""
        if not record.artifact or record.backend == "docker":
            return None
        root = Path(record.artifact)
        if not root.is_dir():
            return None
        total = 0
        for folder, _dirs, files in os.walk(root):
            for file in files:
                try:
                    total += os.lstat(os.path.join(folder, file)).st_size
                except OSError:
                    continue  # removed meanwhile
        return total

    def where(self, name: str | None = None) -> builtins.list[Placement]:
        """Where each environment's (or ``name``'s) kernel can run (see :mod:`.cluster`)."""
        return cluster.where(self, name)

    def k8s_pod(
        self,
        name: str,
        version: int | None = None,
        *,
        image: str | None = None,
        settings: K8sSettings | None = None,
    ) -> dict[str, Any]:
        """The checked Kubernetes pod of a Docker environment's kernel."""
        return cluster.k8s_pod(self, name, version, image=image, settings=settings)

    def k8s_kernelspec(
        self,
        name: str,
        folder: Path,
        version: int | None = None,
        *,
        image: str | None = None,
        settings: K8sSettings | None = None,
    ) -> tuple[Path, dict[str, Any]]:
        """Write a KubernetesProvisioner kernelspec for ``name`` under ``folder``."""
        return cluster.k8s_kernelspec(self, name, folder, version, image=image, settings=settings)

    def pushes(self, name: str, version: int | None = None) -> builtins.list[PushRecord]:
        """Where versions of ``name`` (or one version) were pushed, newest first."""
        return self.ws.pushes(name, version)

    def builds(self, name: str) -> builtins.list[BuildRecord]:
        """Every build attempt of ``name`` (failed and running ones included), oldest first."""
        return self.ws.builds(name)

    def log_path(self, name: str) -> Path:
        """The log of the latest build of ``name`` (failed ones included)."""
        builds = self.ws.builds(name)
        if not builds:
            raise NotFoundError(f"no build of '{name}' has been recorded")
        return Path(builds[-1].log_path)
