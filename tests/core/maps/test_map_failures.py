"""Runtime behaviour a new user relies on (field report): a failing map item is reported with
its own message, a retry keeps its place in a pool's queue, nothing starts after a map failed,
and a task's duration is the time it ran."""

from __future__ import annotations

import asyncio
import time

import pytest

import cascade as cs
from cascade.events import Event, TaskExecutionFinished, TaskExecutionStarted, TasksSucceeded

pytestmark = pytest.mark.timeout(60)


def _collect() -> tuple[cs.MessageBus, list[Event]]:
    bus = cs.MessageBus()
    seen: list[Event] = []
    bus.subscribe(Event, seen.append)
    return bus, seen


# -- item 3: id, name and error belong to the same attempt ---------------------------------

_released: dict[str, asyncio.Event] = {}


@cs.task
async def page(n: int) -> int:
    gate = _released.setdefault("gate", asyncio.Event())
    if n == 7:
        gate.set()  # item 3 fails right after this one, in the same pass of the loop
        raise ConnectionError(f"page {n}: HTTP 503")
    if n == 3:
        await gate.wait()
        raise ConnectionError(f"page {n}: HTTP 503")
    return n


def test_the_failure_a_map_raises_is_the_one_its_events_report_first():
    _released.clear()
    bus, seen = _collect()
    with pytest.raises(ConnectionError) as caught:
        cs.run(page.map(range(10)), bus=bus, log_level=None)
    failed = [e for e in seen if isinstance(e, TaskExecutionFinished) and e.status == "Failed"]
    assert failed, "no failure was reported"
    first = failed[0]
    assert first.task_id.endswith("[7]")
    assert str(caught.value) == "page 7: HTTP 503"
    assert first.error.endswith(str(caught.value))


# -- item 5: a retry keeps its place in a pool's queue ----------------------------------------

_starts: list[tuple[int, int]] = []


@cs.task(pools={"api": 1}, retries=1)
async def call_api(n: int, fail_times: int) -> int:
    attempt = 1 + sum(1 for item, _ in _starts if item == n)
    _starts.append((n, attempt))
    await asyncio.sleep(0)
    if n == 1 and attempt <= fail_times:
        raise ConnectionError(f"item {n} attempt {attempt}")
    return n


def test_a_retry_keeps_its_place_in_the_pools_queue():
    _starts.clear()
    result = cs.run(call_api.map(range(10), fail_times=1), pools={"api": 2}, log_level=None)
    assert result == list(range(10))
    retry = _starts.index((1, 2))
    # Items 0 and 1 end together and hand their slots to items 2 and 3; the retry of item 1
    # is next in line, not behind the six items still queued after it.
    assert _starts[:5] == [(0, 1), (1, 1), (2, 1), (3, 1), (1, 2)], _starts
    assert retry == 4


def test_a_map_whose_item_keeps_failing_stops_without_running_the_rest_first():
    _starts.clear()
    with pytest.raises(ConnectionError, match="item 1 attempt 2"):
        cs.run(call_api.map(range(10), fail_times=2), pools={"api": 2}, log_level=None)
    # The retry runs beside item 4 (the pool has two slots); nothing starts once it failed.
    assert _starts == [(0, 1), (1, 1), (2, 1), (3, 1), (1, 2), (4, 1)]


# -- item 6: nothing starts after the run decided to stop -----------------------------------

_ran: list[int] = []


@cs.task(concurrency=1)
def one_at_a_time(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@cs.task(concurrency=1)
async def one_at_a_time_async(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@pytest.mark.parametrize("task", [one_at_a_time, one_at_a_time_async], ids=["sync", "async"])
def test_no_item_starts_after_a_map_failed(task):
    _ran.clear()
    bus, seen = _collect()
    with pytest.raises(ValueError, match="item 0 failed"):
        cs.run(task.map(range(5)), bus=bus, log_level=None)
    assert _ran == [0]
    started = [e.task_id for e in seen if type(e).__name__ == "TaskExecutionStarted"]
    assert len(started) == 1 and started[0].endswith("[0]")


@cs.task(pools={"db": 1})
def uses_db(n: int) -> int:
    _ran.append(n)
    if n == 0:
        raise ValueError("item 0 failed")
    return n


@pytest.mark.parametrize("route", ["direct", "policies"])
def test_no_call_waiting_for_a_pool_starts_after_the_run_failed(route):
    _ran.clear()
    calls = [uses_db(n) for n in range(4)]
    if route == "policies":
        calls = [call.with_retry(retries=0) for call in calls]
    with pytest.raises(ValueError, match="item 0 failed"):
        cs.run(calls, pools={"db": 1}, log_level=None)
    assert _ran == [0]


# -- item 7: a duration is the time the task ran ------------------------------------------


@cs.task
def noop(x: int) -> int:
    return x


@cs.task
async def anoop(x: int) -> int:
    return x


@cs.task
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _durations(seen: list[Event]) -> list[float]:
    found: list[float] = []
    for event in seen:
        if isinstance(event, TasksSucceeded):
            found += [
                end - start for start, end in zip(event.start_times, event.end_times, strict=True)
            ]
        elif isinstance(event, TaskExecutionFinished):
            found.append(event.duration)
    return found


@pytest.mark.parametrize("task", [noop, anoop], ids=["sync", "async"])
@pytest.mark.parametrize("observed", [False, True], ids=["bulk", "per-attempt"])
def test_durations_of_a_wide_fan_out_do_not_count_time_spent_waiting(task, observed):
    bus = cs.MessageBus()
    seen: list[Event] = []
    if observed:  # every attempt observed: the route with a TaskCall
        bus.subscribe(TaskExecutionStarted, lambda event: None)
        bus.subscribe(TaskExecutionFinished, seen.append)
    else:  # successes in bulk (the run recorder's way): the direct route without a TaskCall
        bus.subscribe(TasksSucceeded, seen.append)
    began = time.perf_counter()
    cs.run([task(i) for i in range(5000)], bus=bus, log_level=None)
    wall = time.perf_counter() - began
    durations = _durations(seen)
    assert len(durations) == 5000
    # Each call does nothing: together they ran for a small part of the run, not thousands of
    # times its length (which is what waiting for a thread or for the loop added up to).
    assert sum(durations) < wall, (sum(durations), wall)


def test_a_duration_still_covers_the_time_the_task_ran():
    bus, seen = _collect()
    cs.run([nap(0.05), nap(0.05)], bus=bus, log_level=None)
    durations = _durations(seen)
    assert len(durations) == 2 and all(d >= 0.05 for d in durations), durations
