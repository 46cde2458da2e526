"""Merging entry-point plug-ins into an ordered chain of built-ins (builders, kernel runtimes)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol, TypeVar

from ..errors import EnvsError

__all__ = ["merge_plugins"]


class Named(Protocol):
    """A plug-in: anything with a ``name``."""

    @property
    def name(self) -> str:
        """The name it is chosen by (and replaces a built-in of the same name by)."""


P = TypeVar("P", bound=Named)


def merge_plugins(chain: list[P], group: str, kind: str, *, insert_at: int) -> list[P]:
    """``chain`` with the plug-ins of entry-point ``group`` merged in: one named like a built-in
    replaces it in place, a new one is inserted at ``insert_at`` (negative counts from the end).

    Entry points of jupyter_envs itself are already in the chain. A plug-in that fails to load
    raises an EnvsError naming it (``kind`` says what it is, for the message).
    """
    for ep in entry_points(group=group):
        if ep.value.startswith("jupyter_envs."):
            continue  # our own, already in the chain
        try:
            plugin: P = ep.load()()
        except Exception as exc:  # say which plug-in broke, not just that something did
            raise EnvsError(
                f"{kind} plug-in '{ep.name}' ({ep.value}) failed to load: {exc}"
            ) from exc
        names = [p.name for p in chain]
        if plugin.name in names:
            chain[names.index(plugin.name)] = plugin
        else:
            chain.insert(insert_at if insert_at >= 0 else len(chain) + 1 + insert_at, plugin)
    return chain
