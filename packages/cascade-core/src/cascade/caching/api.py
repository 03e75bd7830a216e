"""``cs.clear_cache`` and ``cs.cache_stats``: what ``cascade cache clear|info`` are built on."""

from __future__ import annotations

from typing import Any

from cascade.caching.store import CacheStats, CacheStore, resolve_store


def clear_cache(task: str | Any | None = None, store: str | CacheStore | None = None) -> int:
    """Remove cached entries and return how many were removed.

    ``task`` is a task name or a ``@cs.task`` object (only its entries go; ``None``: all).
    ``store`` is a store name, a store object, or ``None`` for the default directory
    (``$CASCADE_CACHE_DIR`` or ``.cascade/cache`` in the working directory). Entries of
    ``FileExistenceCache`` are the files tasks write and are not touched.
    """
    name = None if task is None else task if isinstance(task, str) else getattr(task, "name", None)
    if task is not None and not isinstance(name, str):
        raise TypeError(f"clear_cache: task must be a task name or a @cs.task, got {task!r}")
    return resolve_store(store, "clear_cache").clear(task=name)


def cache_stats(store: str | CacheStore | None = None) -> CacheStats:
    """What a store holds (entries, bytes, expired entries, entries and bytes per task, its
    directory) and this process's hits, misses, writes and errors on it. ``store`` is chosen as
    for ``clear_cache``; ``CacheStats.to_dict()`` gives a JSON-ready form."""
    return resolve_store(store, "cache_stats").stats()


__all__ = ["cache_stats", "clear_cache"]
