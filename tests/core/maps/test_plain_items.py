"""A map of an ``async def`` task with no policy runs its items on the plain route
(``PlainItems.run_all``): one asyncio task per item, each settling itself, with no policy
chain per item. What it must keep: values in item order, the failure that happened first,
the other items cancelled in a stop-mode run and all of them finishing in a keep-going one,
a start and an end reported for every item (also one cancelled before its first step), and
nothing an item sets in its context reaching what runs next."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pytest
from core_helpers import EventLog

import cascade as cs
from cascade.events import TaskExecutionFinished, TaskExecutionStarted
from cascade.executors.local import LocalExecutor
from cascade.runtime.outcome import MapItemsFailed

pytestmark = pytest.mark.timeout(60)

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


@cs.task
async def double(x: int) -> int:
    return 2 * x


@cs.task
async def double_later(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@cs.task
async def sets_marker(x: int) -> int:
    marker.set(f"item {x}")
    await asyncio.sleep(0)
    return x


@cs.task
async def reads_marker(values: list[int]) -> tuple[list[int], str]:
    return values, marker.get()


@cs.task
async def fails_at(x: int, bad: tuple[int, ...]) -> int:
    await asyncio.sleep(0)
    if x in bad:
        raise ValueError(f"item {x} is bad")
    return x


def _ends(log: EventLog) -> dict[str, str]:
    """Item → status, in the order the ends were reported (``fails_at[3]`` is ``"[3]"``:
    an id's task part carries a suffix when the test module defines the task twice)."""
    return {_item(e.task_id): e.status for e in log.of(TaskExecutionFinished) if "[" in e.task_id}


def _starts(log: EventLog) -> list[str]:
    return [_item(e.task_id) for e in log.of(TaskExecutionStarted) if "[" in e.task_id]


def _item(task_id: str) -> str:
    return "[" + task_id.split("[", 1)[1]


@pytest.mark.parametrize("task", [double, double_later])
@pytest.mark.parametrize("log_level", ["INFO", None])
def test_values_come_back_in_item_order(task: Any, log_level: str | None) -> None:
    log = EventLog()
    assert cs.run(task.map(range(1000)), bus=log.bus, log_level=log_level) == [
        2 * x for x in range(1000)
    ]
    assert sorted(_starts(log)) == sorted(_ends(log))
    assert len(_ends(log)) == 1000 and set(_ends(log).values()) == {"Succeeded"}


def test_an_empty_map_is_an_empty_list() -> None:
    assert cs.run(double.map([]), log_level=None) == []
    assert cs.run(double.map(double.map([])), log_level=None) == []


def test_what_an_item_sets_in_its_context_does_not_reach_the_next_task() -> None:
    assert cs.run(reads_marker(sets_marker.map(range(50))), log_level=None) == (
        list(range(50)),
        "unset",
    )


def test_a_stop_mode_map_raises_the_first_failure_and_cancels_the_other_items() -> None:
    log = EventLog()
    with pytest.raises(ValueError, match="item 3 is bad"):
        cs.run(fails_at.map(range(20), bad=cs.unmapped((3, 11))), bus=log.bus, log_level=None)
    ends = _ends(log)
    assert sorted(_starts(log)) == sorted(ends)
    failed = [k for k, status in ends.items() if status == "Failed"]
    # Items take their steps in item order within a pass: item 3 fails first (item 11 may
    # fail in the same pass, before the stop cancels what is left).
    assert failed[0] == "[3]"
    assert "Cancelled" in ends.values() or failed == ["[3]", "[11]"]


def test_a_keep_going_map_lets_every_item_finish_and_raises_every_failure() -> None:
    log = EventLog()

    @cs.task
    def after(values: list[int]) -> int:
        return sum(values)

    with pytest.raises(cs.RunFailed) as caught:
        cs.run(
            after(fails_at.map(range(20), bad=cs.unmapped((3, 11)))),
            bus=log.bus,
            log_level=None,
            on_failure="continue",
        )
    ends = _ends(log)
    assert sorted(_starts(log)) == sorted(ends)
    assert sorted(k for k, status in ends.items() if status == "Failed") == ["[11]", "[3]"]
    assert sum(1 for status in ends.values() if status == "Succeeded") == 18
    failures = caught.value.failures
    assert sorted(k.split("[")[1] for k in failures) == ["11]", "3]"]
    assert all(isinstance(exc, ValueError) for exc in failures.values())


def test_map_items_failed_is_raised_by_the_map_itself() -> None:
    async def main() -> None:
        with pytest.raises(cs.RunFailed) as caught:
            await cs.Engine().run(
                fails_at.map(range(5), bad=cs.unmapped((1, 2))), on_failure="continue"
            )
        assert sorted(k.split("[")[1] for k in caught.value.failures) == ["1]", "2]"]

    asyncio.run(main())
    assert issubclass(MapItemsFailed, Exception)


def test_items_of_a_cancelled_run_are_reported_cancelled() -> None:
    """The run is cancelled as the map's first item is reported started: each item is
    reported started and then ended once, cancelled before Python 3.12."""
    log = EventLog()
    holder: list[asyncio.Future[Any]] = []
    ran: list[int] = []

    @cs.task
    async def item(x: int) -> int:
        ran.append(x)
        await asyncio.sleep(0)
        return x

    def cancel_at_the_first_item(event: TaskExecutionStarted) -> None:
        if event.task_id.endswith("[0]"):
            holder[0].cancel()

    log.bus.subscribe(TaskExecutionStarted, cancel_at_the_first_item)

    async def main() -> None:
        run = asyncio.ensure_future(cs.Engine(log.bus).run(item.map(range(30))))
        holder.append(run)
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    ends = _ends(log)
    assert sorted(_starts(log)) == sorted(ends)
    assert len(ends) == 30
    if sys.version_info < (3, 12):
        assert set(ends.values()) == {"Cancelled"}  # none got past its first step
    else:  # each took its first step as it started: the cancel may find some done
        assert set(ends.values()) <= {"Cancelled", "Succeeded"}
    assert sorted(ran) == list(range(30))


class _RefusesItemThree(LocalExecutor):
    """The local executor, refusing to submit the fourth call it is handed."""

    name = "refuses-item-three"

    def __init__(self) -> None:
        super().__init__()
        self.submitted = 0

    def submit_plain(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], is_async: bool
    ) -> asyncio.Future[Any]:
        self.submitted += 1
        if self.submitted == 4:
            raise RuntimeError("the executor refused the call")
        return super().submit_plain(fn, args, kwargs, is_async)


@pytest.mark.parametrize("on_failure", ["stop", "continue"])
def test_an_item_its_executor_refuses_fails_the_map_without_hanging(on_failure: str) -> None:
    log = EventLog()
    with pytest.raises((RuntimeError, cs.RunFailed)) as caught:
        cs.run(
            double_later.map(range(10)),
            executor=_RefusesItemThree(),
            bus=log.bus,
            log_level=None,
            on_failure=on_failure,
        )
    assert "the executor refused the call" in repr(caught.value) or any(
        "refused" in str(exc) for exc in getattr(caught.value, "failures", {}).values()
    )
    ends = _ends(log)
    assert sorted(_starts(log)) == sorted(ends)
    assert ends["[3]"] == "Failed"
