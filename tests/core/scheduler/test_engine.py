"""Engine semantics: dataflow scheduling, concurrency, failure, cancellation, the bus."""

import asyncio
import logging
import threading
import time

import pytest

import cascade as cs
from cascade.events import (
    Event,
    RunFinished,
    TaskEvent,
    TaskExecutionFinished,
    TaskExecutionStarted,
)


def _recorded_engine(**options):
    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    return cs.Engine(bus=bus, **options), events


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


def test_max_concurrency_bounds_tasks_in_flight():
    in_flight = 0
    peak = 0

    @cs.task
    async def work(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return i

    @cs.task
    def total(*xs):
        return sum(xs)

    assert cs.run(total(*[work(i) for i in range(30)]), max_concurrency=3, log_level=None) == 435
    assert peak == 3


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

    engine, events = _recorded_engine()
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
    engine, events = _recorded_engine()

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


def test_bus_delivers_subclasses_supports_unsubscribe_and_async_handlers():
    bus = cs.MessageBus()
    task_events: list[Event] = []
    everything: list[Event] = []
    from_async: list[str] = []

    async def async_handler(event):
        await asyncio.sleep(0)
        from_async.append(type(event).__name__)

    bus.subscribe(TaskEvent, task_events.append)
    bus.subscribe(Event, everything.append)
    bus.subscribe(TaskExecutionStarted, async_handler)

    @cs.task
    def one():
        return 1

    asyncio.run(cs.Engine(bus=bus).run(one()))
    assert [type(e).__name__ for e in task_events] == [
        "TaskExecutionStarted",
        "TaskExecutionFinished",
    ]
    assert len(everything) == 4
    assert from_async == ["TaskExecutionStarted"]

    bus.unsubscribe(Event, everything.append)
    asyncio.run(cs.Engine(bus=bus).run(one()))
    assert len(everything) == 4
    assert len(task_events) == 4


def test_a_raising_handler_is_logged_by_name_and_breaks_nothing(caplog):
    bus = cs.MessageBus()
    received: list[Event] = []

    def broken_handler(event):
        raise RuntimeError("handler bug")

    bus.subscribe(Event, broken_handler)
    bus.subscribe(Event, received.append)

    @cs.task
    def one():
        return 1

    with caplog.at_level(logging.ERROR, logger="cascade.bus"):
        assert asyncio.run(cs.Engine(bus=bus).run(one())) == 1
    assert len(received) == 4
    assert "broken_handler" in caplog.text


def test_bus_with_no_subscribers_reports_it_wants_nothing():
    bus = cs.MessageBus()
    assert not bus.wants(TaskExecutionStarted)
    bus.subscribe(TaskEvent, lambda e: None)
    assert bus.wants(TaskExecutionStarted)
    assert not bus.wants(RunFinished)


def test_subscribe_rejects_non_event_types():
    with pytest.raises(TypeError, match="Event subclass"):
        cs.MessageBus().subscribe(int, print)
