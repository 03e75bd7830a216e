"""The engine's fast paths keep their promises: tasks that finish as they start are completed
at once (Python 3.12+) as their own asyncio tasks without starving the event loop; a wide
fan-out keeps a few batches alive; the garbage collector is left alone unless asked."""

import asyncio
import gc
import sys

import pytest
from core_helpers import run_counting_loop_passes

import cascade as cs
from cascade.runtime.scheduler import LAUNCH_BUDGET


@cs.task
async def step(x: int) -> int:
    return x + 1


def _chain(length: int):
    node = step(0)
    for _ in range(length - 1):
        node = step(node)
    return node


@pytest.mark.skipif(sys.version_info < (3, 12), reason="tasks start eagerly from Python 3.12")
def test_a_chain_of_steps_that_never_suspend_needs_no_loop_pass_per_step():
    length = 4 * LAUNCH_BUDGET
    result, passes = asyncio.run(run_counting_loop_passes(_chain(length)))
    assert result == length
    # Started the next pass each, a step costs two loop passes (8 * LAUNCH_BUDGET in all);
    # completed at once, the chain lets the loop in once per LAUNCH_BUDGET steps.
    assert passes < length // 10


def test_a_long_chain_of_steps_lets_the_event_loop_run_between_them():
    length = 4 * LAUNCH_BUDGET
    result, passes = asyncio.run(run_counting_loop_passes(_chain(length)))
    assert result == length
    assert passes >= length // LAUNCH_BUDGET


def test_a_step_runs_as_its_own_asyncio_task_so_timeouts_and_task_groups_work_in_it():
    caller: list[asyncio.Task] = []

    @cs.task
    async def inside() -> tuple[bool, bool]:
        me = asyncio.current_task()
        # asyncio.timeout and TaskGroup (3.11+) and anyio's cancel scopes need a task.
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(30):
                pass
            async with asyncio.TaskGroup() as group:
                group.create_task(asyncio.sleep(0))
        return me is not None, me is not caller[0]

    async def main():
        caller.append(asyncio.current_task())
        return await cs.Engine().run(inside())

    assert asyncio.run(main()) == (True, True)


def test_a_step_that_fails_as_it_starts_fails_the_run_with_its_error():
    ran: list[str] = []

    @cs.task
    async def broken(x: int) -> int:
        raise ValueError(f"bad input {x}")

    @cs.task
    async def after(x: int) -> int:
        ran.append("after")
        return x

    with pytest.raises(ValueError, match="bad input 1"):
        cs.run(after(broken(step(0))))
    assert ran == []


def test_a_step_that_sets_a_context_variable_does_not_leak_it_to_the_next_step():
    import contextvars

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    @cs.task
    async def sets(x: int) -> str:
        marker.set("set by the first step")
        return marker.get()

    @cs.task
    async def reads(previous: str) -> tuple[str, str]:
        return previous, marker.get()

    assert cs.run(reads(sets(1))) == ("set by the first step", "unset")


def test_a_wide_fan_out_keeps_only_a_few_batches_of_tasks_alive_at_once():
    alive = 0
    most = 0

    @cs.task
    async def leaf() -> int:
        nonlocal alive, most
        alive += 1
        most = max(most, alive)
        await asyncio.sleep(0)
        alive -= 1
        return 1

    @cs.task
    def total(*values: int) -> int:
        return sum(values)

    width = 8 * LAUNCH_BUDGET
    assert cs.run(total(*[leaf() for _ in range(width)])) == width
    # Every task runs; launched a batch per event-loop pass, no more than a few batches'
    # worth are ever in flight together (all of them were, before).
    assert LAUNCH_BUDGET <= most <= 3 * LAUNCH_BUDGET


# -- the garbage collector: untouched by default, frozen for the run on request ---------------


@cs.task
async def collector_state(_: object = None) -> tuple[bool, int]:
    return gc.isenabled(), gc.get_freeze_count()


def test_a_run_leaves_the_garbage_collector_as_it_found_it():
    assert gc.get_freeze_count() == 0
    enabled, frozen = cs.run(collector_state(step(1)), log_level=None)
    assert (enabled, frozen) == (True, 0)
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_freeze_gc_keeps_the_graph_out_of_collections_during_the_run_and_undoes_it():
    assert gc.get_freeze_count() == 0
    enabled, frozen = cs.run(collector_state(step(1)), log_level=None, freeze_gc=True)
    assert enabled
    assert frozen > 0  # the graph and everything alive when the run started
    assert gc.get_freeze_count() == 0


def test_freeze_gc_undoes_the_freeze_only_when_the_last_frozen_run_ends():
    release = asyncio.Event()

    @cs.task
    async def held() -> int:
        await release.wait()
        return gc.get_freeze_count()

    async def main() -> tuple[int, int, int]:
        engine = cs.Engine(freeze_gc=True)
        long_run = asyncio.ensure_future(engine.run(held()))
        _, during_short = await engine.run(collector_state())
        release.set()
        during_long = await long_run
        return during_short, during_long, gc.get_freeze_count()

    during_short, during_long, after = asyncio.run(main())
    assert during_short > 0
    assert during_long > 0  # the short run ending did not unfreeze under the long one
    assert after == 0


def test_freeze_gc_leaves_an_application_s_own_freeze_alone():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        cs.run(collector_state(step(1)), log_level=None, freeze_gc=True)
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


# -- successes in bulk: TasksSucceeded ---------------------------------------------------------


def test_bulk_successes_carry_every_succeeded_attempt_before_the_run_finishes():
    from cascade.events import RunFinished, TaskExecutionFinished, TasksSucceeded

    seen: list[object] = []
    bus = cs.MessageBus()
    bus.subscribe(TasksSucceeded, seen.append)
    bus.subscribe(RunFinished, seen.append)
    failures: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionFinished, failures.append, statuses=("Failed",))
    tries = 0

    @cs.task(retries=1)
    async def flaky(x: int) -> int:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise ConnectionError("first try")
        return x

    @cs.task
    def total(*values: int) -> int:
        return sum(values)

    width = 3 * LAUNCH_BUDGET
    target = total(flaky(1), *[step(i) for i in range(width)])
    assert asyncio.run(cs.Engine(bus=bus).run(target)) == 1 + sum(range(1, width + 1))
    assert isinstance(seen[-1], RunFinished)
    bulks = seen[:-1]
    assert bulks and all(isinstance(b, TasksSucceeded) for b in bulks)
    attempts = [a for b in bulks for a in b.attempts]  # type: ignore[attr-defined]
    assert len(attempts) == width + 2  # every step, flaky's second attempt, the total
    by_name: dict[str, list[tuple]] = {}
    for attempt in attempts:
        by_name.setdefault(attempt[1], []).append(attempt)
    assert len(by_name["step"]) == width
    assert [a[3] for a in by_name["flaky"]] == [2]  # the attempt that succeeded
    _, name, parent, number, started, ended, executor = by_name["total"][0]
    assert (name, parent, number, executor) == ("total", None, 1, "local")
    assert started <= ended
    assert len({a[0] for a in attempts}) == len(attempts)  # one row per task id
    assert [f.attempt for f in failures] == [1]  # failures still come one by one


def test_bulk_successes_reach_only_their_own_subscribers():
    from cascade.events import Event, TasksSucceeded

    everything: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, everything.append)
    bus.subscribe(TasksSucceeded, lambda event: None)
    assert asyncio.run(cs.Engine(bus=bus).run(step(step(1)))) == 3
    assert not any(isinstance(e, TasksSucceeded) for e in everything)
    assert [type(e).__name__ for e in everything].count("TaskExecutionFinished") == 2


@cs.task
def grow(n: int) -> object:
    return [step(i) for i in range(n)]


@cs.task
def hand_over(x: int) -> object:
    return step(x)


@pytest.mark.parametrize("route", ["plain", "task call"])
def test_bulk_successes_name_the_attempts_that_returned_a_graph(route: str):
    """``TasksSucceeded.returned_graphs`` says what ``TaskExecutionFinished.returned_graph``
    says, on the route without a ``TaskCall`` and on the one with (a call hook), for a
    returned list of calls and for a tail call (whose node becomes the call it returned)."""
    from cascade.events import TaskExecutionFinished, TasksSucceeded

    bulks: list[TasksSucceeded] = []
    bus = cs.MessageBus()
    bus.subscribe(TasksSucceeded, bulks.append)
    engine = cs.Engine(bus=bus, log_level=None)
    if route == "task call":
        engine.add_call_hook(lambda call: None)
    target = [grow(2), hand_over(5), step(7)]
    assert asyncio.run(engine.run(target)) == [[1, 2], 6, 8]
    returned = {task_id for bulk in bulks for task_id in bulk.returned_graphs}
    assert returned == {target[0].id, target[1].id}
    for bulk in bulks:
        assert set(bulk.returned_graphs) <= set(bulk.task_ids)
    by_id = {a[0]: a for bulk in bulks for a in bulk.attempts}
    assert len(by_id) == 6  # grow, its two steps, hand_over, the step it returned, step(7)

    # The same run seen one event per attempt agrees.
    finished: list[TaskExecutionFinished] = []
    engine.bus.subscribe(TaskExecutionFinished, finished.append)
    target = [grow(2), hand_over(5), step(7)]
    asyncio.run(engine.run(target))
    assert {f.task_id for f in finished if f.returned_graph} == {target[0].id, target[1].id}


def test_a_failure_on_the_direct_route_names_the_task_that_added_it():
    from cascade.events import TaskExecutionFinished

    failed: list[TaskExecutionFinished] = []
    bus = cs.MessageBus()
    bus.subscribe(TaskExecutionFinished, failed.append, statuses=("Failed",))

    @cs.task
    async def broken() -> int:
        raise ValueError("broken child")

    @cs.task
    async def parent() -> object:
        return broken()

    target = parent()
    with pytest.raises(ValueError, match="broken child"):
        asyncio.run(cs.Engine(bus=bus).run(target))
    assert [(f.task_name, f.parent_task_id) for f in failed] == [("broken", target.id)]


# -- a checkpoint policy on the direct route ---------------------------------------------------


class CountingCheckpoint:
    """A checkpoint policy keeping values by task name and first argument."""

    def __init__(self, kept: dict[tuple[str, object], object] | None = None) -> None:
        self.kept = dict(kept or {})
        self.looked_up: list[str] = []

    def lookup(self, context: cs.CacheContext) -> tuple[bool, object]:
        self.looked_up.append(context.task_name)
        key = (context.task_name, context.args[0] if context.args else None)
        return (key in self.kept, self.kept.get(key))

    def save(self, context: cs.CacheContext, value: object) -> None:
        self.kept[(context.task_name, context.args[0] if context.args else None)] = value


def test_a_run_wide_checkpoint_keeps_plain_tasks_results_and_a_hit_skips_the_call():
    from cascade.events import TaskSkipped

    runs: list[int] = []

    @cs.task
    async def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @cs.task
    def total(*values: int) -> int:
        return sum(values)

    policy = CountingCheckpoint()
    first = asyncio.run(cs.Engine().run(total(double(1), double(2)), checkpoint=policy))
    assert first == 6 and sorted(runs) == [1, 2]
    assert policy.kept[("double", 1)] == 2 and policy.kept[("total", 2)] == 6

    skipped: list[TaskSkipped] = []
    bus = cs.MessageBus()
    bus.subscribe(TaskSkipped, skipped.append)
    again = CountingCheckpoint({("double", 1): 20})
    second = asyncio.run(cs.Engine(bus=bus).run(total(double(1), double(3)), checkpoint=again))
    assert second == 26  # the kept 20, and double(3) run
    assert sorted(runs) == [1, 2, 3]
    # Restored from the run-wide checkpoint: a "Checkpoint" skip, not a task cache's "CacheHit".
    assert [(s.task_name, s.reason) for s in skipped] == [("double", "Checkpoint")]


def test_a_checkpoint_that_cannot_be_read_fails_the_task_naming_it():
    class Broken(CountingCheckpoint):
        def lookup(self, context: cs.CacheContext) -> tuple[bool, object]:
            raise OSError("checkpoint store unreadable")

    with pytest.raises(OSError, match="unreadable") as caught:
        asyncio.run(cs.Engine().run(step(1), checkpoint=Broken()))
    assert any("checkpoint of task 'step'" in note for note in caught.value.__notes__)


def test_an_attempt_reported_without_a_task_call_carries_its_own_start_and_duration():
    import time

    from cascade.events import TaskExecutionFinished

    ended: list[TaskExecutionFinished] = []
    bus = cs.MessageBus()
    bus.subscribe(TaskExecutionFinished, ended.append)  # ends only: no TaskCall is built

    @cs.task
    async def busy() -> int:
        time.sleep(0.05)  # never suspends: on 3.12+ it runs to its end as it starts
        return 1

    assert asyncio.run(cs.Engine(bus=bus).run(busy())) == 1
    (event,) = ended
    assert event.status == "Succeeded"
    assert event.duration >= 0.04
    assert event.start_time <= event.timestamp - 0.04
