"""The local and threads executors on real thread pools: ready sync calls run at once and the pool
grows only to max_workers, each call reports its start when a thread picks it up (so timeouts
count running time only), and async calls on threads are cancelled in their own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from core_helpers import ident, start_recorder, task_call, until

import cascade as cs
from cascade.executors import BaseExecutor
from cascade.executors.local import LocalExecutor, ProcessExecutor, ThreadExecutor, ThreadPool


@cs.task
def meet(barrier: threading.Barrier, j: int, _after: Any = None) -> int:
    barrier.wait()  # every call must be running at once to get past this
    return j


@pytest.mark.parametrize("executor", [LocalExecutor, ThreadExecutor])
def test_ready_sync_tasks_after_a_quick_one_run_at_once(executor: type[LocalExecutor]) -> None:
    # The reproduction: `ident` finishes first, so its thread counts as idle while four
    # calls queue. Each call waits at a barrier that only four calls running at once pass.
    barrier = threading.Barrier(4, timeout=30)
    x = ident(1)
    result = cs.run([meet(barrier, j, x) for j in range(4)], executor=executor(6), log_level=None)
    assert result == [0, 1, 2, 3]


def test_a_map_over_ready_inputs_runs_its_items_at_once() -> None:
    barrier = threading.Barrier(6, timeout=30)
    target = meet.map(cs.unmapped(barrier), [ident(i) for i in range(6)])
    assert cs.run(target, executor=LocalExecutor(6), log_level=None) == list(range(6))


async def test_the_thread_pool_grows_while_calls_queue_and_never_past_max_workers() -> None:
    pool = ThreadPool(asyncio.get_running_loop(), 3, "grow")
    assert await pool.submit(lambda: 1, (), {}) == 1  # one idle thread now
    barrier = threading.Barrier(3, timeout=30)
    running = [0, 0]
    lock = threading.Lock()

    def job(i: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running)
        if i < 3:
            barrier.wait()
        with lock:
            running[0] -= 1
        return i

    assert await asyncio.gather(*(pool.submit(job, (i,), {}) for i in range(6))) == list(range(6))
    assert running[1] == 3
    assert len(pool._threads) == 3
    pool.shutdown()


def test_the_built_in_executors_report_when_calls_start() -> None:
    assert LocalExecutor.reports_start and ThreadExecutor.reports_start
    assert ProcessExecutor.reports_start
    assert not BaseExecutor.reports_start


@pytest.mark.parametrize("executor", [LocalExecutor, ThreadExecutor])
async def test_a_queued_sync_call_reports_its_start_when_a_thread_picks_it_up(
    executor: type[LocalExecutor],
) -> None:
    ex = executor(max_workers=1)
    await ex.start()
    gate = threading.Event()
    started: list[tuple[int, int]] = []
    loop_thread = threading.get_ident()
    try:
        first = ex.submit(task_call(gate.wait, 30, on_start=start_recorder(started, 0)))
        second = ex.submit(task_call(time.time, on_start=start_recorder(started, 1)))
        await until(lambda: len(started) == 1)
        assert started == [(0, loop_thread)]  # the second call waits for the only thread
        gate.set()
        await asyncio.gather(first, second)
        await until(lambda: len(started) == 2)
        assert started == [(0, loop_thread), (1, loop_thread)]  # on the loop, once each
    finally:
        gate.set()
        await ex.shutdown()


async def test_an_async_call_reports_its_start_before_its_body_runs() -> None:
    ex = LocalExecutor()
    await ex.start()
    started: list[tuple[int, int]] = []
    seen: list[int] = []

    async def body() -> int:
        seen.append(len(started))
        return 5

    try:
        assert await asyncio.ensure_future(
            ex.submit(task_call(body, on_start=start_recorder(started, 0)))
        )
        assert seen == [1] and started == [(0, threading.get_ident())]
    finally:
        await ex.shutdown()


async def test_an_async_call_on_threads_reports_its_start_when_its_thread_picks_it_up() -> None:
    ex = ThreadExecutor(max_workers=1)
    await ex.start()
    gate = threading.Event()
    started: list[tuple[int, int]] = []

    async def body() -> str:
        return threading.current_thread().name

    try:
        blocker = ex.submit(task_call(gate.wait, 30))
        waiting = asyncio.ensure_future(
            ex.submit(task_call(body, on_start=start_recorder(started, 1)))
        )
        await asyncio.sleep(0)  # let the coroutine hand its call to the pool
        assert started == []
        gate.set()
        await blocker
        assert (await waiting).startswith("cascade-threads")
        assert started == [(1, threading.get_ident())]
    finally:
        gate.set()
        await ex.shutdown()


@cs.task
async def async_sleeper(label: str, seconds: float) -> str:
    _async_log.append(f"{label} started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)  # clean-up that the cancel must wait for
        _async_log.append(f"{label} cancelled")
        raise
    return label


@cs.task
async def fail_when_started(label: str) -> None:
    while f"{label} started" not in _async_log:
        await asyncio.sleep(0.01)
    raise ValueError("sibling failed")


async def test_cancelling_an_async_call_on_threads_cancels_it_in_its_thread() -> None:
    ex = ThreadExecutor()
    await ex.start()
    _async_log.clear()
    try:
        task = asyncio.ensure_future(ex.submit(task_call(async_sleeper.fn, "direct", 30.0)))
        await until(lambda: "direct started" in _async_log)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Completed only once the coroutine had stopped, clean-up included.
        assert _async_log == ["direct started", "direct cancelled"]
    finally:
        await ex.shutdown()


async def test_an_async_call_cancelled_before_its_thread_picks_it_up_never_runs() -> None:
    ex = ThreadExecutor(max_workers=1)
    await ex.start()
    _async_log.clear()
    gate = threading.Event()
    try:
        blocker = ex.submit(task_call(gate.wait, 30))
        task = asyncio.ensure_future(ex.submit(task_call(async_sleeper.fn, "queued", 30.0)))
        await asyncio.sleep(0)
        task.cancel()
        for _ in range(10):  # let the cancellation reach the coroutine before the gate opens
            await asyncio.sleep(0)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await blocker
        assert _async_log == []
    finally:
        gate.set()
        await ex.shutdown()


def test_a_failure_on_threads_cancels_an_async_sibling_instead_of_waiting_for_it() -> None:
    _async_log.clear()
    with pytest.raises(ValueError, match="sibling failed"):
        cs.run(
            [async_sleeper("sibling", 60.0), fail_when_started("sibling")],
            executor="threads",
            log_level=None,
        )
    # Cancelled, not waited for: a sibling left to finish its 60 s would log no cancel.
    assert _async_log == ["sibling started", "sibling cancelled"]


def test_a_timeout_on_threads_cancels_the_async_call() -> None:
    _async_log.clear()
    with pytest.raises(cs.TaskTimeoutError, match="async_sleeper"):
        cs.run(async_sleeper("late", 60.0).with_timeout(2.0), executor="threads", log_level=None)
    assert _async_log == ["late started", "late cancelled"]


_async_log: list[str] = []
