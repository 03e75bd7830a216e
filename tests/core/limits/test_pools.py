"""Named pools, rate limits and priorities. What users care about is measured inside the
tasks (counters, start times); runs synchronise on events, and wall-clock bounds are given
only where time is the behaviour (rates), generously."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from core_helpers import Occupancy

import cascade as cs
from cascade.events import TaskExecutionStarted, TaskWaiting

pytestmark = pytest.mark.timeout(120)


occupancy = Occupancy()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    global occupancy
    occupancy = Occupancy()
    yield


@cs.task(pools={"api": 1})
def call_api(i: int) -> int:
    occupancy.enter(f"api{i}")
    time.sleep(0.02)  # the call's work
    occupancy.leave()
    return i


@cs.task(pools={"api": 1})
async def call_api_async(i: int) -> int:
    occupancy.enter(f"async{i}")
    await asyncio.sleep(0.02)
    occupancy.leave()
    return i


def test_never_more_holders_of_a_pool_than_its_size_across_tasks() -> None:
    target = [call_api(i) for i in range(8)] + [call_api_async(i) for i in range(8)]
    values = cs.run(target, pools={"api": 3}, log_level=None)
    assert values == list(range(8)) * 2
    assert occupancy.most == 3


def test_a_call_may_hold_several_slots_and_with_pools_overrides_the_task() -> None:
    target = [call_api(i).with_pools(api=2) for i in range(6)]
    assert cs.run(target, pools={"api": 3}, log_level=None) == list(range(6))
    assert occupancy.most == 1, "two of three slots each: one at a time"


def test_a_10_per_second_rate_starts_10_at_once_then_one_every_tenth_of_a_second() -> None:
    starts: list[float] = []
    burst_inside = asyncio.Event()

    @cs.task(rate_limit="10/second")
    async def limited(i: int) -> int:
        starts.append(time.monotonic())
        if len(starts) == 10:
            burst_inside.set()
        if len(starts) <= 10:
            # The burst: the first ten are inside at once. Had fewer been let in together,
            # the first would never get past this.
            await asyncio.wait_for(burst_inside.wait(), timeout=60)
        return i

    assert cs.run([limited(i) for i in range(30)], log_level=None) == list(range(30))
    first = starts[0]
    # Time is the behaviour from here on, so only lower bounds, which no slow machine breaks.
    assert starts[-1] - first >= 1.8, "then about 0.1 s apart"
    # The bucket's promise: by t seconds after the first call, at most 10 + 10 t have started
    # (a late timer may let two start together, never more than the rate allows).
    for k, at in enumerate(starts[10:], start=1):
        assert at - first >= k * 0.1 - 0.02, f"call {k + 10} started too early"


def test_a_pool_may_carry_a_rate() -> None:
    starts: list[float] = []

    @cs.task(pools={"llm": 1})
    async def prompt(i: int) -> int:
        starts.append(time.monotonic())
        return i

    pools = {"llm": cs.Pool(4, rate_limit="5/second", burst=1)}
    assert cs.run([prompt(i) for i in range(4)], pools=pools, log_level=None) == [0, 1, 2, 3]
    assert starts[-1] - starts[0] >= 0.5, "one token every 0.2 s, no burst"


def _release_when_queued(bus: cs.MessageBus, queued: int, release: threading.Event) -> None:
    waiting: set[str] = set()

    def seen(event: TaskWaiting) -> None:
        waiting.add(event.task_id)
        if len(waiting) == queued:
            release.set()

    bus.subscribe(TaskWaiting, seen)


@pytest.mark.parametrize("limit", ["pool", "max_concurrency"])
def test_with_one_slot_the_highest_priority_ready_call_starts_next(limit: str) -> None:
    release = threading.Event()

    @cs.task
    def blocker() -> str:
        occupancy.enter("blocker")
        release.wait(60)
        return "blocker"

    @cs.task
    def work(name: str) -> str:
        occupancy.enter(name)
        return name

    calls = (
        [blocker()]
        + [work(f"low{i}").with_priority(0) for i in range(3)]
        + [work("high").with_priority(10), work("middle").with_priority(5)]
    )
    if limit == "pool":
        calls = [c.with_pools(one=1) for c in calls]
        options: dict[str, Any] = {"pools": {"one": 1}}
    else:
        options = {"max_concurrency": 1}
    bus = cs.MessageBus()
    _release_when_queued(bus, 5, release)
    cs.run(calls, bus=bus, log_level=None, **options)
    assert occupancy.order == ["blocker", "high", "middle", "low0", "low1", "low2"]


def test_map_items_inherit_the_calls_priority() -> None:
    release = threading.Event()

    @cs.task
    def blocker() -> None:
        release.wait(60)

    @cs.task
    def item(name: str) -> str:
        occupancy.enter(name)
        return name

    bus = cs.MessageBus()
    _release_when_queued(bus, 4, release)
    low = item.map(["low-a", "low-b"]).with_pools(one=1)
    high = item.map(["high-a", "high-b"]).with_pools(one=1).with_priority(3)
    cs.run([blocker().with_pools(one=1), low, high], pools={"one": 1}, bus=bus, log_level=None)
    assert occupancy.order == ["high-a", "high-b", "low-a", "low-b"]


def test_retries_hold_the_pool_only_while_an_attempt_runs_and_take_tokens() -> None:
    attempts: list[float] = []

    @cs.task(pools={"api": 1}, rate_limit="5/second", retries=2)
    def flaky() -> str:
        occupancy.enter("flaky")
        attempts.append(time.monotonic())
        occupancy.leave()
        if len(attempts) < 3:
            raise ConnectionError("again")
        return "ok"

    target = [flaky(), *[call_api(i) for i in range(4)]]
    assert cs.run(target, pools={"api": 1}, log_level=None) == ["ok", 0, 1, 2, 3]
    assert occupancy.most == 1
    assert len(attempts) == 3
    # 5/second with a burst of 5: the three attempts may start at once; with burst 1 they
    # are spaced. The run's pool was never held by two.


def test_cancelling_an_attempt_releases_its_slots() -> None:
    @cs.task(pools={"one": 1}, timeout=0.3)
    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    target = [hangs().with_fallback("gave up"), *[call_api(i).with_pools(one=1) for i in range(3)]]
    assert cs.run(target, pools={"one": 1}, log_level=None) == ["gave up", 0, 1, 2]


def test_limits_are_enforced_by_the_driver_on_processes() -> None:
    spans = cs.run(
        [timed_sleep(i) for i in range(4)],
        executor="processes",
        pools={"cpu": 1},
        log_level=None,
    )
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 1e-3, "one holder of the pool at a time, across processes"


@cs.task(pools={"cpu": 1})
def timed_sleep(i: int) -> tuple[float, float]:
    start = time.time()
    time.sleep(0.05)
    return start, time.time()


def test_waiting_is_visible_in_events() -> None:
    release = threading.Event()

    @cs.task(pools={"openai": 1})
    def holder() -> None:
        release.wait(60)

    @cs.task(pools={"openai": 1})
    def waiter(i: int) -> int:
        return i

    bus = cs.MessageBus()
    waiting: list[TaskWaiting] = []
    started: list[TaskExecutionStarted] = []
    bus.subscribe(TaskWaiting, waiting.append)
    bus.subscribe(TaskExecutionStarted, started.append)
    _release_when_queued(bus, 3, release)
    cs.run(
        [holder(), waiter(1), waiter(2), waiter(3)], pools={"openai": 1}, bus=bus, log_level=None
    )
    assert [(e.waiting_for, e.queued) for e in waiting] == [
        ("pool 'openai'", 1),
        ("pool 'openai'", 2),
        ("pool 'openai'", 3),
    ]
    waited = {e.task_name: e for e in started if e.task_name == "waiter"}
    assert waited and all(e.waited_for == ("pool 'openai'",) for e in started if e.waited)
    assert max(e.waited for e in started) > 0


# -- bad input --------------------------------------------------------------------------------


def test_bad_pools_rates_and_priorities_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="pool's size must be a whole number >= 1, got 0"):
        cs.Pool(0)
    with pytest.raises(ValueError, match="run: pool 'db': .*got -2"):
        cs.run(call_api(1), pools={"db": -2}, log_level=None)
    with pytest.raises(
        ValueError, match=r"task 't': rate_limit='10/day' is not a rate; use 'N/second'"
    ):
        cs.task(name="t", rate_limit="10/day")(lambda: None)
    with pytest.raises(ValueError, match="rate_limit='ten/second'"):
        cs.Pool(2, rate_limit="ten/second")
    with pytest.raises(TypeError, match="task 't': priority must be an integer, got 'high'"):
        cs.task(name="t", priority="high")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="priority must be an integer, got 1.5"):
        call_api(1).with_priority(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool 'api' needs a whole number of slots >= 1, got 0"):
        call_api(1).with_pools(api=0)
    with pytest.raises(
        ValueError, match="task 'call_api' needs pool 'api', which this run does not define"
    ):
        cs.run(call_api(1), log_level=None)
    with pytest.raises(
        ValueError, match="task 'call_api' needs 2 slots of pool 'api', which has 1"
    ):
        cs.run(call_api(1).with_pools(api=2), pools={"api": 1}, log_level=None)
    engine = cs.Engine(pools={"api": 2})
    with pytest.raises(ValueError, match="pool 'api' is given twice with different sizes"):
        asyncio.run(engine.run(call_api(1), pools={"api": 3}))
    assert asyncio.run(engine.run(call_api(1), pools={"api": 2})) == 1
    assert occupancy.order == ["api1"], "nothing ran for the refused runs"


def test_graphs_and_the_dry_run_show_pools_rates_and_priorities() -> None:
    @cs.task(pools={"openai": 2}, rate_limit="60/minute", priority=10)
    def ask(q: str) -> str:
        return q

    graph = [ask("a"), call_api(1).with_priority(-1)]
    dot = cs.visualize(graph)
    assert 'label="ask [pool openai×2, rate 60/minute, priority 10]"' in dot
    assert 'label="call_api [pool api×1, priority -1]"' in dot
    notes = {step["task"]: step["notes"] for step in cs.graph.plan(graph)}
    assert notes["ask"] == ["pool openai×2", "rate 60/minute", "priority 10"]
