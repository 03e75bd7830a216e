"""A task's duration is the time it ran: time spent waiting for a thread or a slot is not counted,
and the time it ran is."""

from __future__ import annotations

import time

import pytest
from core_helpers import collect_events

import cascade as cs
from cascade.events import (
    Event,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TasksSucceeded,
)


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
    bus, seen = collect_events()
    cs.run([nap(0.05), nap(0.05)], bus=bus, log_level=None)
    durations = _durations(seen)
    assert len(durations) == 2 and all(d >= 0.05 for d in durations), durations
