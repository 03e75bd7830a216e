"""What runs inside the Dask workers: the call wrapper, resources kept per run, interruption.

Every Cascade call is submitted to Dask as ``run_call(spec, fn, args, kwargs)``. Upstream
results arrive as values (Dask resolved the futures in ``args``/``kwargs`` on the worker), so
data moves worker to worker. The wrapper

- sets up the resources the call injects, once per run and worker (``scope="task"`` ones around
  the call), and keeps them until the driver calls ``teardown_runs`` at the end of the run,
  with the core's resource lifecycle (``plan_resources``, ``ResourceStack``);
- runs the function inside ``worker_context`` so tracing context travels with the call; async
  functions run on one event loop per worker process (where async resources live too);
- publishes the start and end times it measured on the Dask event topic ``TIMES_TOPIC``, which
  reaches the driver before the task's completion does;
- registers itself so ``interrupt_calls`` can stop it when the driver cancels the call: an
  async call is cancelled on its loop, a sync call gets ``TaskInterrupted`` raised in its thread
  at the next Python instruction (code blocked inside C, such as ``time.sleep(10)``, stops when
  that returns).

This module is imported on the workers, so it keeps to the standard library, ``cascade`` and
``distributed``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cascade import ResourceDefinition, ResourceError
from cascade.executors import (
    PortableFunction,
    ResourceStack,
    WorkerSetup,
    plan_resources,
    worker_context,
)
from cascade.graph import returns_graph

logger = logging.getLogger("cascade.dask")

#: The Dask event topic that carries ``[key, start, end]`` of every finished call.
TIMES_TOPIC = "cascade.task-times"


class TaskInterrupted(BaseException):
    """Raised inside a call that the driver cancelled (a timeout, a failed or cancelled run).

    A ``BaseException`` so that ``except Exception`` in task code does not swallow it."""


@dataclass(frozen=True)
class CallSpec:
    """Everything about one call that is not the function and its arguments."""

    key: str
    task_name: str
    run_id: str
    is_async: bool
    carrier: dict[str, str] = field(default_factory=dict)
    worker_setup: list[WorkerSetup] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    providers: dict[str, ResourceDefinition] = field(default_factory=dict)
    report_times: bool = True


# -- task functions and arguments ------------------------------------------------------------


class Literal:
    """A container argument that holds no Dask future, passed so that Dask does not walk it
    looking for one (a literal that contains itself would never end); ``run_call`` unwraps
    it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        return (Literal, (self.value,))


def _unwrap(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if any(type(a) is Literal for a in args):
        args = tuple(a.value if type(a) is Literal else a for a in args)
    if any(type(v) is Literal for v in kwargs.values()):
        kwargs = {k: v.value if type(v) is Literal else v for k, v in kwargs.items()}
    return args, kwargs


class TaskFunction(PortableFunction):
    """A task's function, pickled by reference on every hop (Dask's scheduler unpickles a task
    and pickles it again for the worker). Functions of the driver's ``__main__`` go by value
    with cloudpickle: Dask workers cannot import the driver's main module."""

    __slots__ = ()
    main_by_reference: ClassVar[bool] = False


# -- per worker process state ---------------------------------------------------------------

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_runs: dict[str, _RunResources] = {}
_running: dict[str, _Running] = {}
# Keys the driver cancelled, remembered so that a call which starts on this worker after the
# interrupt (its cancellation may arrive later by another route) stops at once. Bounded.
_cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
_CANCELLED_KEPT = 100_000


class _Running:
    """A call in progress on this worker, as ``interrupt_calls`` needs to find it."""

    __slots__ = ("interrupted", "is_async", "task", "thread_id")

    def __init__(self, thread_id: int, is_async: bool) -> None:
        self.thread_id = thread_id
        self.is_async = is_async
        self.task: asyncio.Task[Any] | None = None
        self.interrupted = False


def worker_loop() -> asyncio.AbstractEventLoop:
    """The event loop (in a daemon thread) that runs this worker's async tasks and async
    resources, started on first use. One loop per process, like the local executor's."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="cascade-dask-async", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def _on_loop(coro: Any) -> Any:
    """Run a coroutine on the worker loop from a worker thread and wait for it."""
    return asyncio.run_coroutine_threadsafe(coro, worker_loop()).result()


# -- resources ---------------------------------------------------------------------------------
#
# The core's resource lifecycle (``plan_resources`` orders and checks, ``ResourceStack`` sets up
# and tears down in reverse, rolling back on failure), used from this worker's threads: sync
# providers run in the thread of the call that first needs them, async ones on the worker loop.


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:
        return "this Dask worker"


class _RunResources:
    """The run-scoped resources of one run on this worker."""

    def __init__(self, run_id: str) -> None:
        self.stack = ResourceStack(None, run_id)
        self.lock = threading.Lock()


def _loop_for(definitions: Iterable[ResourceDefinition]) -> asyncio.AbstractEventLoop | None:
    return worker_loop() if any(d.is_async for d in definitions) else None


def _enter(
    stack: ResourceStack,
    definition: ResourceDefinition,
    available: Mapping[str, Any],
    loop: asyncio.AbstractEventLoop | None,
) -> None:
    try:
        stack.enter_blocking(definition, available, loop)
    except ResourceError:
        raise
    except Exception as exc:
        raise ResourceError(
            f"resource '{definition.name}' failed to set up on {_worker_address()}: "
            f"{type(exc).__name__}: {exc}. Resources of tasks on the 'dask' executor are "
            "set up on the worker that runs the task; make sure the provider can run there."
        ) from exc


def _resources_for(spec: CallSpec) -> tuple[dict[str, Any], ResourceStack | None]:
    """The injected values for a call, setting up what is missing; plus the call's own stack of
    task-scoped resources (``None`` when it has none). Task-scoped resources set up before one
    that fails are torn down again before the error is raised."""
    providers = spec.providers
    order = plan_resources(
        providers, [(name, f"task '{spec.task_name}'") for name in spec.resources.values()]
    )
    loop = _loop_for(providers[name] for name in order)
    with _lock:
        run = _runs.get(spec.run_id)
        if run is None:
            run = _runs[spec.run_id] = _RunResources(spec.run_id)
    with run.lock:
        instances = run.stack.instances
        for name in order:
            definition = providers[name]
            if definition.scope != "task" and name not in instances:
                _enter(run.stack, definition, instances, loop)
        available = dict(instances)
    scoped: ResourceStack | None = None
    try:
        for name in order:
            if providers[name].scope == "task":
                if scoped is None:
                    scoped = ResourceStack(None, spec.run_id)
                _enter(scoped, providers[name], {**available, **scoped.instances}, loop)
    except BaseException as exc:
        if scoped is not None:
            _close(scoped, exc, loop)
        raise
    if scoped is not None:
        available.update(scoped.instances)
    return {param: available[name] for param, name in spec.resources.items()}, scoped


def _close(
    stack: ResourceStack, error: BaseException | None, loop: asyncio.AbstractEventLoop | None
) -> list[str]:
    """Tear a stack down; one message per teardown that failed (more are logged)."""
    try:
        stack.close_blocking(error, loop if loop is not None else _loop)
    except Exception as exc:
        return [
            f"teardown of a resource failed on {_worker_address()}: {type(exc).__name__}: {exc}"
        ]
    return []


def teardown_runs(run_ids: list[str]) -> list[str]:
    """Tear down the resources ``run_ids`` set up on this worker (the driver calls it on every
    worker with ``Client.run`` at the end of a run). Returns the teardown failures."""
    errors: list[str] = []
    for run_id in run_ids:
        with _lock:
            run = _runs.pop(run_id, None)
        if run is not None:
            with run.lock:
                errors.extend(_close(run.stack, None, None))
    return errors


def open_resources() -> dict[str, list[str]]:
    """Resources currently set up on this worker, by run (for tests and diagnostics)."""
    with _lock:
        return {run_id: run.stack.names for run_id, run in _runs.items()}


# -- running a call ------------------------------------------------------------------------


def _call_async(
    entry: _Running, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    loop = worker_loop()
    context = contextvars.copy_context()  # carries what worker_setup entered (trace context)
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def finish(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            done.set_exception(TaskInterrupted("the call was cancelled by the Cascade driver"))
        elif task.exception() is not None:
            done.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            done.set_result(task.result())

    def start() -> None:
        with _lock:
            if entry.interrupted:
                done.set_exception(TaskInterrupted("the call was cancelled before it started"))
                return
            task = context.run(lambda: loop.create_task(fn(*args, **kwargs)))
            entry.task = task
        task.add_done_callback(finish)

    loop.call_soon_threadsafe(start)
    return done.result()


def _absorb_interrupt() -> None:
    """Swallow a ``TaskInterrupted`` that was set for this thread but not delivered yet (it is
    delivered on entering a Python function), so it never escapes into Dask's own code."""
    try:
        for _ in range(3):
            _noop()
    except TaskInterrupted:
        pass


def _noop() -> None:
    return None


@dataclass(frozen=True)
class ReturnedGraph:
    """A call's value that holds LazyResults: the driver fetches it (the executor sees the
    type of the future's result) and runs the graph in the same run, instead of keeping a
    reference on the cluster."""

    value: Any


def run_call(
    spec: CallSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run one Cascade call on this worker (see the module docstring)."""
    if isinstance(fn, PortableFunction):
        fn = fn.fn
    args, kwargs = _unwrap(args, kwargs)
    entry = _Running(threading.get_ident(), spec.is_async)
    with _lock:
        if spec.key in _cancelled:
            raise TaskInterrupted("the call was cancelled before it started")
        _running[spec.key] = entry
    scoped: ResourceStack | None = None
    failure: BaseException | None = None
    start = end = 0.0
    try:
        if spec.resources:
            injected, scoped = _resources_for(spec)
            kwargs = {**kwargs, **injected}
        start = time.time()
        try:
            with worker_context(spec.carrier, spec.worker_setup):
                if spec.is_async:
                    value = _call_async(entry, fn, args, kwargs)
                else:
                    value = fn(*args, **kwargs)
            # A returned graph goes back to the driver, which runs it; any other value stays.
            return ReturnedGraph(value) if returns_graph(value) else value
        finally:
            end = time.time()
    except BaseException as exc:
        failure = exc
        raise
    finally:
        with _lock:
            _running.pop(spec.key, None)
            interrupted = entry.interrupted
        if interrupted:
            _absorb_interrupt()
        if scoped is not None:
            for message in _close(scoped, failure, _loop):
                logger.error("%s", message)
        if spec.report_times and start:
            _report_times(spec.key, start, end)


def _report_times(key: str, start: float, end: float) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(TIMES_TOPIC, [key, start, end])
    except Exception:  # not on a Dask worker (a unit test calling run_call directly)
        pass


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int


def interrupt_calls(keys: list[str]) -> int:
    """Stop the calls with these Dask keys if they run on this worker; returns how many."""
    found = 0
    with _lock:
        for key in keys:
            _cancelled[key] = None
            if len(_cancelled) > _CANCELLED_KEPT:
                _cancelled.popitem(last=False)
            entry = _running.get(key)
            if entry is None or entry.interrupted:
                continue
            entry.interrupted = True
            found += 1
            if not entry.is_async:
                _set_async_exc(entry.thread_id, TaskInterrupted)
            elif entry.task is not None:
                entry.task.get_loop().call_soon_threadsafe(entry.task.cancel)
            # else: the async call's task is not created yet, and ``start`` sees the flag
    return found


__all__ = [
    "TIMES_TOPIC",
    "CallSpec",
    "Literal",
    "TaskFunction",
    "TaskInterrupted",
    "interrupt_calls",
    "open_resources",
    "run_call",
    "teardown_runs",
    "worker_loop",
]
