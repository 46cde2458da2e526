"""A registered version as a notebook carries it, and rebuilding one from a notebook.

:func:`carried` makes the record the notebook gets when it switches to a version;
:func:`restore` builds the environment a notebook carries, from its lock (the same resolved
versions, even when newer ones were published since), or from its spec when asked to re-resolve.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from ..engines import condalock
from ..engines.builders import choose_builder
from ..engines.builders.dockerfile import BASE_IMAGE_LINE, base_image_line, locked_base
from ..engines.store import PushRecord, VersionRecord
from ..errors import BuildError, EnvsError, SpecError
from ..events import Event
from ..spec._carried import METADATA_KEY, Carried
from ..spec._environment import Environment
from ._types import BuildResult

if TYPE_CHECKING:
    from .manager import EnvManager

__all__ = ["RestorePlan", "carried", "machine_platform", "plan", "read_notebook", "restore"]

#: The index an installer uses when nothing configures another one.
DEFAULT_INDEX = "https://pypi.org/simple"


def machine_platform() -> str:
    """This machine's platform as the record writes it (``linux-x86_64``)."""
    return f"{sys.platform}-{platform.machine()}"


def carried(record: VersionRecord, pushes: Sequence[PushRecord] = ()) -> Carried:
    """The notebook record of a built version (on this machine, which built it), with where
    its image was pushed."""
    return Carried(
        env=record.name,
        version=record.version,
        spec_hash=record.spec_hash,
        backend=record.backend,
        spec=record.spec,
        lock=record.lock,
        python=record.python_version,
        platform=machine_platform(),
        images=tuple(
            {"registry": p.registry, "reference": p.reference, "digest": p.digest} for p in pushes
        ),
    )


def read_notebook(path: str | Path) -> Carried:
    """The environment a notebook carries; SpecError when it has none or a bad one.

    Ours (``metadata["jupyter_envs"]``) first; else a juv notebook (a PEP 723 cell, locked by
    ``metadata["uv.lock"]``); a ``.py`` file is read as a PEP 723 script (a marimo sandbox
    notebook, a ``uv run`` script). See :mod:`.interop`.
    """
    from . import interop

    notebook = Path(path)
    if notebook.suffix == ".py":
        return interop.from_script(notebook)
    try:
        data = json.loads(notebook.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read {notebook}: {exc.strerror}", field="notebook") from None
    except ValueError as exc:
        raise SpecError(
            f"{notebook} is not a notebook (not JSON: {exc})", field="notebook"
        ) from None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if isinstance(metadata, dict) and METADATA_KEY in metadata:
        return Carried.from_metadata(metadata[METADATA_KEY])
    juv = interop.from_juv_notebook(notebook, data) if isinstance(data, dict) else None
    if juv is not None:
        return juv
    raise SpecError(
        f"{notebook} carries no environment: switch it to one with %%env or "
        "%envs activate, and save it (a juv notebook's PEP 723 cell is read too)",
        field="notebook",
    )


def restore(
    manager: EnvManager,
    record: Carried,
    *,
    name: str | None = None,
    re_resolve: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> BuildResult:
    """Build the environment ``record`` describes.

    From the lock by default, so the versions are those of the first machine; with
    ``re_resolve``, from the spec (newest versions the spec allows). An environment already
    registered here with the same spec hash is reused as it is.
    """
    env = record.environment(name)
    lock = None if re_resolve else record.lock
    return manager.build(env, on_event=on_event, lock=lock)


@dataclass(frozen=True)
class RestorePlan:
    """What restoring a carried environment here would do, for the user to see first."""

    record: Carried
    #: The environment to build (under the name it will have here).
    env: Environment
    #: True: the locked versions are installed; False: the spec is resolved anew.
    from_lock: bool
    #: Whether the builder it needs here can install a lock (else only a re-resolve works).
    lock_usable: bool
    #: What gets installed: the locked pins (without their hashes), or the spec's requirements
    #: (conda ones first).
    installs: tuple[str, ...]
    channels: tuple[str, ...]
    pip_options: tuple[str, ...]
    local_paths: tuple[str, ...]
    base_image: str | None
    #: What differs from this machine, or could surprise: one sentence each.
    warnings: tuple[str, ...]
    #: A ready version here with the same spec (nothing to build: switch to it).
    existing: VersionRecord | None

    def notes(self) -> list[str]:
        """The plan as lines of text (what ``jupyter envs restore`` prints before building)."""
        record = self.record
        head = f"the notebook carries {record.env} v{record.version} ({record.backend} builder"
        head += f", Python {record.python}, built on {record.platform})" if record.python else ")"
        lines = [head]
        if self.existing is not None:
            lines.append(
                f"already here as {self.existing.name} v{self.existing.version} "
                f"(kernel {self.existing.kernel_name})"
            )
            return lines
        if self.from_lock:
            lines.append(
                f"installing its {len(self.installs)} locked versions (--re-resolve: from its spec)"
            )
        else:
            lines.append(f"resolving its spec anew: {', '.join(self.installs) or 'nothing'}")
        lines.extend(f"conda channel: {channel}" for channel in self.channels)
        lines.extend(f"installer option from the notebook: {o}" for o in self.pip_options)
        if self.base_image:
            lines.append(f"base image: {self.base_image}")
        lines.extend(
            f"its image was pushed: {i['reference']}@{i['digest']} (a cluster can pull it as is)"
            for i in record.images
        )
        lines.extend(f"note: {warning}" for warning in self.warnings)
        return lines

    def to_json(self) -> dict[str, Any]:
        """The plan as the REST API shows it."""
        existing = self.existing
        return {
            "env": self.record.env,
            "version": self.record.version,
            "name": self.env.name,
            "spec_hash": self.record.spec_hash,
            "backend": self.record.backend,
            "python": self.record.python,
            "platform": self.record.platform,
            "from_lock": self.from_lock,
            "has_lock": self.record.lock is not None,
            "images": [dict(i) for i in self.record.images],
            "lock_usable": self.lock_usable,
            "installs": list(self.installs),
            "channels": list(self.channels),
            "pip_options": list(self.pip_options),
            "local_paths": list(self.local_paths),
            "base_image": self.base_image,
            "warnings": list(self.warnings),
            "existing": None
            if existing is None
            else {
                "name": existing.name,
                "version": existing.version,
                "kernel_name": existing.kernel_name,
            },
        }


def plan(
    manager: EnvManager,
    record: Carried,
    *,
    name: str | None = None,
    re_resolve: bool = False,
    environ: Mapping[str, str] | None = None,
) -> RestorePlan:
    """What :func:`restore` would build for ``record``, checked against this machine.

    Raises SpecError when the record's spec is invalid or does not match its hash. ``environ``
    (default ``os.environ``) holds this machine's installer configuration (``UV_INDEX_URL``,
    ``PIP_EXTRA_INDEX_URL``, ...): package sources the notebook names beyond it are pointed out.
    """
    env = record.environment(name)
    resolved = manager.resolve(env)
    found = manager.ws.find(resolved.name, resolved.spec_hash)
    existing = found if found is not None and found.status == "ready" else None
    from_lock = record.lock is not None and not re_resolve
    warnings = _source_warnings(env.all_pip_options(), os.environ if environ is None else environ)
    warnings.extend(_local_path_warnings(env.local_paths()))
    here = machine_platform()
    if record.platform and record.platform != here:
        warnings.append(
            f"it was built on {record.platform} and this machine is {here}: a locked wheel "
            "made for that platform only cannot be installed here"
        )
    try:
        lock_usable = choose_builder(resolved).honours_lock
    except EnvsError:
        lock_usable = True  # no builder for it here: building says why, lock or not
    if from_lock and not lock_usable:
        warnings.append(
            f"a {env.kind} environment cannot be rebuilt from its lock yet: re-resolve it from "
            "its spec (versions may differ from the first machine's)"
        )
    conda = env.python.conda_dependencies
    channels = conda.channels if conda else ()
    if from_lock:
        installs = tuple(shown for shown, _name in _lock_entries(record.lock or ""))
        if condalock.is_conda_lock(record.lock or ""):
            channels = tuple(condalock.parse(record.lock or "").channels)
    else:
        installs = (*(conda.conda_packages if conda else ()), *env.all_pip_requirements())
    warnings.extend(
        f"the conda channel {channel} is a folder of the first machine, not on this one"
        for channel in channels
        if channel.startswith("file://") and not Path(unquote(urlparse(channel).path)).is_dir()
    )
    return RestorePlan(
        record=record,
        env=env,
        from_lock=from_lock,
        lock_usable=lock_usable,
        installs=installs,
        channels=channels,
        pip_options=env.all_pip_options(),
        local_paths=env.local_paths(),
        base_image=_base_image(resolved, record.lock if from_lock else None),
        warnings=tuple(warnings),
        existing=existing,
    )


def _base_image(env: Environment, lock: str | None) -> str | None:
    """The base image a Docker restore builds on: the one the lock records (by digest when it
    has one), else the spec's."""
    if env.kind != "docker":
        return None
    ref, image_id = locked_base(lock)
    if ref is None:
        return env.docker.base_image
    return base_image_line(ref, image_id).removeprefix(BASE_IMAGE_LINE)


def _lock_entries(lock: str) -> list[tuple[str, str]]:
    """Each locked package of a lock as (what a person reads, its name): pip pins without
    their file hashes; conda records as ``name version build (channel/subdir)``."""
    if condalock.is_conda_lock(lock):
        parsed = condalock.parse(lock)
        entries = [
            (f"{p.name} {p.version} {p.build} ({p.channel}/{p.subdir})", p.name)
            for p in parsed.pins
        ]
        lines: list[str] = [*parsed.pip]
    else:
        entries, lines = [], [ln for ln in lock.splitlines() if not ln.startswith("#")]
    for line in lines:
        pin = line.split(";", 1)[0].split(" --hash", 1)[0].strip()
        if pin:
            entries.append((pin, re.split(r"[=<>!~ @\[]", pin, maxsplit=1)[0]))
    return entries


def unhonoured(lock: str, error: BuildError) -> list[str]:
    """The locked pins (``name==version``, or a conda record) that a failed build's output
    names."""
    said = " ".join((error.message, *error.log_tail)).lower()
    said = re.sub(r"[-_.]+", "-", said)
    found = []
    for shown, name in _lock_entries(lock):
        key = re.sub(r"[-_.]+", "-", name.lower())
        if key and re.search(rf"(?<![a-z0-9-]){re.escape(key)}(?![a-z0-9-])", said):
            found.append(shown)
    return found


def _configured_sources(environ: Mapping[str, str]) -> tuple[str, set[str]]:
    """This machine's index and its other package sources, from uv's and pip's variables."""

    def norm(url: str) -> str:
        return url.strip().rstrip("/")

    index = next(
        (
            environ[k]
            for k in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
            if environ.get(k)
        ),
        DEFAULT_INDEX,
    )
    extra: set[str] = set()
    for key in (
        "UV_INDEX",
        "UV_EXTRA_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "UV_FIND_LINKS",
        "PIP_FIND_LINKS",
    ):
        # uv's lists are space-separated (UV_INDEX entries may be name=url), pip's too.
        for item in environ.get(key, "").replace(",", " ").split():
            extra.add(norm(item.split("=", 1)[1] if "=" in item.split("://")[0] else item))
    return norm(index), extra


def _source_warnings(options: tuple[str, ...], environ: Mapping[str, str]) -> list[str]:
    index, extra = _configured_sources(environ)
    warnings = []
    for option in options:
        flag, _, value = option.partition(" ")
        value = value.strip().rstrip("/")
        if flag in ("--index-url", "-i") and value != index:
            warnings.append(f"it installs from the index {value}, not this machine's ({index})")
        elif flag in ("--extra-index-url", "--find-links", "-f") and value not in extra:
            warnings.append(
                f"it adds a package source this machine is not configured with: {value}"
            )
        elif flag == "--no-index":
            warnings.append("it installs without any index (--no-index): only from its find-links")
    return warnings


def _local_path_warnings(paths: tuple[str, ...]) -> list[str]:
    warnings = []
    for path in paths:
        local = Path(path.removeprefix("file://").removeprefix("file:"))
        if local.exists():
            warnings.append(
                f"it installs from the local path {path}, which exists here: check that it holds "
                "what the first machine had"
            )
        else:
            warnings.append(f"it installs from the local path {path}, which is missing here")
    return warnings
