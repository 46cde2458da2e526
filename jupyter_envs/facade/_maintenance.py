"""The façade's verbs that read the catalogue as text or clean the engine: export and gc."""

from __future__ import annotations

import json

from ..engines.store import VersionRecord, Workspace
from ..errors import NotFoundError, SpecError
from ..spec._conda import CondaDependencies
from ..spec._environment import Environment
from ._types import Garbage

__all__ = ["EXPORT_FORMATS", "collect_garbage", "export_text", "record_env"]


def record_env(record: VersionRecord) -> Environment:
    """The Environment a catalogue record holds, with its version number."""
    env = Environment.from_dict(record.spec)
    env.version = record.version
    return env


#: What ``export`` writes: exact versions; the spec as requirements.txt, environment.yml or
#: JSON; a PEP 723 block; a PEP 751 pylock.toml.
EXPORT_FORMATS = ("lock", "requirements", "conda", "json", "pep723", "pylock")


def export_text(record: VersionRecord, fmt: str) -> str:
    """A version as text in one of :data:`EXPORT_FORMATS`: ``lock`` (exact versions),
    ``requirements``, ``conda``, ``json``, ``pep723`` (an inline script block pinning the
    lock's versions) or ``pylock`` (PEP 751, with every file's URL and hash)."""
    env = record_env(record)
    if fmt == "lock":
        if not record.lock:
            raise NotFoundError(
                f"'{record.name}' v{record.version} has not been built, so it has no lock"
            )
        return record.lock
    if fmt == "requirements":
        # Constraints have no place in one requirements file: listed as comments, to see them.
        constraints = [f"# constraint: {c}" for c in env.pip_constraints]
        lines = [*env.all_pip_options(), *constraints, *env.all_pip_requirements()]
        return "\n".join(lines) + "\n"
    if fmt == "conda":
        conda = env.python.conda_dependencies or CondaDependencies.create(
            pip_packages=env.all_pip_requirements(), python_version=env.effective_python()
        )
        conda.name = env.name
        return conda.serialize_to_string()
    if fmt == "json":
        return json.dumps(env.to_dict(), indent=2) + "\n"
    if fmt in ("pep723", "pylock") and record.backend == "conda":
        # Both formats describe pip packages only: the conda records would be silently lost.
        raise SpecError(
            f"'{record.name}' is a conda environment: {fmt} cannot hold its conda packages "
            "(export --format lock gives an explicit spec with its pip pins)",
            field="format",
        )
    if fmt == "pep723":
        from .interop import pep723_block

        return pep723_block(env, record.lock, record.python_version)
    if fmt == "pylock":
        from ..engines.uvlock import pylock

        if not record.lock:
            raise NotFoundError(
                f"'{record.name}' v{record.version} has not been built, so it has no lock"
            )
        return pylock(record.lock, env.all_pip_options(), record.python_version)
    raise SpecError(
        f"unknown export format {fmt!r} (use {', '.join(EXPORT_FORMATS)})", field="format"
    )


def collect_garbage(ws: Workspace, *, remove: bool) -> list[Garbage]:
    """See :meth:`~jupyter_envs.facade.manager.EnvManager.gc`."""
    from ..engines import docker
    from ..engines.kernels.reaper import gc

    found = [
        Garbage(
            "container",
            item.name,
            f"kernel {item.kernel_id}, env {item.env_name}, server pid {item.server_pid} gone",
        )
        for item in gc(remove=remove)
    ]
    client = docker.connect(purpose="to look for unused images")
    try:
        known = {(r.name, r.spec_hash) for name in ws.names() for r in ws.versions(name)}
        ever = set(ws.names()) | ws.built_names()
        for image in client.images.list(filters={"label": docker.LABEL_ENV}):
            labels = image.labels or {}
            env = labels.get(docker.LABEL_ENV, "")
            if env not in ever or (env, labels.get(docker.LABEL_SPEC_HASH, "")) in known:
                continue
            if remove:
                client.images.remove(image.id, force=True)
            found.append(Garbage("image", ", ".join(image.tags) or image.short_id, f"env {env}"))
    finally:
        client.close()
    return found
