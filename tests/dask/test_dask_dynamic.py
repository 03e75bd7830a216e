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


@cs.task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@cs.task
def plus_one(x: int) -> int:
    return x + 1


@cs.task
def returns_a_failure() -> Any:
    return boom(1)


@cs.task
def returns_a_failure_and_a_success() -> Any:
    return [plus_one(boom(2)), plus_one(41)]


@cs.task
def returns_a_required_param() -> Any:
    return plus_one(cs.Param("needed"))


@pytest.mark.parametrize("log_level", [None, "INFO"])
def test_a_failure_in_a_graph_returned_from_a_dask_worker_is_not_taken_for_a_fallback(
    client: Any, log_level: str | None
) -> None:
    """Issue 22, item 2: the graph comes back pickled, and its "no fallback" marker with it."""
    executor = DaskExecutor(client=client)
    with pytest.raises(ValueError, match="boom 1"):
        cs.run(returns_a_failure(), executor=executor, log_level=log_level)
    with pytest.raises(cs.RunFailed) as caught:
        cs.run(
            returns_a_failure_and_a_success(),
            executor=executor,
            log_level=log_level,
            on_failure="continue",
        )
    assert [type(e) for e in caught.value.failures.values()] == [ValueError]
    with pytest.raises(cs.ParamError, match="needed"):
        cs.run(returns_a_required_param(), executor=executor, log_level=log_level)
