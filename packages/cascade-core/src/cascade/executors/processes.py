"""The ``processes`` executor, the driver side (``cascade.executors.process_worker`` is what
runs in the workers).

At most ``max_workers`` calls are in the pool at once, so a call handed over starts at once,
and nothing is handed over before every worker of the pool is up: start-up never counts against
a call. A worker reports when it begins a call (after unpickling it), and that is when
``on_start`` is called, so only running time counts against a timeout.

Stopping one running call means killing the pool's workers: every other call on that pool that
had not finished, running or still queued, is handed to a fresh pool. A worker that dies by
itself (killed, out of memory, ``os._exit``, a crash in native code) fails the call it was
running with an error naming the task; the calls it took down with it run again on a fresh
pool. A result that cannot be pickled fails its call naming the task, and so does an exception
that cannot be sent back (one that can, custom ``__init__`` or not, arrives as itself).

Injected resources are set up in the workers, once per worker per run; when the run ends each
worker gets one teardown job (a barrier keeps any worker from taking two). Resources of workers
killed to stop a call are lost with them, without teardown.

Each run has its handle (``open_run``, ``_ProcessRun``): the run's calls are submitted to it,
so the executor knows which run set resources up in the workers and tears down only that
run's when it ends, while other runs on the same pool go on. The pool lives while at least
one run is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from cascade.executors.main_guard import check_main_guard
from cascade.executors.process_worker import (
    Shipped,
    init_worker,
    meet,
    run_in_process,
    teardown_in_worker,
)
from cascade.executors.protocol import (
    ExecutorRun,
    PlainSubmit,
    PortableFunction,
    RunInfo,
    TaskCall,
    UnpicklableTaskError,
    check_picklable,
)
from cascade.executors.runs import RunScopedExecutor
from cascade.executors.worker_kit import CallReport, CallSpec, Failure, Provider, order_providers
from cascade.resources import ResourceError

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

logger = logging.getLogger("cascade.executors")


class _Once:
    """``on_start`` of one call: called at most once, however often the call is handed over."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def __call__(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class _Pool:
    """One process pool and what the executor knows about it. A listener thread reads the
    workers' "call begins" reports (token, pid), to call ``on_start`` on the loop and to know,
    if the pool breaks, which call each dead worker was running."""

    def __init__(
        self,
        executor: ProcessPoolExecutor,
        reader: Any,
        writer: Any,
        size: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.executor = executor
        self.size = size
        self.loop = loop
        self.ready: asyncio.Future[None] | None = None
        self.processes: dict[int, Any] = {}
        self.token_pids: dict[int, int] = {}
        self.on_start: dict[int, Callable[[], None]] = {}
        self.resource_runs: set[str] = set()
        self.killed = False  # by the executor, to stop a call: the others go to a fresh pool
        self.examined: asyncio.Future[None] | None = None  # it broke by itself
        self.dead: dict[int, int] = {}  # pid -> exit code of workers that died by themselves
        self.culprits: set[int] = set()  # tokens of the calls whose worker died
        self._reader = reader
        self._writer: Any = writer
        self.listener = threading.Thread(
            target=self._listen, name="cascade-processes-listener", daemon=True
        )
        self.listener.start()

    def _listen(self) -> None:
        reader = self._reader
        while True:
            try:
                token, pid = reader.recv()
            except (EOFError, OSError):  # every worker is gone
                reader.close()
                return
            self.token_pids[token] = pid
            callback = self.on_start.pop(token, None)
            if callback is not None:
                try:
                    self.loop.call_soon_threadsafe(callback)
                except RuntimeError:  # the loop is closed: nobody waits for it
                    pass

    def close_writer(self) -> None:
        """Once the workers hold their copies: the listener ends when the last one exits."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def live_processes(self) -> dict[int, Any]:
        return dict(getattr(self.executor, "_processes", None) or {})

    def kill(self) -> None:
        self.killed = True
        if self.ready is not None and not self.ready.done():
            self.ready.cancel()
        for process in self.live_processes().values():
            try:
                process.kill()
            except Exception:
                pass
        self.close_writer()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped"
    if code < 0:
        try:
            return f"it was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"it was killed by signal {-code}"
    return f"it exited with code {code} without returning"


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _ProcessRun:
    """The ``processes`` executor's handle for one run: its calls, and whether they set
    resources up in the workers (torn down when the run ends)."""

    reports_start = True
    submit_plain: PlainSubmit | None = None

    def __init__(self, executor: ProcessExecutor, info: RunInfo) -> None:
        self.executor = executor
        self.info = info
        self.uses_resources = False

    def submit(self, call: TaskCall) -> Awaitable[Any]:
        return self.executor._submit(call, self)

    def __repr__(self) -> str:
        return f"<run {self.info.run_id[:8]} of executor 'processes'>"


class ProcessExecutor(RunScopedExecutor):
    """CPU-bound sync tasks in a pool of worker processes (``async def`` tasks run there with
    ``asyncio.run``). Functions and arguments must be picklable. Cancelling a running call
    (a timeout, a failed or cancelled run) stops the worker process running it; other calls in
    flight on that pool, running or queued, are resubmitted to a fresh pool. Injected
    resources are set up in the workers (see the module docstring)."""

    name: ClassVar[str] = "processes"
    requires_pickle: ClassVar[bool] = True
    stops_on_cancel: ClassVar[bool] = True
    remote_resources: ClassVar[bool] = True
    reports_start: ClassVar[bool] = True

    def __init__(self, max_workers: int | None = None, mp_context: Any = None) -> None:
        self.max_workers = max_workers or (os.cpu_count() or 1)
        self._mp_context = mp_context
        self._pool: _Pool | None = None
        self._slots: asyncio.Semaphore | None = None
        self._open_runs: set[_ProcessRun] = set()
        self._tokens = itertools.count(1)
        self._sendable: dict[int, Any] = {}

    # -- pools ------------------------------------------------------------------------------

    def _new_pool(self) -> _Pool:
        # Imported here: multiprocessing costs ~10 ms at `import cascade` otherwise.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = self._mp_context or multiprocessing.get_context("spawn")
        check_main_guard(self.name, context.get_start_method())
        reader, writer = context.Pipe(duplex=False)
        barrier = context.Barrier(self.max_workers)
        executor = ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=context,
            initializer=init_worker,
            initargs=(writer, barrier),
        )
        pool = _Pool(executor, reader, writer, self.max_workers, asyncio.get_running_loop())
        pool.ready = asyncio.ensure_future(self._warm_up(pool))
        pool.ready.add_done_callback(_consume)
        return pool

    async def _warm_up(self, pool: _Pool) -> None:
        """Start every worker and wait until all are up (each holds one ``meet`` job until all
        do), so start-up never counts against a call."""
        executor = pool.executor
        jobs = [asyncio.wrap_future(executor.submit(meet, i)) for i in range(pool.size)]
        # The pool starts a worker per job unless one looks idle: make sure all are there.
        spawn = getattr(executor, "_spawn_process", None)
        lock = getattr(executor, "_shutdown_lock", None)
        if spawn is not None and lock is not None:
            with lock:
                while len(getattr(executor, "_processes", None) or {}) < pool.size:
                    spawn()
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.add_done_callback(_consume)
        pool.processes = pool.live_processes()
        pool.close_writer()

    def _replace(self, pool: _Pool) -> None:
        if self._pool is pool and self._open_runs:
            self._pool = self._new_pool()

    async def _examine(self, pool: _Pool) -> None:
        """The pool broke without the executor killing it: start a fresh one, and find the
        workers that died by themselves and the calls they were running."""
        if pool.examined is None:
            pool.examined = asyncio.ensure_future(self._find_culprits(pool))
            pool.examined.add_done_callback(_consume)
        await asyncio.shield(pool.examined)

    async def _find_culprits(self, pool: _Pool) -> None:
        self._replace(pool)
        pool.executor.shutdown(wait=False, cancel_futures=True)
        # The listener ends once every worker has closed its end of the pipe: then it has read
        # every report. A worker closes its files a moment before its exit code can be read,
        # so the exit codes are waited for too (a None would hide the worker that died).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        workers = list(pool.processes.values())
        while loop.time() < deadline and (
            pool.listener.is_alive() or any(w.exitcode is None for w in workers)
        ):
            await asyncio.sleep(0.01)
        for pid, process in pool.processes.items():
            code = process.exitcode
            if code is not None and code != -signal.SIGTERM:  # the pool terminates the rest
                pool.dead[pid] = code
        pool.culprits = {t for t, pid in list(pool.token_pids.items()) if pid in pool.dead}

    # -- lifecycle ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_run(self, run: RunInfo) -> AsyncIterator[ExecutorRun]:
        """The pool (started by the first open run, its workers all up), and a handle for
        ``run``; leaving it tears down what the run set up in the workers, and shuts the pool
        down after the last open run."""
        handle = _ProcessRun(self, run)
        self._open_runs.add(handle)
        try:
            if self._pool is None:
                self._slots = asyncio.Semaphore(self.max_workers)
                self._pool = self._new_pool()
            ready = self._pool.ready
            if ready is not None:
                await asyncio.shield(ready)
        except BaseException:
            # Cancelled (or failed) while the workers start: leave nothing behind.
            self._open_runs.discard(handle)
            if not self._open_runs and self._pool is not None:
                pool, self._pool = self._pool, None
                pool.kill()
            raise
        try:
            yield handle
        finally:
            await self._close_run(handle)

    async def _close_run(self, handle: _ProcessRun) -> None:
        self._open_runs.discard(handle)
        last = not self._open_runs
        run_id = handle.info.run_id
        try:
            pool = self._pool
            if (
                handle.uses_resources
                and pool is not None
                and not pool.killed
                and pool.examined is None
                and run_id in pool.resource_runs
            ):
                pool.resource_runs.discard(run_id)
                await self._teardown(pool, [run_id])
        finally:
            if last and self._pool is not None:
                pool, self._pool = self._pool, None
                self._sendable.clear()
                await asyncio.get_running_loop().run_in_executor(None, pool.executor.shutdown)

    async def _teardown(self, pool: _Pool, run_ids: list[str]) -> None:
        """Tear the runs' resources down in every worker: one job per worker, once no call is
        in the pool."""
        slots = self._slots
        taken = 0
        try:
            if slots is not None:
                for _ in range(self.max_workers):
                    await slots.acquire()
                    taken += 1
            if pool is not self._pool or pool.killed or pool.examined is not None:
                return  # its workers are gone, and their resources with them
            jobs = [
                asyncio.wrap_future(pool.executor.submit(teardown_in_worker, run_ids))
                for _ in range(pool.size)
            ]
            for report in await asyncio.gather(*jobs, return_exceptions=True):
                if isinstance(report, BaseException):
                    logger.error("executor 'processes': teardown in a worker failed: %r", report)
                    continue
                for message in report:
                    logger.error("executor 'processes': %s", message)
        finally:
            for _ in range(taken):
                slots.release()  # type: ignore[union-attr]

    # -- calls ------------------------------------------------------------------------------

    def _submit(self, call: TaskCall, handle: _ProcessRun) -> Awaitable[Any]:
        check_picklable(call)
        info = handle.info
        providers: dict[str, Provider] = {}
        if call.resources:
            providers = self._providers_for(call, info)
            handle.uses_resources = True
        logs = info.logs
        spec = CallSpec(
            key=next(self._tokens),
            task_name=call.task_name,
            run_id=info.run_id,
            is_async=call.is_async,
            task_id=call.task_id,
            attempt=call.attempt,
            carrier=call.carrier,
            worker_setup=call.worker_setup,
            resources=call.resources,
            providers=providers,
            logs=None if logs is None else (logs.level, logs.limit, logs.message_limit),
        )
        return self._run(call, spec, handle)

    def _providers_for(self, call: TaskCall, info: RunInfo) -> dict[str, Provider]:
        """The definitions a call's resources need, in setup order, checked to be sendable
        to the workers (the engine checked the definitions themselves)."""
        available = call.resource_providers or info.resource_providers
        needed = order_providers(call.task_name, call.resources, available)
        for name, provider in needed.items():
            definition = available[name]
            if id(definition) not in self._sendable:
                try:
                    pickle.dumps(provider)
                except Exception as exc:
                    raise ResourceError(
                        f"task '{call.task_name}' needs resource '{name}', which cannot be sent "
                        f"to the worker processes: {type(exc).__name__}: {exc}. Resources of "
                        "tasks on the 'processes' executor are set up in the worker process "
                        "that runs the task: define the provider at module level, or run this "
                        "task on a local executor."
                    ) from exc
                self._sendable[id(definition)] = definition
        return needed

    async def _run(self, call: TaskCall, spec: CallSpec, handle: _ProcessRun) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        slots = self._slots
        if slots is None:
            raise RuntimeError(f"executor '{self.name}' was not started")
        fn = PortableFunction(call.fn)
        on_start = _Once(call.on_start) if call.on_start is not None else None
        token: int = spec.key
        await slots.acquire()
        pool: _Pool | None = None
        try:
            while True:
                if pool is not None:
                    pool.on_start.pop(token, None)
                    pool.token_pids.pop(token, None)
                pool = self._pool
                if pool is None:
                    raise RuntimeError(f"executor '{self.name}' was not started")
                ready = pool.ready
                if ready is not None and not ready.done():
                    await asyncio.shield(ready)
                    continue  # the pool may have been replaced meanwhile
                if ready is not None and not ready.cancelled() and ready.exception():
                    problem = ready.exception()
                    raise BrokenProcessPool(
                        f"task '{call.task_name}': the worker processes of executor "
                        f"'processes' could not start: {type(problem).__name__}: {problem}"
                    ) from problem
                if spec.resources:
                    pool.resource_runs.add(spec.run_id)
                if on_start is not None:
                    pool.on_start[token] = on_start
                try:
                    job = pool.executor.submit(run_in_process, spec, fn, call.args, call.kwargs)
                except (BrokenProcessPool, RuntimeError):
                    if not pool.killed and pool is self._pool:
                        await self._examine(pool)
                    continue  # not handed over: it goes to the fresh pool
                waiting = asyncio.wrap_future(job)
                try:
                    await asyncio.wait((waiting,))
                except asyncio.CancelledError:
                    waiting.add_done_callback(_consume)
                    if not job.cancel() and not pool.killed:
                        # Running: killing its worker is the only way to stop it.
                        self._replace(pool)
                        pool.kill()
                    raise
                if waiting.cancelled():
                    continue  # its pool was shut down under it before it ran: run it again
                error = waiting.exception()
                if error is None:
                    if on_start is not None:
                        # It ran: if its start report has not reached the loop yet, the start
                        # is reported now, so on_start is called once, before the result.
                        on_start()
                    shipped: Shipped = waiting.result()
                    _take_report(call, handle, shipped.report)
                    outcome = shipped.outcome
                    if type(outcome) is Failure:
                        raise outcome.rebuild(call.task_name)
                    return outcome
                if not isinstance(error, BrokenProcessPool):
                    raise UnpicklableTaskError(
                        f"task '{call.task_name}': its result cannot be sent back from the "
                        f"worker process: {type(error).__name__}: {error}. Return picklable "
                        "values, or run this task on a local executor."
                    ) from error
                if pool.killed:
                    continue  # stopped to end another call: run this one again
                await self._examine(pool)
                if token in pool.culprits:
                    pid = pool.token_pids.get(token, 0)
                    raise BrokenProcessPool(
                        f"task '{call.task_name}': the worker process running it (pid {pid}) "
                        f"died: {_describe_exit(pool.dead.get(pid))} (killed, out of memory, "
                        "os._exit, or a crash in native code). The call is lost; the other "
                        "calls went on in a fresh pool."
                    ) from error
                if pool.culprits:
                    continue  # another call's worker died and took this one with it
                raise BrokenProcessPool(
                    f"task '{call.task_name}': its process pool broke while the call ran or "
                    f"waited: {error}{_cause_of(error)}"
                ) from error
        finally:
            slots.release()
            if pool is not None:
                pool.on_start.pop(token, None)
                pool.token_pids.pop(token, None)


def _take_report(call: TaskCall, handle: ExecutorRun, report: CallReport) -> None:
    """The times a worker measured, on the call; the lines it logged, to the run."""
    if report.start:
        call.start_time, call.end_time = report.start, report.end
    logs = handle.info.logs
    if logs is not None and report.emitted:
        logs.deliver(call.task_id, call.attempt, report.lines, report.emitted)


def _cause_of(error: BaseException) -> str:
    cause = error.__cause__
    if cause is None:
        return ""
    lines = [line for line in str(cause).strip().strip("'\"").splitlines() if line.strip()]
    return f" ({lines[-1].strip()})" if lines else ""


__all__ = ["ProcessExecutor"]
