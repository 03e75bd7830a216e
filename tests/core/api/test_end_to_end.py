"""The seed's end-to-end scenarios, as the seed wrote them (asyncio.run(engine.run(...)))."""

import asyncio

import pytest

import cascade as cs
from cascade.bus import MessageBus
from cascade.events import Event, RunFinished, TaskExecutionFinished
from cascade.runtime.engine import Engine


class SpySubscriber:
    def __init__(self, bus: MessageBus):
        self.events = []
        bus.subscribe(Event, self.collect)

    def collect(self, event: Event):
        self.events.append(event)

    def event_names(self):
        return [type(e).__name__ for e in self.events]


def test_e2e_linear_workflow():
    @cs.task
    def get_name():
        return "Cascade"

    @cs.task
    def greet(name: str):
        return f"Hello, {name}!"

    final_greeting = greet(get_name())

    bus = MessageBus()
    spy = SpySubscriber(bus)
    engine = Engine(bus=bus)

    result = asyncio.run(engine.run(final_greeting))

    assert result == "Hello, {name}!".format(name="Cascade")
    assert spy.event_names() == [
        "RunStarted",
        "TaskExecutionStarted",
        "TaskExecutionFinished",
        "TaskExecutionStarted",
        "TaskExecutionFinished",
        "RunFinished",
    ]
    finished = [e for e in spy.events if isinstance(e, TaskExecutionFinished)]
    assert [e.task_name for e in finished] == ["get_name", "greet"]
    assert finished[1].result_preview == repr("Hello, Cascade!")
    assert all(e.status == "Succeeded" for e in finished)
    assert len({e.run_id for e in spy.events}) == 1


def test_e2e_diamond_workflow_and_result():
    @cs.task
    def t_a():
        return 5

    @cs.task
    def t_b(x):
        return x * 2

    @cs.task
    def t_c(x):
        return x + 3

    @cs.task
    def t_d(y, z):
        return y + z

    r_a = t_a()
    r_b = t_b(r_a)
    r_c = t_c(r_a)
    r_d = t_d(r_b, z=r_c)

    bus = MessageBus()
    spy = SpySubscriber(bus)
    engine = Engine(bus=bus)

    result = asyncio.run(engine.run(r_d))
    assert result == 18
    started = [e.task_name for e in spy.events if type(e).__name__ == "TaskExecutionStarted"]
    assert sorted(started) == ["t_a", "t_b", "t_c", "t_d"]
    assert started[0] == "t_a" and started[-1] == "t_d"


def test_e2e_failure_propagation():
    @cs.task
    def ok_task():
        return True

    @cs.task
    def failing_task(x):
        raise ValueError("Something went wrong")

    @cs.task
    def unreachable_task(y):
        return False

    r1 = ok_task()
    r2 = failing_task(r1)
    r3 = unreachable_task(r2)

    bus = MessageBus()
    spy = SpySubscriber(bus)
    engine = Engine(bus=bus)

    with pytest.raises(ValueError, match="Something went wrong"):
        asyncio.run(engine.run(r3))

    assert spy.event_names() == [
        "RunStarted",
        "TaskExecutionStarted",  # ok_task
        "TaskExecutionFinished",  # ok_task
        "TaskExecutionStarted",  # failing_task
        "TaskExecutionFinished",  # failing_task (Failed)
        "RunFinished",  # (Failed)
    ]
    failed = spy.events[4]
    assert failed.status == "Failed"
    assert failed.error == "ValueError: Something went wrong"
    run_finished = spy.events[-1]
    assert isinstance(run_finished, RunFinished)
    assert run_finished.status == "Failed"
    assert run_finished.error == "ValueError: Something went wrong"
