"""Streams on Dask (docs/streams.md): the generator runs on the driver, the items of the
stages mapped over it are submitted to the cluster as they come."""

from __future__ import annotations

import asyncio
from typing import Any

import cascade as cs
from cascade.events import Event, TaskExecutionStarted
from cascade_dask import DaskExecutor


@cs.task
def numbers(n: int) -> Any:
    yield from range(n)


@cs.task
def double(x: int) -> int:
    return 2 * x


@cs.task
def plus_one(x: int) -> int:
    return x + 1


def test_a_stream_through_two_stages_and_a_fold_on_dask(dask_client: Any) -> None:
    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    stream = numbers(20)
    stage = plus_one.map(double.map(stream))
    engine = cs.Engine(bus=bus, executor=DaskExecutor(client=dask_client), log_level=None)
    result = asyncio.run(engine.run([stage, cs.fold(lambda acc, x: acc + x, stage, 0)]))
    assert result == [[2 * i + 1 for i in range(20)], sum(2 * i + 1 for i in range(20))]
    started = {e.task_id: e.executor for e in events if isinstance(e, TaskExecutionStarted)}
    assert started[f"{stage.id}[3]"] == "dask"
    assert started[stream.id] == "local"
