"""Tasks on a real Dask cluster that return graphs: the graph comes back to the driver, which
runs it in the same run (its tasks on the cluster too), and plain results stay remote."""

from __future__ import annotations

import os
from typing import Any

import pytest

import cascade as cs
from cascade.events import TaskExecutionFinished, TaskExecutionStarted
from cascade_dask import DaskExecutor

pytestmark = pytest.mark.timeout(120)


@cs.task
def where(label: str) -> tuple[str, int]:
    return label, os.getpid()


@cs.task
def route(n: int) -> Any:
    return where("small") if n < 10 else where("big")


@cs.task
def fan(count: int) -> Any:
    return [where(f"item{i}") for i in range(count)]


@cs.task
def countdown(n: int) -> Any:
    return n if n == 0 else countdown(n - 1)


def test_a_graph_returned_on_dask_is_shipped_back_and_runs_on_the_cluster(client: Any) -> None:
    bus = cs.MessageBus()
    started: list[TaskExecutionStarted] = []
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionStarted, started.append)
    bus.subscribe(TaskExecutionFinished, finished.append)
    executor = DaskExecutor(client=client)
    big, items, zero = cs.run(
        [route(30), fan(3), countdown(5)], executor=executor, bus=bus, log_level=None
    )
    workers = {pid for _, pid in client.run(os.getpid).items()}
    assert big[0] == "big" and big[1] in workers, "the returned task ran on a worker"
    assert [label for label, _ in items] == ["item0", "item1", "item2"]
    assert {pid for _, pid in items} <= workers
    assert zero == 0
    added = [e for e in started if e.parent_task_id is not None]
    assert {e.task_name for e in added} == {"where", "countdown"}
    assert all(e.executor == "dask" for e in started)
    returned = {e.task_name for e in finished if e.returned_graph}
    assert returned == {"route", "fan", "countdown"}
