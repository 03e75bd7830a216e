"""Cascade's built-in executors: ``local`` (the default), ``threads`` and ``processes``.

They are registered through the ``cascade_register_executors`` hook like any plugin's (see
``cascade.plugins.builtin``).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from cascade.executors.protocol import (
    BaseExecutor,
    PortableFunction,
    TaskCall,
    call_in_worker,
    check_picklable,
)

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_Job = tuple[
    "asyncio.Future[Any]",
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
    "contextvars.Context | None",
]


def default_thread_count() -> int:
    """As many threads as ``concurrent.futures.ThreadPoolExecutor`` would start."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadPool:
    """A lean thread pool bound to one event loop.

    Per call it costs one loop future and one queue put: finished calls are collected in a
    deque and handed back to the loop in batches, with one ``call_soon_threadsafe`` wake-up per
    batch instead of one per call. Threads start on demand up to ``max_workers`` and are daemon
    threads, so a sync task abandoned after a timeout never keeps the interpreter alive.
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
        self._idle = 0
        self._lock = threading.Lock()
        self._wakeup_pending = False
        self._closed = False

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"thread pool '{self._name}' is shut down")
        future = self._loop.create_future()
        self._jobs.put((future, fn, args, kwargs, context))
        if self._idle == 0 and len(self._threads) < self._max_workers:
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
            if job is None:
                return
            future, fn, args, kwargs, context = job
            try:
                if context is not None:
                    result = context.run(fn, *args, **kwargs)
                else:
                    result = fn(*args, **kwargs)
                finished.append((future, True, result))
            except BaseException as exc:
                finished.append((future, False, exc))
            del job, future, fn, args, kwargs, context
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


def _run_coroutine_function(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return asyncio.run(fn(*args, **kwargs))


class LocalExecutor(BaseExecutor):
    """The default: ``async def`` tasks run on the event loop, sync tasks in a thread pool so
    they never block it."""

    name: ClassVar[str] = "local"

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
            return call.fn(*call.args, **call.kwargs)  # type: ignore[no-any-return]
        # A sync task sees the caller's context variables, as an async task does (each call
        # in a copy of its own: one context cannot be entered by two threads at once).
        context = call.context if call.context is not None else contextvars.copy_context()
        return self._threads().submit(call.fn, call.args, call.kwargs, context)

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
            return asyncio.get_running_loop().create_task(fn(*args, **kwargs))
        return self._threads().submit(fn, args, kwargs, contextvars.copy_context())


class ThreadExecutor(LocalExecutor):
    """Every task in a thread; ``async def`` tasks get an event loop of their own there. For
    async code that blocks (a sync driver called inside ``async def``)."""

    name: ClassVar[str] = "threads"

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        context = call.context if call.context is not None else contextvars.copy_context()
        if call.is_async:
            return self._threads().submit(
                _run_coroutine_function, (call.fn, *call.args), call.kwargs, context
            )
        return self._threads().submit(call.fn, call.args, call.kwargs, context)

    # Every call goes through ``submit``: async calls need their own loop in a thread.
    submit_plain = None  # type: ignore[assignment]


class ProcessExecutor(BaseExecutor):
    """CPU-bound sync tasks in a pool of worker processes (``async def`` tasks run there with
    ``asyncio.run``). Functions and arguments must be picklable. Cancelling a running call
    (a timeout, a failed or cancelled run) stops the worker process running it; other calls in
    flight on that pool are resubmitted to a fresh pool."""

    name: ClassVar[str] = "processes"
    requires_pickle: ClassVar[bool] = True
    stops_on_cancel: ClassVar[bool] = True

    def __init__(self, max_workers: int | None = None, mp_context: Any = None) -> None:
        self.max_workers = max_workers or (os.cpu_count() or 1)
        self._mp_context = mp_context
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0
        self._runs = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        # Imported here: multiprocessing costs ~10 ms at `import cascade` otherwise.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = self._mp_context or multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=self.max_workers, mp_context=context)

    async def start(self) -> None:
        self._runs += 1
        if self._pool is None:
            self._pool = self._new_pool()
            # Start the workers now, so their start-up is not counted against the first
            # tasks' timeouts.
            await asyncio.gather(*self._warm_up(self._pool))

    def _warm_up(self, pool: ProcessPoolExecutor) -> list[asyncio.Future[Any]]:
        return [asyncio.wrap_future(pool.submit(os.getpid)) for _ in range(self.max_workers)]

    async def shutdown(self) -> None:
        self._runs -= 1
        if self._runs <= 0 and self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        check_picklable(call)
        return self._run(call)

    def _stop_workers(self) -> None:
        """Kill every worker of the current pool (the only way to stop one running call) and
        start a fresh pool; calls that were on the old one are resubmitted by ``_run``."""
        pool = self._pool
        if pool is None:
            return
        self._generation += 1
        self._pool = self._new_pool()
        for warming in self._warm_up(self._pool):
            warming.add_done_callback(lambda f: f.cancelled() or f.exception())
        processes = getattr(pool, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, call: TaskCall) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        while True:
            pool, generation = self._pool, self._generation
            if pool is None:
                raise RuntimeError(f"executor '{self.name}' was not started")
            job = pool.submit(
                call_in_worker,
                PortableFunction(call.fn),
                call.args,
                call.kwargs,
                call.carrier,
                call.worker_setup,
            )
            try:
                return await asyncio.wrap_future(job)
            except BrokenProcessPool:
                if generation != self._generation:
                    continue  # the pool was replaced to stop another call: run this one again
                raise
            except asyncio.CancelledError:
                if not job.cancel() and generation == self._generation:
                    self._stop_workers()
                raise
