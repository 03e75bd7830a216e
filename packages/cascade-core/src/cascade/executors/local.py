"""Cascade's built-in executors: ``local`` (the default), ``threads`` and ``processes``.

They are registered through the ``cascade_register_executors`` hook like any plugin's (see
``cascade.builtin``). ``processes`` lives in ``cascade.executors.processes``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from cascade.executors.processes import ProcessExecutor
from cascade.executors.protocol import BaseExecutor, TaskCall

_Job = tuple[
    "asyncio.Future[Any]",
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
    "contextvars.Context | None",
    "Callable[[], None] | None",
]


#: Python 3.12 added tasks that take their first step when created (``eager_start``); before
#: it, every task starts on the next event-loop pass.
_EAGER_TASKS = sys.version_info >= (3, 12)


def default_thread_count() -> int:
    """As many threads as ``concurrent.futures.ThreadPoolExecutor`` would start."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadPool:
    """A lean thread pool bound to one event loop.

    Per call it costs one loop future and one queue put: finished calls are collected in a
    deque and handed back to the loop in batches, with one ``call_soon_threadsafe`` wake-up per
    batch instead of one per call. Threads start on demand up to ``max_workers``, whenever more
    calls are queued than threads wait for one (so N ready calls run on N threads at once), and
    are daemon threads, so a sync task abandoned after a timeout never keeps the interpreter
    alive. ``on_start`` (optional, per call) is scheduled on the loop when a thread picks the
    call up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self._loop = loop
        self._max_workers = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = (
            collections.deque()
        )
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._lock = threading.Lock()
        self._wakeup_pending = False
        self._closed = False

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"thread pool '{self._name}' is shut down")
        future = self._loop.create_future()
        with self._lock:
            self._queued += 1
            grow = self._queued > self._idle and len(self._threads) < self._max_workers
        self._jobs.put((future, fn, args, kwargs, context, on_start))
        if grow:
            self._add_thread()
        return future

    def _add_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"cascade-{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        jobs, finished, lock = self._jobs, self._finished, self._lock
        while True:
            with lock:
                self._idle += 1
            job = jobs.get()
            with lock:
                self._idle -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            future, fn, args, kwargs, context, on_start = job
            if on_start is not None:
                try:
                    self._loop.call_soon_threadsafe(on_start)
                except RuntimeError:  # loop closed: nobody is waiting any more
                    return
            try:
                if context is not None:
                    result = context.run(fn, *args, **kwargs)
                else:
                    result = fn(*args, **kwargs)
                finished.append((future, True, result))
            except BaseException as exc:
                finished.append((future, False, exc))
            del job, future, fn, args, kwargs, context, on_start
            with lock:
                wake = not self._wakeup_pending
                self._wakeup_pending = True
            if wake:
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # loop closed: nobody is waiting any more
                    return

    def _deliver(self) -> None:
        with self._lock:
            self._wakeup_pending = False
        finished = self._finished
        while finished:
            future, ok, value = finished.popleft()
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def shutdown(self) -> None:
        """Let idle threads exit; threads still running a call finish it, then exit."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)


def _timed(call: TaskCall) -> Any:
    """A sync call, in its thread, noting when its code started and ended (a duration is the
    time the task ran, not the time it queued for a thread or for the event loop)."""
    call.start_time = time.time()
    try:
        return call.fn(*call.args, **call.kwargs)
    finally:
        call.end_time = time.time()


async def _timed_async(call: TaskCall) -> Any:
    """An async call, noting when its first step ran and when it ended."""
    call.start_time = time.time()
    try:
        return await call.fn(*call.args, **call.kwargs)
    finally:
        call.end_time = time.time()


class _ThreadCoroutine:
    """An ``async def`` call run with ``asyncio.run`` in a pool thread, which the event loop's
    side can cancel: the cancellation is handed to the thread's loop, before or while the
    coroutine runs."""

    __slots__ = ("_args", "_cancelled", "_fn", "_kwargs", "_lock", "_loop", "_task")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._lock = threading.Lock()
        self._cancelled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def run(self) -> Any:
        """In the pool thread."""
        try:
            return asyncio.run(self._main())
        except asyncio.CancelledError:
            if self._cancelled:
                raise _StoppedInThread() from None
            raise

    async def _main(self) -> Any:
        with self._lock:
            if self._cancelled:
                raise asyncio.CancelledError
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        return await self._fn(*self._args, **self._kwargs)

    def cancel(self) -> None:
        """On the event loop: stop the coroutine (or keep it from starting)."""
        with self._lock:
            self._cancelled = True
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # its loop is closed: the call has ended
                pass


class _StoppedInThread(Exception):
    """A thread's coroutine stopped because it was cancelled from the event loop."""


async def _run_in_thread_loop(
    pool: ThreadPool,
    call: TaskCall,
    context: contextvars.Context,
) -> Any:
    """What ``ThreadExecutor.submit`` returns for an ``async def`` call: the engine runs it as a
    task, so cancelling it (a timeout, a failed or cancelled run) cancels the coroutine in its
    thread, and this completes only once the coroutine has stopped."""
    runner = _ThreadCoroutine(_timed_async, (call,), {})
    # A copy: the engine may run this coroutine in ``context`` itself, and one context cannot
    # be entered by two threads at once.
    future = pool.submit(runner.run, (), {}, context.copy(), call.on_start)
    try:
        await asyncio.wait((future,))
    except asyncio.CancelledError:
        runner.cancel()
        while not future.done():
            try:
                await asyncio.wait((future,))
            except asyncio.CancelledError:
                runner.cancel()
        if not future.cancelled():
            future.exception()  # retrieved: what it ended with no longer matters
        raise
    try:
        return future.result()
    except _StoppedInThread:
        raise asyncio.CancelledError from None


class LocalExecutor(BaseExecutor):
    """The default: ``async def`` tasks run on the event loop, sync tasks in a thread pool so
    they never block it. Calls with ``on_start`` have it called when they begin: a sync call
    when a thread picks it up, an async one when its task first runs."""

    name: ClassVar[str] = "local"
    reports_start: ClassVar[bool] = True
    async_on_loop: ClassVar[bool] = True

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or default_thread_count()
        self._pool: ThreadPool | None = None
        self._runs = 0

    async def start(self) -> None:
        self._runs += 1
        if self._pool is None:
            self._pool = ThreadPool(asyncio.get_running_loop(), self.max_workers, self.name)

    async def shutdown(self) -> None:
        self._runs -= 1
        if self._runs <= 0 and self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def thread_pool(self) -> ThreadPool:
        """The pool sync tasks run in (the engine's fast path submits to it directly)."""
        return self._threads()

    def _threads(self) -> ThreadPool:
        if self._pool is None:
            raise RuntimeError(f"executor '{self.name}' was not started")
        return self._pool

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        if call.is_async:
            if call.on_start is not None:
                # Before the task's first step, which the engine schedules after this returns.
                asyncio.get_running_loop().call_soon(call.on_start)
            return _timed_async(call)
        # A sync task sees the caller's context variables, as an async task does (each call
        # in a copy of its own: one context cannot be entered by two threads at once).
        context = call.context if call.context is not None else contextvars.copy_context()
        return self._threads().submit(_timed, (call,), {}, context, call.on_start)

    def submit_plain(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> asyncio.Future[Any]:
        """The engine's direct route (see ``Executor.submit_plain``): the same as ``submit``
        for a call nobody observes, without building a ``TaskCall``. It exists because the
        per-task ``TaskCall`` and its events are most of the engine's own cost on wide
        fan-outs (``benchmarks/run.py``, fan-out rows)."""
        if is_async:
            if _EAGER_TASKS:
                # The coroutine takes its first step now, as the task it will be: one that
                # finishes without suspending (most do, on a chain of small steps) is done
                # when this returns, with no event-loop pass to start it or to report it.
                # The engine completes such a task at once (``cascade.runtime.call.start``).
                return asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                    fn(*args, **kwargs), loop=asyncio.get_running_loop(), eager_start=True
                )
            return asyncio.get_running_loop().create_task(fn(*args, **kwargs))
        return self._threads().submit(fn, args, kwargs, contextvars.copy_context())


class ThreadExecutor(LocalExecutor):
    """Every task in a thread; ``async def`` tasks get an event loop of their own there. For
    async code that blocks (a sync driver called inside ``async def``). An async call is
    returned as a coroutine, so the engine can cancel it: the cancellation reaches the
    coroutine in its thread, and the call ends once that has stopped."""

    name: ClassVar[str] = "threads"

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        context = call.context if call.context is not None else contextvars.copy_context()
        if call.is_async:
            return _run_in_thread_loop(self._threads(), call, context)
        return self._threads().submit(_timed, (call,), {}, context, call.on_start)

    # Every call goes through ``submit``: async calls need their own loop in a thread.
    submit_plain = None  # type: ignore[assignment]
    async_on_loop: ClassVar[bool] = False


__all__ = [
    "LocalExecutor",
    "ProcessExecutor",
    "ThreadExecutor",
    "ThreadPool",
    "default_thread_count",
]
