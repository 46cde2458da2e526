"""``GET environments``: listings by query, serialized once per catalogue generation.

A panel polls the list, and many clients may ask at once; the catalogue rarely changes between
two requests. So each distinct query is read and serialized once, and served from memory until
the catalogue's generation (a counter its triggers bump on every change, by any process) moves.
"""

from __future__ import annotations

import collections
import json
import threading

from ...engines.store import EnvQuery
from ...facade.manager import EnvManager
from ._payloads import latest_json

__all__ = ["ListingCache"]


class ListingCache:
    """Serialized pages of ``GET environments``, valid for one catalogue generation."""

    def __init__(self, manager: EnvManager, size: int = 64) -> None:
        self.manager = manager
        self.size = size
        self._generation: int | None = None
        self._pages: collections.OrderedDict[EnvQuery, tuple[str, str | None]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()  # called from worker threads

    def page(self, query: EnvQuery) -> tuple[str, str | None]:
        """The JSON text of the page ``query`` asks for, and the cursor of the next page."""
        generation = self.manager.ws.generation()
        if generation is None:  # no change counter to trust: read every time
            page = self.manager.page(query)
            return json.dumps([latest_json(item) for item in page.items]), page.next_after
        with self._lock:
            if generation != self._generation:
                self._pages.clear()
                self._generation = generation
            cached = self._pages.get(query)
            if cached is not None:
                self._pages.move_to_end(query)
                return cached
        # Read after the generation: what is stored is at least as new as the key it is stored
        # under, so a change that lands in between only costs one more read later.
        page = self.manager.page(query)
        result = (json.dumps([latest_json(item) for item in page.items]), page.next_after)
        with self._lock:
            if self._generation == generation:
                self._pages[query] = result
                while len(self._pages) > self.size:
                    self._pages.popitem(last=False)
        return result
