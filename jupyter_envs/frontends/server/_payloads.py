"""JSON in and out of the REST API: request bodies to Environments, records to plain dicts.

Nothing here knows about tornado; the functions that touch the registry are synchronous and are
called by the handlers in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ...engines.store import Latest, PushRecord, VersionRecord
from ...errors import SpecError
from ...facade.carry import RestorePlan, plan
from ...facade.manager import EnvManager
from ...spec._carried import Carried
from ...spec._environment import Environment
from ...spec._limits import SpecLimits

__all__ = [
    "CreateRequest",
    "RestoreRequest",
    "environment_json",
    "iso",
    "latest_json",
    "parse_create",
    "parse_record",
    "parse_restore",
    "version_json",
]

_CREATE_KEYS = frozenset({"name", "text", "format", "spec", "force"})


def iso(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC with a ``Z``, as jupyter_server writes times."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


def version_json(record: VersionRecord) -> dict[str, Any]:
    """One registered version. Paths on the server (artifact, log) are not exposed."""
    return {
        "name": record.name,
        "version": record.version,
        "description": record.spec.get("description", ""),
        "status": record.status,
        "backend": record.backend,
        "spec_hash": record.spec_hash,
        "kernel_name": record.kernel_name,
        "python_version": record.python_version,
        "build_seconds": record.build_seconds,
        "created": iso(record.created),
        "spec": record.spec,
        "lock": record.lock,
    }


def push_json(push: PushRecord) -> dict[str, Any]:
    """Where a version's image was pushed: ``image`` is ``reference@digest``."""
    return {
        "name": push.name,
        "version": push.version,
        "registry": push.registry,
        "reference": push.reference,
        "digest": push.digest,
        "image": push.pinned,
        "pushed": iso(push.pushed),
    }


def environment_json(manager: EnvManager, name: str) -> dict[str, Any]:
    """An environment: its latest version (with where it was pushed), plus the numbers of all
    its versions."""
    versions = manager.versions(name)
    latest = versions[-1]
    pushes = [push_json(p) for p in manager.ws.pushes(name, latest.version)]
    return {**version_json(latest), "pushes": pushes, "versions": [v.version for v in versions]}


def versions_json(manager: EnvManager, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, oldest first, each with where it was pushed."""
    pushes: dict[int, list[dict[str, Any]]] = {}
    for push in manager.ws.pushes(name):
        pushes.setdefault(push.version, []).append(push_json(push))
    return [
        {**version_json(r), "pushes": pushes.get(r.version, [])} for r in manager.versions(name)
    ]


def latest_json(item: Latest) -> dict[str, Any]:
    """An environment in a listing: the same form as :func:`environment_json`."""
    return {**version_json(item.record), "versions": list(item.versions)}


@dataclass(frozen=True)
class CreateRequest:
    """A validated ``POST environments`` body."""

    env: Environment
    spec_hash: str
    force: bool


def parse_create(
    body: object,
    manager: EnvManager,
    default_backend: str | None = None,
    limits: SpecLimits | None = None,
) -> CreateRequest:
    """Validate a ``POST environments`` body and build its Environment.

    Every problem raises :class:`SpecError` naming the field (:class:`SpecTooLargeError` over
    ``limits``, checked before the text is parsed); a backend this server cannot run raises
    :class:`BackendUnavailableError` now rather than in a build that would fail anyway. Specs
    that name no backend get ``default_backend`` when one is configured.
    """
    limits = limits or SpecLimits()
    body = _json_object(body, _CREATE_KEYS)
    name = body.get("name")
    if not isinstance(name, str):
        raise SpecError("is required and must be a string", field="name")
    text, spec, fmt = body.get("text"), body.get("spec"), body.get("format")
    if (text is None) == (spec is None):
        raise SpecError(
            "give exactly one of 'text' (requirements.txt, environment.yml or Dockerfile text) "
            "and 'spec' (an Environment.to_dict() object)"
        )
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise SpecError("must be true or false", field="force")
    if fmt is not None and (text is None or not isinstance(fmt, str)):
        raise SpecError("must be a string, and only goes with 'text'", field="format")
    if text is not None:
        if not isinstance(text, str):
            raise SpecError("must be a string", field="text")
        limits.check_text(text)
        env = Environment.from_text(name, text, fmt)
    else:
        limits.check_object(spec)
        env = _from_spec(name, spec)
    limits.check_environment(env)
    if default_backend and env.backend_named is None:
        env.backend = default_backend
    manager.builder_for(env)  # refuse now (400), not after queueing, when it cannot run here
    return CreateRequest(env=env, spec_hash=env.spec_hash, force=force)


def _from_spec(name: str, spec: object) -> Environment:
    if not isinstance(spec, dict):
        raise SpecError("must be an object (the form Environment.to_dict() returns)", field="spec")
    data = {"name": name, **spec}
    if data["name"] != name:
        raise SpecError(f"spec.name {data['name']!r} differs from name {name!r}", field="name")
    try:
        return Environment.from_dict(data)
    except SpecError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # from_dict trusts the shape of its input (it reads what to_dict wrote); a hand-written
        # body can have a list where a mapping belongs. Say so instead of failing with a 500.
        raise SpecError(f"malformed spec: {type(exc).__name__}: {exc}", field="spec") from None


_RESTORE_KEYS = frozenset({"metadata", "name", "re_resolve"})


@dataclass(frozen=True)
class RestoreRequest:
    """A validated ``POST restore`` (or ``restore/preview``) body and what it would build."""

    plan: RestorePlan
    spec_hash: str

    @property
    def lock(self) -> str | None:
        """The lock to install, or None to resolve the spec anew."""
        return self.plan.record.lock if self.plan.from_lock else None


def _json_object(body: object, known: frozenset[str], needs: str = "") -> dict[str, Any]:
    """``body`` when it is a JSON object with no key outside ``known``; else SpecError."""
    if not isinstance(body, dict):
        raise SpecError(f"the request body must be a JSON object{needs}")
    unknown = sorted(set(body) - known)
    if unknown:
        raise SpecError(f"unknown keys {unknown} (known: {sorted(known)})")
    return body


def _record(body: dict[str, Any], limits: SpecLimits) -> Carried:
    """The checked notebook record in ``body["metadata"]`` (size limits first)."""
    metadata = body.get("metadata")
    limits.check_object(metadata, field="metadata")
    record = Carried.from_metadata(metadata)
    if record.lock is not None:
        limits.check_text(record.lock, field="metadata.jupyter_envs.lock")
    return record


def parse_record(body: object, limits: SpecLimits | None = None) -> Carried:
    """Validate ``{"metadata": <a notebook's metadata.jupyter_envs>}`` (``POST juv``)."""
    return _record(_json_object(body, frozenset({"metadata"}), " with 'metadata'"),
                   limits or SpecLimits())  # fmt: skip


def parse_restore(
    body: object,
    manager: EnvManager,
    default_backend: str | None = None,
    limits: SpecLimits | None = None,
) -> RestoreRequest:
    """Validate ``{"metadata": <a notebook's metadata.jupyter_envs>, "name"?, "re_resolve"?}``.

    The record is untrusted input (a notebook from anyone): every field is checked, and its spec
    must hash to its spec hash (:meth:`Carried.from_metadata`); SpecError names the field.
    """
    limits = limits or SpecLimits()
    body = _json_object(body, _RESTORE_KEYS, " with 'metadata'")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise SpecError("must be a string when given", field="name")
    re_resolve = body.get("re_resolve", False)
    if not isinstance(re_resolve, bool):
        raise SpecError("must be true or false", field="re_resolve")
    record = _record(body, limits)
    chosen = plan(manager, record, name=name or None, re_resolve=re_resolve)
    env = chosen.env
    limits.check_environment(env)
    if default_backend and env.backend_named is None:
        env.backend = default_backend
    manager.builder_for(env)  # refuse now (400) when it cannot run here
    return RestoreRequest(plan=chosen, spec_hash=manager.resolve(env).spec_hash)
