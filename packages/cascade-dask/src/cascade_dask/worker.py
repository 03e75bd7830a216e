"""What runs inside the Dask workers: the call wrapper, resources kept per run, interruption.

Every Cascade call is submitted to Dask as ``run_call(spec, fn, args, kwargs)``. Upstream
results arrive as values (Dask resolved the futures in ``args``/``kwargs`` on the worker), so
data moves worker to worker. The wrapper

- runs the call with the core's shared worker-side steps (``cascade.executors.run_spec``):
  the resources the call injects set up once per run and worker (``scope="task"`` ones around
  the call) and kept until the driver calls ``teardown_runs`` at the end of the run; the
  function inside ``worker_context`` so tracing context travels with the call; async functions
  on one event loop per worker process (where async resources live too); its times measured,
  and, in a run that captures logs, what it logs collected;
- publishes the times and log lines on the Dask event topic ``TIMES_TOPIC``, which reaches the
  driver before the task's completion does (a failed call's lines too);
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
import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from cascade.executors import CallReport, CallSpec, PortableFunction, WorkerResources, run_spec
from cascade.graph import returns_graph

logger = logging.getLogger("cascade.dask")

#: The Dask event topic that carries ``[key, start, end, lines, emitted]`` of finished calls.
TIMES_TOPIC = "cascade.task-times"


class TaskInterrupted(BaseException):
    """Raised inside a call that the driver cancelled (a timeout, a failed or cancelled run).

    A ``BaseException`` so that ``except Exception`` in task code does not swallow it."""


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


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return f"on {get_worker().address}"
    except Exception:
        return "on this Dask worker"


#: This worker process's resources and event loop (``cascade.executors.WorkerResources``).
RESOURCES = WorkerResources("dask", _worker_address, "cascade-dask-async")


def worker_loop() -> asyncio.AbstractEventLoop:
    """The event loop (in a daemon thread) that runs this worker's async tasks and async
    resources, started on first use. One loop per process, like the local executor's."""
    return RESOURCES.loop()


def teardown_runs(run_ids: list[str]) -> list[str]:
    """Tear down the resources ``run_ids`` set up on this worker (the driver calls it on every
    worker with ``Client.run`` at the end of a run). Returns the teardown failures."""
    return RESOURCES.teardown(run_ids)


def open_resources() -> dict[str, list[str]]:
    """Resources currently set up on this worker, by run (for tests and diagnostics)."""
    return RESOURCES.open_resources()


# -- running a call ------------------------------------------------------------------------


def _call_async(
    entry: _Running, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    def register(task: asyncio.Task[Any]) -> bool:
        with _lock:
            entry.task = task
            return not entry.interrupted

    try:
        return RESOURCES.run_on_loop(fn, args, kwargs, on_task=register)
    except asyncio.CancelledError:
        raise TaskInterrupted("the call was cancelled by the Cascade driver") from None


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
    args, kwargs = _unwrap(args, kwargs)
    key = str(spec.key)
    entry = _Running(threading.get_ident(), spec.is_async)
    with _lock:
        if key in _cancelled:
            raise TaskInterrupted("the call was cancelled before it started")
        _running[key] = entry
    report = CallReport()
    try:
        value = run_spec(
            spec,
            fn,
            args,
            kwargs,
            RESOURCES,
            report,
            lambda f, a, k: _call_async(entry, f, a, k),
        )
        # A returned graph goes back to the driver, which runs it; any other value stays.
        return ReturnedGraph(value) if returns_graph(value) else value
    finally:
        with _lock:
            _running.pop(key, None)
            interrupted = entry.interrupted
        if interrupted:
            _absorb_interrupt()
        if report.start and (spec.report_times or report.emitted):
            _report(key, report, spec.report_times)


def _report(key: str, report: CallReport, times: bool) -> None:
    try:
        from distributed import get_worker

        start, end = (report.start, report.end) if times else (0.0, 0.0)
        get_worker().log_event(TIMES_TOPIC, [key, start, end, report.lines, report.emitted])
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
    "RESOURCES",
    "TIMES_TOPIC",
    "Literal",
    "TaskFunction",
    "TaskInterrupted",
    "interrupt_calls",
    "open_resources",
    "run_call",
    "teardown_runs",
    "worker_loop",
]
