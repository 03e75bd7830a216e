"""An ``async def`` call on the local executor settles itself in its last step
(``cascade.runtime.call.settles_itself``) instead of in a done callback one event-loop pass
later. What that must not change: the run's context (nothing a call sets leaks into what it
completes or starts), the events of calls cancelled before they took a step, and executors
whose ``submit_plain`` runs calls elsewhere (they are never handed the wrapper)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from core_helpers import EventLog, run_counting_loop_passes

import cascade as cs
from cascade.events import TaskExecutionFinished, TaskExecutionStarted
from cascade.executors import BaseExecutor, ExecutorRun, RunInfo, TaskCall
from cascade.runtime.scheduler import LAUNCH_BUDGET

pytestmark = pytest.mark.timeout(60)

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


@cs.task
async def step(x: int) -> int:
    return x + 1


@cs.task
async def suspends_then_sets(label: str) -> str:
    await asyncio.sleep(0)  # ends in a later step than its first, also on Python 3.12+
    marker.set(label)
    return marker.get()


@cs.task
async def reads_after(_: str) -> str:
    return marker.get()


@cs.task
def reads_after_sync(_: str) -> str:
    return marker.get()


@pytest.mark.parametrize("log_level", ["INFO", None])
def test_what_a_call_sets_in_its_context_does_not_reach_the_calls_it_completes(
    log_level: str | None,
) -> None:
    first = suspends_then_sets("set by the first call")
    targets = [first, reads_after(first), reads_after_sync(first), reads_after(reads_after(first))]
    assert cs.run(targets, log_level=log_level) == [
        "set by the first call",
        "unset",
        "unset",
        "unset",
    ]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="from 3.12 such steps never suspend")
def test_a_chain_of_async_steps_takes_one_event_loop_pass_per_step() -> None:
    length = 2 * LAUNCH_BUDGET
    node = step(0)
    for _ in range(length - 1):
        node = step(node)
    result, passes = asyncio.run(run_counting_loop_passes(node))
    assert result == length
    # Heard of in a done callback, each step took two passes: its own, and its callback's.
    assert passes < 1.2 * length


def test_every_call_reported_started_is_reported_ended_when_a_fan_out_fails() -> None:
    @cs.task
    async def leaf(i: int) -> int:
        if i == 0:
            raise ValueError("the first leaf fails")
        await asyncio.sleep(0)
        return i

    @cs.task
    def total(values: list[int]) -> int:
        return sum(values)

    log = EventLog()
    with pytest.raises(ValueError, match="the first leaf fails"):
        cs.run(total([leaf(i) for i in range(3 * LAUNCH_BUDGET)]), bus=log.bus, log_level=None)
    started = [e.task_id for e in log.of(TaskExecutionStarted)]
    finished = {e.task_id: e.status for e in log.of(TaskExecutionFinished)}
    assert started, "the fan-out started"
    assert sorted(finished) == sorted(started)
    assert list(finished.values()).count("Failed") == 1


def test_calls_cancelled_before_their_first_step_are_reported_cancelled() -> None:
    """The run is cancelled in the same event-loop pass that starts twenty calls, before
    any of them took its first step (Python 3.12+ takes it as each starts): each is
    reported started and then cancelled, though none ever ran a line of its own (from
    3.12, each is reported ended once)."""
    log = EventLog()
    holder: list[asyncio.Future[Any]] = []
    ran: list[int] = []

    @cs.task
    async def trigger() -> int:
        holder[0].cancel()  # the run wakes to its cancellation before the calls start
        return 1

    @cs.task
    async def dependent(x: int, i: int) -> int:
        ran.append(i)
        await asyncio.sleep(0)
        return x + i

    async def main() -> None:
        first = trigger()
        run = asyncio.ensure_future(
            cs.Engine(log.bus).run([dependent(first, i) for i in range(20)])
        )
        holder.append(run)
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    finished = {e.task_id: e.status for e in log.of(TaskExecutionFinished)}
    started = [e.task_id for e in log.of(TaskExecutionStarted)]
    assert sorted(finished) == sorted(started)
    dependents = {k: v for k, v in finished.items() if k.startswith("dependent")}
    assert len(dependents) == 20
    if sys.version_info < (3, 12):
        assert set(dependents.values()) == {"Cancelled"}
        assert ran == []
    else:  # each took its first step as it started: the cancel may find some done
        assert set(dependents.values()) <= {"Cancelled", "Succeeded"}


class _OtherLoopRun:
    """A handle whose ``submit_plain`` runs ``async def`` calls on a loop in another thread."""

    reports_start = False

    def __init__(self, info: RunInfo, loop: asyncio.AbstractEventLoop, seen: set[int]) -> None:
        self.info = info
        self.loop = loop
        self.seen = seen

    def submit(self, call: TaskCall) -> Any:
        return self.submit_plain(call.fn, call.args, call.kwargs, call.is_async)

    def submit_plain(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], is_async: bool
    ) -> asyncio.Future[Any]:
        assert is_async

        async def there() -> Any:
            self.seen.add(threading.get_ident())
            return await fn(*args, **kwargs)

        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(there(), self.loop))


class OtherLoopExecutor(BaseExecutor):
    """Runs every ``async def`` call on its own loop in its own thread."""

    name = "other-loop"

    def __init__(self) -> None:
        self.seen: set[int] = set()

    @contextlib.asynccontextmanager
    async def open_run(self, run: RunInfo) -> AsyncIterator[ExecutorRun]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield _OtherLoopRun(run, loop, self.seen)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def test_an_executor_that_runs_calls_on_another_loop_is_never_handed_the_wrapper() -> None:
    executor = OtherLoopExecutor()
    node = step(0)
    for _ in range(49):
        node = step(node)
    fan = [step(i) for i in range(50)]
    assert cs.run([node, *fan], executor=executor, log_level="INFO") == [
        50,
        *range(1, 51),
    ]
    assert executor.seen and threading.get_ident() not in executor.seen
