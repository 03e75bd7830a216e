"""Engine semantics: dataflow scheduling, concurrency, failure and cancellation."""

import asyncio
import threading
import time

import pytest
from core_helpers import recorded_engine

import cascade as cs
from cascade.events import (
    RunFinished,
    TaskExecutionFinished,
)


def test_a_task_starts_when_its_own_inputs_are_ready_not_when_a_stage_is_done():
    order: list[str] = []

    @cs.task
    async def fast():
        await asyncio.sleep(0.01)
        order.append("fast")
        return 1

    @cs.task
    async def slow():
        await asyncio.sleep(0.3)
        order.append("slow")
        return 2

    @cs.task
    async def after_fast(x):
        order.append("after_fast")
        return x

    @cs.task
    def join(a, b):
        return a + b

    assert cs.run(join(after_fast(fast()), slow()), log_level=None) == 3
    assert order == ["fast", "after_fast", "slow"]


def test_independent_async_tasks_run_concurrently():
    @cs.task
    async def nap(i):
        await asyncio.sleep(0.2)
        return i

    @cs.task
    def total(*xs):
        return sum(xs)

    started = time.perf_counter()
    assert cs.run(total(*[nap(i) for i in range(50)]), log_level=None) == sum(range(50))
    assert time.perf_counter() - started < 1.5


def test_sync_tasks_run_in_threads_and_do_not_block_the_loop():
    threads: set[str] = set()
    ticks: list[float] = []

    @cs.task
    def blocking(i):
        threads.add(threading.current_thread().name)
        time.sleep(0.2)
        return i

    @cs.task
    async def ticker():
        for _ in range(5):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    @cs.task
    def total(*xs):
        return len(xs)

    started = time.perf_counter()
    assert cs.run(total(ticker(), *[blocking(i) for i in range(4)]), log_level=None) == 5
    assert time.perf_counter() - started < 0.7
    assert threading.main_thread().name not in threads
    assert len(ticks) == 5 and ticks[-1] - ticks[0] < 0.18


def test_failure_cancels_running_async_tasks_and_starts_nothing_new():
    cancelled: list[str] = []
    started: list[str] = []

    @cs.task
    async def long_running():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("long_running")
            raise

    @cs.task
    async def fails():
        await asyncio.sleep(0.02)
        raise ValueError("boom")

    @cs.task
    def downstream(x, y):
        started.append("downstream")

    engine, events = recorded_engine()
    started_at = time.perf_counter()
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(engine.run(downstream(long_running(), fails())))
    assert time.perf_counter() - started_at < 2
    assert cancelled == ["long_running"]
    assert started == []
    statuses = {e.task_name: e.status for e in events if isinstance(e, TaskExecutionFinished)}
    assert statuses == {"fails": "Failed", "long_running": "Cancelled"}
    assert isinstance(events[-1], RunFinished) and events[-1].status == "Failed"


def test_failure_waits_for_sync_work_in_flight_before_returning():
    finished: list[str] = []

    @cs.task
    def slow_sync():
        time.sleep(0.3)
        finished.append("slow_sync")

    @cs.task
    async def fails():
        raise OSError("disk")

    @cs.task
    def join(a, b):
        return None

    with pytest.raises(OSError, match="disk"):
        cs.run(join(slow_sync(), fails()), log_level=None)
    assert finished == ["slow_sync"]


def test_the_exception_surfaces_unchanged_with_its_traceback():
    class CustomError(Exception):
        pass

    @cs.task
    def raiser():
        raise CustomError("original message")

    with pytest.raises(CustomError) as info:
        cs.run(raiser(), log_level=None)
    assert str(info.value) == "original message"
    frames = [entry.name for entry in info.traceback]
    assert "raiser" in frames


def test_caller_cancellation_cancels_tasks_and_publishes_cancelled():
    engine, events = recorded_engine()

    @cs.task
    async def forever():
        await asyncio.sleep(30)

    async def main():
        runner = asyncio.create_task(engine.run(forever()))
        await asyncio.sleep(0.05)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())
    assert events[-1].status == "Cancelled"
