"""Cascade's own parts, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cascade.plugins import hookimpl


@hookimpl
def cascade_register_executors(register: Callable[[str, Callable[[], Any]], None]) -> None:
    from cascade.executors.local import LocalExecutor, ProcessExecutor, ThreadExecutor

    register("local", LocalExecutor)
    register("threads", ThreadExecutor)
    register("processes", ProcessExecutor)


@hookimpl
def cascade_register_cache_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    from cascade.caching.store import DirectoryStore, shared_memory_store

    register("directory", DirectoryStore)
    register("memory", shared_memory_store)


@hookimpl
def cascade_engine_created(engine: Any) -> None:
    if engine.log_level is not None:
        from cascade.runtime.subscribers import HumanReadableLogSubscriber

        HumanReadableLogSubscriber(engine.bus, level=engine.log_level)
