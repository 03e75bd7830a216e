"""Caching policies and stores. Cached values are pickled: only point a cache at a directory
you trust, as loading a pickle can run code."""

from __future__ import annotations

from cascade.caching.policies import (
    CacheContext,
    CachePolicy,
    FileExistenceCache,
    InputHashCache,
    cache_stats,
    clear_cache,
)

__all__ = [
    "CacheContext",
    "CachePolicy",
    "FileExistenceCache",
    "InputHashCache",
    "cache_stats",
    "clear_cache",
]
