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
    after_fast_ran = asyncio.Event()

    @cs.task
    async def fast():
        order.append("fast")
        return 1

    @cs.task
    async def slow():
        # Ends only once after_fast has run: an engine that waited for the whole first stage
        # (fast and slow) before starting after_fast never gets past this.
        await asyncio.wait_for(after_fast_ran.wait(), timeout=60)
        order.append("slow")
        return 2

    @cs.task
    async def after_fast(x):
        order.append("after_fast")
        after_fast_ran.set()
        return x

    @cs.task
    def join(a, b):
        return a + b

    assert cs.run(join(after_fast(fast()), slow()), log_level=None) == 3
    assert order == ["fast", "after_fast", "slow"]


def test_independent_async_tasks_run_concurrently():
    inside = 0
    all_inside = asyncio.Event()

    @cs.task
    async def meet(i):
        nonlocal inside
        inside += 1
        if inside == 50:
            all_inside.set()
        # Returns only once all 50 calls are inside at once: run one after another, the
        # first would never get past this.
        await asyncio.wait_for(all_inside.wait(), timeout=60)
        return i

    @cs.task
    def total(*xs):
        return sum(xs)

    assert cs.run(total(*[meet(i) for i in range(50)]), log_level=None) == sum(range(50))
    assert inside == 50


def test_sync_tasks_run_in_threads_and_do_not_block_the_loop():
    threads: set[str] = set()
    all_blocked = threading.Barrier(4, timeout=60)
    ticked = threading.Event()

    @cs.task
    def blocking(i):
        threads.add(threading.current_thread().name)
        # The four calls block at once (each in its own thread), and stay blocked until the
        # ticker, an async task on the event loop, has ticked: a call run on the loop, or
        # one blocking it, would leave the barrier or the ticker waiting.
        all_blocked.wait()
        assert ticked.wait(60), "the event loop did not run while sync tasks blocked"
        return i

    @cs.task
    async def ticker():
        for _ in range(5):
            await asyncio.sleep(0)
        ticked.set()

    @cs.task
    def total(*xs):
        return len(xs)

    assert cs.run(total(ticker(), *[blocking(i) for i in range(4)]), log_level=None) == 5
    assert threading.main_thread().name not in threads
    assert len(threads) == 4


def test_failure_cancels_running_async_tasks_and_starts_nothing_new():
    cancelled: list[str] = []
    started: list[str] = []

    running = asyncio.Event()

    @cs.task
    async def long_running():
        running.set()
        try:
            await asyncio.sleep(3600)  # a run that waited for it would hit the test's timeout
        except asyncio.CancelledError:
            cancelled.append("long_running")
            raise

    @cs.task
    async def fails():
        await asyncio.wait_for(running.wait(), timeout=60)
        raise ValueError("boom")

    @cs.task
    def downstream(x, y):
        started.append("downstream")

    engine, events = recorded_engine()
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(engine.run(downstream(long_running(), fails())))
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
    running = asyncio.Event()

    @cs.task
    async def forever():
        running.set()
        await asyncio.sleep(3600)

    async def main():
        runner = asyncio.create_task(engine.run(forever()))
        await asyncio.wait_for(running.wait(), timeout=60)  # cancel the run while it runs
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())
    assert events[-1].status == "Cancelled"
