"""Runtime behaviour a new user relies on (field report): a failing map item is reported with
its own message, a retry keeps its place in a pool's queue, nothing starts after a map failed,
and a task's duration is the time it ran."""

from __future__ import annotations

import asyncio

import pytest

import cascade as cs
from cascade.events import Event, TaskExecutionFinished

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
