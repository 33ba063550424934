"""A bounded, thread-safe LRU of search results: :class:`QueryCache`.

Encoding a query (scikit-learn TF-IDF on words and character n-grams) and scoring it against the
catalog is most of a search's CPU; the answer depends only on the query and the search index. So
the ``pool`` of most relevant items (:meth:`serving.search.TextSearch.pool`) is cached under a key
that starts with the index's ``version``: a registration or a reload builds a new index with a
new version, so entries of the old one are never read again and age out of the LRU. What a user
adds (their scores over the pool) is computed per request and never cached.

Hits and misses are counted (``hits``, ``misses``) and reported to ``on_lookup`` when one is set:
the server's ``/metrics`` counts them there (``avrec_search_cache_*``, summed over worker
processes); one cache per app, shared by every index it serves, so the counts span reloads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

DEFAULT_SIZE = 4096  # entries; one is ~1.2 kB (100 int64 indices + 100 float32 relevances)


class QueryCache:
    """Least-recently-used map with a size bound and hit/miss counts.

    Parameters
    ----------
    maxsize : int
        Entries kept; 0 disables the cache (every lookup is a miss, nothing is stored).
    on_lookup : callable, optional
        Called with True (hit) or False (miss) after every lookup.
    """

    def __init__(self, maxsize: int = DEFAULT_SIZE, on_lookup: Callable[[bool], None] | None = None) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.maxsize = int(maxsize)
        self.on_lookup = on_lookup
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        # request threads read and write concurrently; an OrderedDict's move/pop pair is not atomic
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The value stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
            else:
                self._data.move_to_end(key)
                self.hits += 1
        if self.on_lookup is not None:
            self.on_lookup(value is not None)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` (not None), evicting the least recently used entry when full."""
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
