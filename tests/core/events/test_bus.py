"""The message bus: delivery to subclasses and async handlers, unsubscribing, handlers that raise,
and telling the engine which events anyone wants."""

import asyncio
import logging
from typing import Any

import pytest
from core_helpers import ident, size

import cascade as cs
from cascade.events import (
    Event,
    RunFinished,
    TaskEvent,
    TaskExecutionFinished,
    TaskExecutionStarted,
)


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


class Custom(BaseException):
    pass


@pytest.mark.parametrize("raised", [asyncio.CancelledError, GeneratorExit, Custom])
def test_a_handler_raising_a_base_exception_breaks_nothing(
    raised: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    def bad_handler(event: Any) -> None:
        raise raised()

    bus = cs.MessageBus()
    bus.subscribe(TaskExecutionFinished, bad_handler)
    bus.subscribe(RunFinished, bad_handler)
    bus.subscribe(TaskExecutionStarted, bad_handler)
    with caplog.at_level(logging.ERROR, logger="cascade.bus"):
        assert cs.run([ident(1), size(ident([1, 2]))], bus=bus, log_level=None) == [1, 2]
        with pytest.raises(KeyError, match="expected"):
            cs.run(_raises_key_error(), bus=bus, log_level=None)
    assert any("bad_handler" in r.getMessage() for r in caplog.records)


@cs.task
def _raises_key_error() -> None:
    raise KeyError("expected")
