"""The live display says what ready calls wait for: "waiting for pool 'openai' (3 queued)"."""

from __future__ import annotations

import asyncio
import threading

import pytest
from rich.console import Console

import cascade as cs
from cascade.events import Event, TaskExecutionStarted, TaskWaiting
from cascade_cli.output import _Activity
from cascade_cli.run import RunRecord

pytestmark = pytest.mark.timeout(60)


def test_the_activity_lines_show_what_calls_wait_for_and_how_many() -> None:
    release = threading.Event()

    @cs.task(pools={"openai": 1})
    def ask(i: int) -> int:
        if i == 0:
            release.wait(30)
        return i

    bus = cs.MessageBus()
    record = RunRecord(bus, steps=[])
    frames: list[str] = []

    def on_waiting(event: Event) -> None:
        # Subscribed to Event after the record, so the record has seen this event already.
        if isinstance(event, TaskWaiting) and event.queued == 3:
            console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
            console.print(_Activity(record))
            frames.append(console.export_text())
            release.set()

    bus.subscribe(Event, on_waiting)
    started: list[str] = []
    bus.subscribe(TaskExecutionStarted, lambda e: started.append(e.task_id))
    engine = cs.Engine(bus=bus, pools={"openai": 1})
    assert asyncio.run(engine.run([ask(i) for i in range(4)])) == [0, 1, 2, 3]
    assert "waiting for pool 'openai' (3 queued)" in frames[0]
    assert record.waiting() == {}, "nothing waits once every call started"
