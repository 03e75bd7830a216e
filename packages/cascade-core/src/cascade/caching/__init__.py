"""Caching policies and stores: skip a task whose result is already known.

``FileExistenceCache(target)`` skips a task whose output file exists; ``InputHashCache()``
reuses a result stored under a stable hash of the task and its inputs, across runs and
processes. Cached values are pickled: only point a cache at a directory you trust, as loading a
pickle can run code.

Names are loaded on first use, so declaring a task (which imports ``cascade.spec.cache_policy``)
stays cheap; hashing and the stores load when a policy first runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cascade.spec.cache_policy import CacheContext, CacheMiss, CachePolicy, CacheWarning

if TYPE_CHECKING:
    from cascade.caching.api import cache_stats, clear_cache
    from cascade.caching.file_target import FileExistenceCache
    from cascade.caching.hashing import UnhashableInputError, stable_hash
    from cascade.caching.input_hash import InputHashCache
    from cascade.caching.memory_store import MemoryStore
    from cascade.caching.store import (
        CacheStats,
        CacheStore,
        DirectoryStore,
        TaskCacheStats,
        default_cache_dir,
    )

_LAZY = {
    "FileExistenceCache": "cascade.caching.file_target",
    "InputHashCache": "cascade.caching.input_hash",
    "cache_stats": "cascade.caching.api",
    "clear_cache": "cascade.caching.api",
    "CacheStats": "cascade.caching.store",
    "CacheStore": "cascade.caching.store",
    "DirectoryStore": "cascade.caching.store",
    "MemoryStore": "cascade.caching.memory_store",
    "TaskCacheStats": "cascade.caching.store",
    "default_cache_dir": "cascade.caching.store",
    "UnhashableInputError": "cascade.caching.hashing",
    "stable_hash": "cascade.caching.hashing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cascade.caching' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CacheContext",
    "CacheMiss",
    "CachePolicy",
    "CacheStats",
    "CacheStore",
    "CacheWarning",
    "DirectoryStore",
    "FileExistenceCache",
    "InputHashCache",
    "MemoryStore",
    "TaskCacheStats",
    "UnhashableInputError",
    "cache_stats",
    "clear_cache",
    "default_cache_dir",
    "stable_hash",
]
