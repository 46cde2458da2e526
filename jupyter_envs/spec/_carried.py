"""What a notebook carries of its environment: ``metadata["jupyter_envs"]``, format 1.

When a notebook switches to an environment, this record goes into its metadata, so another
machine can rebuild the same environment from it (``jupyter envs restore NB.ipynb``). It holds
the spec, the exact lock, the spec hash, the builder, the Python version and the platform it was
built on; no logs, no paths of the store. It is deterministic for a version (re-saves do not
change it). ``docs/notebook-metadata.md`` describes the format.

A notebook from someone else is untrusted input: :meth:`Carried.from_metadata` checks every
field's type, the format number, and that the spec hashes to the recorded hash (a lock edited
apart from its spec, or the other way round, is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

__all__ = ["FORMAT", "METADATA_KEY", "Carried"]

#: The notebook-metadata key.
METADATA_KEY = "jupyter_envs"
#: The format number this version writes and reads.
FORMAT = 1
_FIELD = f"metadata.{METADATA_KEY}"


@dataclass(frozen=True)
class Carried:
    """An environment version as a notebook carries it."""

    env: str
    version: int
    spec_hash: str
    backend: str
    spec: dict[str, Any]
    lock: str | None
    python: str | None
    platform: str | None
    #: Where the version's image was pushed: ``{"registry", "reference", "digest"}`` each
    #: (``reference@digest`` pulls exactly the image the notebook ran on).
    images: tuple[dict[str, str], ...] = ()

    def to_metadata(self) -> dict[str, Any]:
        """The JSON object written to ``metadata["jupyter_envs"]``."""
        return {
            "format": FORMAT,
            "env": self.env,
            "version": self.version,
            "spec_hash": self.spec_hash,
            "backend": self.backend,
            "python": self.python,
            "platform": self.platform,
            "spec": self.spec,
            "lock": self.lock,
            **({"images": [dict(i) for i in self.images]} if self.images else {}),
        }

    @classmethod
    def from_metadata(cls, data: object) -> Carried:
        """Read and check ``metadata["jupyter_envs"]``; a SpecError names the field at fault."""
        if not isinstance(data, Mapping):
            raise SpecError("must be an object", field=_FIELD)
        if "format" not in data:
            raise SpecError(
                "has no 'format': it was written by a jupyter-envs without the notebook "
                "environment record (switch the notebook again to write one)",
                field=_FIELD,
            )
        if data["format"] != FORMAT:
            raise SpecError(
                f"format {data['format']!r} is not one this version reads ({FORMAT}); "
                "upgrade jupyter-envs",
                field=f"{_FIELD}.format",
            )
        record = cls(
            env=_typed(data, "env", str),
            version=_typed(data, "version", int),
            spec_hash=_typed(data, "spec_hash", str),
            backend=_typed(data, "backend", str),
            spec=_typed(data, "spec", dict),
            lock=_typed(data, "lock", str, optional=True),
            python=_typed(data, "python", str, optional=True),
            platform=_typed(data, "platform", str, optional=True),
            images=_images(data.get("images")),
        )
        if record.version < 1:
            raise SpecError("must be a version number >= 1", field=f"{_FIELD}.version")
        return record

    def environment(self, name: str | None = None) -> Any:
        """The carried spec as an :class:`Environment` (under ``name``, else its own name),
        refused when it does not hash to the recorded spec hash (edited or corrupted)."""
        from ._environment import Environment

        try:
            env = Environment.from_dict({**self.spec, "name": self.env})
        except SpecError as exc:
            raise SpecError(f"the carried spec is invalid: {exc}", field=f"{_FIELD}.spec") from None
        if env.spec_hash != self.spec_hash:
            raise SpecError(
                "the carried spec does not match its spec hash: the notebook's environment "
                "record was edited or corrupted; nothing is built from it",
                field=f"{_FIELD}.spec_hash",
            )
        return env.clone_with(name) if name and name != self.env else env


def _images(value: object) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    field = f"{_FIELD}.images"
    if not isinstance(value, list):
        raise SpecError("must be a list", field=field)
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(k), str) for k in ("registry", "reference", "digest")
        ):
            raise SpecError(
                "must be an object with the strings registry, reference and digest",
                field=f"{field}[{i}]",
            )
        out.append({k: str(item[k]) for k in ("registry", "reference", "digest")})
    return tuple(out)


def _typed(data: Mapping[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # bool is an int to Python, not a version number to anyone.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", int: "an integer", dict: "an object"}[kind]
        raise SpecError(f"must be {expected}, got {type(value).__name__}", field=f"{_FIELD}.{key}")
    return value
