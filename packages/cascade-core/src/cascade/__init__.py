"""Cascade: build task graphs with plain Python calls, run them on an async dataflow engine.

```python
import cascade as cs

@cs.task
def add(a, b):
    return a + b

total = add(add(1, 2), cs.Param("n", type=int))
cs.run(total, params={"n": "3"})   # 6
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, overload

from cascade._version import __version__
from cascade.bus import MessageBus
from cascade.executors import Executor, TaskCall
from cascade.graph import dry_run, visualize
from cascade.hookspec import hookimpl
from cascade.logs import HumanReadableLogSubscriber, default_handler
from cascade.plugins import PluginError, list_plugins
from cascade.resources import ResourceError
from cascade.runtime.engine import Engine
from cascade.runtime.outcome import RunFailed
from cascade.runtime.private_loop import in_running_loop, run_in_worker_thread
from cascade.spec.fold import fold
from cascade.spec.params import ParamError
from cascade.spec.policies import RetryPolicy, TaskTimeoutError
from cascade.spec.pools import Pool
from cascade.spec.resource import ResourceDefinition, inject, resource
from cascade.spec.streams import DEFAULT_BUFFER
from cascade.spec.task import LazyResult, Param, Task, task, unmapped
from cascade.testing import override_resource

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from cascade.caching import (
        CacheContext,
        CachePolicy,
        FileExistenceCache,
        InputHashCache,
        cache_stats,
        clear_cache,
    )
    from cascade.records import RecordOptions, RunStore

_T = TypeVar("_T")
_K = TypeVar("_K")


class RunOptions(TypedDict, total=False):
    """The keyword options of ``cs.run`` and ``cs.run_async`` (for type checkers: their
    overloads, which give a run's value the type of its target's, share this list)."""

    executor: str | Executor | None
    max_concurrency: int | None
    log_level: str | None
    bus: MessageBus | None
    on_failure: str
    pools: Mapping[str, int | Pool] | None
    record: bool | str | RunStore
    resume: str | None
    freeze_gc: bool
    record_options: RecordOptions | None


_LAZY = {
    "CacheContext": "cascade.caching",
    "CachePolicy": "cascade.caching",
    "FileExistenceCache": "cascade.caching",
    "InputHashCache": "cascade.caching",
    "cache_stats": "cascade.caching",
    "clear_cache": "cascade.caching",
    "RecordOptions": "cascade.records",
}


def __getattr__(name: str) -> Any:
    # Caching pulls in hashlib, pickle and the store; load it only when it is used.
    if name == "caching":
        import importlib

        return importlib.import_module("cascade.caching")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cascade' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazily loaded names are part of the API: completion and dir() list them too.
    return sorted({*globals(), *_LAZY})


@overload
async def run_async(
    target: LazyResult[_T],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> _T: ...
@overload
async def run_async(
    target: Sequence[LazyResult[_T]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> list[_T]: ...
@overload
async def run_async(
    target: Mapping[_K, LazyResult[_T]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> dict[_K, _T]: ...
async def run_async(
    target: Any,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor | None = None,
    max_concurrency: int | None = None,
    log_level: str | None = "INFO",
    bus: MessageBus | None = None,
    on_failure: str = "stop",
    pools: Mapping[str, int | Pool] | None = None,
    record: bool | str | RunStore = False,
    resume: str | None = None,
    freeze_gc: bool = False,
    record_options: RecordOptions | None = None,
) -> Any:
    """Run ``target`` inside a running event loop: ``await cs.run_async(...)``. Same options
    and result as ``cs.run``."""
    engine = Engine(
        bus=bus,
        executor=executor,
        max_concurrency=max_concurrency,
        log_level=log_level,
        freeze_gc=freeze_gc,
    )
    if log_level is None:
        return await engine.run(
            target,
            params=params,
            on_failure=on_failure,
            pools=pools,
            record=record,
            resume=resume,
            record_options=record_options,
        )
    with default_handler():
        return await engine.run(
            target,
            params=params,
            on_failure=on_failure,
            pools=pools,
            record=record,
            resume=resume,
            record_options=record_options,
        )


@overload
def run(
    target: LazyResult[_T],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> _T: ...
@overload
def run(
    target: Sequence[LazyResult[_T]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> list[_T]: ...
@overload
def run(
    target: Mapping[_K, LazyResult[_T]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> dict[_K, _T]: ...
def run(
    target: Any,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor | None = None,
    max_concurrency: int | None = None,
    log_level: str | None = "INFO",
    bus: MessageBus | None = None,
    on_failure: str = "stop",
    pools: Mapping[str, int | Pool] | None = None,
    record: bool | str | RunStore = False,
    resume: str | None = None,
    freeze_gc: bool = False,
    record_options: RecordOptions | None = None,
) -> Any:
    """Run the graph behind ``target`` and return its result.

    ``target`` is a LazyResult, a list or tuple of them (a list comes back) or a dict of them
    (a dict comes back). ``params`` fills ``cs.Param`` inputs. A fresh engine is made for the
    call with the given ``executor``, ``max_concurrency`` and human-readable logging at
    ``log_level`` (``None`` for silence): lines go to the ``cascade`` loggers, shown on stderr
    while the application has configured no logging of its own. With ``on_failure="stop"``
    (the default) the first task that raises ends the run and its exception is raised here
    unchanged; with ``"continue"`` every branch that does not depend on a failure runs to
    its end, and then ``RunFailed`` (an ``ExceptionGroup``) carries every failure and the
    results that were computed. Tasks may return LazyResults: what they return runs in the
    same run, and the task's value is what it resolves to. ``pools`` defines named pools for
    the run (``{"openai": 4}``, or ``cs.Pool(4, rate_limit="10/second")``).
    ``record=True`` records the run in the run history (``.cascade/runs.sqlite3``, or
    ``$CASCADE_HOME``; a store name, an SQLite path or a ``RunStore`` also work) and
    checkpoints its results, with each failure's traceback and what tasks log;
    ``resume="last"`` (or a run id) takes the checkpointed value of every task that succeeded
    in that run of the same target with unchanged code and inputs, and runs the rest;
    ``resume="auto"`` resumes the latest run of the target if it did not succeed and runs
    afresh otherwise. ``record_options=cs.RecordOptions(...)`` says what a recorded run
    keeps (captured logs, the checkpoint size limit, retention; see docs/history.md).
    ``freeze_gc=True`` keeps the graph out of the garbage collector's walks while it runs,
    for very large graphs (``gc.freeze()``, undone at the end; see docs/performance.md).

    Called where an event loop is already running (a Jupyter or IPython kernel, an async
    framework), the run gets a private loop in a worker thread and this call blocks until it
    ends, with the same result, logging and exceptions; interrupting it (Ctrl-C, a kernel's
    interrupt) cancels the run, tears its resources down and raises ``KeyboardInterrupt``.
    ``await cs.run_async(...)`` is the way to run on the caller's loop instead.
    """

    def main() -> Coroutine[Any, Any, Any]:
        return run_async(
            target,
            params,
            executor=executor,
            max_concurrency=max_concurrency,
            log_level=log_level,
            bus=bus,
            on_failure=on_failure,
            pools=pools,
            record=record,
            resume=resume,
            freeze_gc=freeze_gc,
            record_options=record_options,
        )

    if in_running_loop():
        return run_in_worker_thread(main)
    return asyncio.run(main())


__all__ = [
    "DEFAULT_BUFFER",
    "CacheContext",
    "CachePolicy",
    "Engine",
    "Executor",
    "FileExistenceCache",
    "HumanReadableLogSubscriber",
    "InputHashCache",
    "LazyResult",
    "MessageBus",
    "Param",
    "ParamError",
    "PluginError",
    "Pool",
    "RecordOptions",
    "ResourceDefinition",
    "ResourceError",
    "RetryPolicy",
    "RunFailed",
    "RunOptions",
    "Task",
    "TaskCall",
    "TaskTimeoutError",
    "__version__",
    "cache_stats",
    "clear_cache",
    "dry_run",
    "fold",
    "hookimpl",
    "inject",
    "list_plugins",
    "override_resource",
    "resource",
    "run",
    "run_async",
    "task",
    "unmapped",
    "visualize",
]
