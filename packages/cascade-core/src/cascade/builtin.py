"""Cascade's own parts, registered through the same hooks a third-party plugin uses.

The plugin manager loads this module by name, as it loads an entry point, so it sits above
the layers whose parts it registers; each hook imports its part when first called, which keeps
``import cascade`` from loading thread pools, stores and multiprocessing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cascade.hookspec import hookimpl


@hookimpl
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    from cascade.executors.local import LocalExecutor, ProcessExecutor, ThreadExecutor

    register("local", LocalExecutor)
    register("threads", ThreadExecutor)
    register("processes", ProcessExecutor)


@hookimpl
def cascade_register_cache_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    from cascade.caching.memory_store import shared_memory_store
    from cascade.caching.store import DirectoryStore

    register("directory", DirectoryStore)
    register("memory", shared_memory_store)


@hookimpl
def cascade_register_run_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    from cascade.records.sqlite import SQLiteRunStore

    register("sqlite", SQLiteRunStore)


@hookimpl
def cascade_engine_created(engine: Any) -> None:
    if engine.log_level is not None:
        from cascade.logs import HumanReadableLogSubscriber

        HumanReadableLogSubscriber(engine.bus, level=engine.log_level)
