"""The in-memory cache store: entries kept in this process only, behind the store name
``"memory"`` (for tests, and for caching within one process)."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cascade.caching.store import KEY_PARTS_PREFIX, CacheStats, TaskCacheStats, _Counters


@dataclass
class _MemoryEntry:
    payload: bytes
    task: str | None
    expires: float | None


class MemoryStore:
    """Entries kept in this process only, pickled on write so a later change to a returned
    object does not change the cached result. For tests and for caching within one process."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._entries: dict[str, _MemoryEntry] = {}
        self._lock = threading.Lock()
        self._counters = _Counters()

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
        counters = self._counters if not key.startswith(KEY_PARTS_PREFIX) else _Counters()
        if entry is None or (entry.expires is not None and entry.expires <= self.clock()):
            counters.misses += 1
            return False, None
        counters.hits += 1
        return True, pickle.loads(entry.payload)

    def set(
        self, key: str, value: Any, ttl: float | None = None, *, task: str | None = None
    ) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        expires = None if ttl is None else self.clock() + ttl
        with self._lock:
            self._entries[key] = _MemoryEntry(payload, task, expires)
        if not key.startswith(KEY_PARTS_PREFIX):
            self._counters.writes += 1

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self, task: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, e in self._entries.items() if task is None or e.task == task]
            for key in doomed:
                del self._entries[key]
        return sum(not key.startswith(KEY_PARTS_PREFIX) for key in doomed)

    def stats(self) -> CacheStats:
        now = self.clock()
        with self._lock:
            entries = [e for k, e in self._entries.items() if not k.startswith(KEY_PARTS_PREFIX)]
        tasks: dict[str, list[int]] = {}
        for entry in entries:
            per_task = tasks.setdefault(entry.task or "<unknown>", [0, 0])
            per_task[0] += 1
            per_task[1] += len(entry.payload)
        return CacheStats(
            directory=None,
            entries=len(entries),
            bytes=sum(len(e.payload) for e in entries),
            expired=sum(1 for e in entries if e.expires is not None and e.expires <= now),
            tasks={name: TaskCacheStats(n, size) for name, (n, size) in sorted(tasks.items())},
            hits=self._counters.hits,
            misses=self._counters.misses,
            writes=self._counters.writes,
            errors=self._counters.errors,
        )


_shared_memory: MemoryStore | None = None
_shared_memory_lock = threading.Lock()


def shared_memory_store() -> MemoryStore:
    """The process-wide ``MemoryStore`` behind the store name ``"memory"``, so that
    ``InputHashCache(store="memory")``, ``clear_cache(store="memory")`` and
    ``cache_stats(store="memory")`` all see the same entries."""
    global _shared_memory
    with _shared_memory_lock:
        if _shared_memory is None:
            _shared_memory = MemoryStore()
        return _shared_memory


__all__ = ["MemoryStore", "shared_memory_store"]
