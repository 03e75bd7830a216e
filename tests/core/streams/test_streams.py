"""Streams (docs/streams.md): pipelined maps, generator tasks, backpressure and ``cs.fold``.

Order and overlap are shown by events and markers, never by time: a task that would wait
forever without pipelining waits on an event the pipelined stage sets, with a generous
timeout that turns a missing overlap into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import pytest
from core_helpers import collect_events

import cascade as cs
from cascade.events import (
    Event,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskSkipped,
)
from cascade.records import SQLiteRunStore, render_report

pytestmark = pytest.mark.timeout(120)

#: Long enough never to fire on a loaded machine; only a missing overlap reaches it.
NEVER = 60.0


def _run(target: Any, **kwargs: Any) -> tuple[Any, list[Event]]:
    """Run ``target`` (quietly unless a ``log_level`` is given): its result and its events."""
    bus, events = collect_events()
    kwargs.setdefault("log_level", None)
    return cs.run(target, bus=bus, **kwargs), events


def _position(events: list[Event], kind: type[Event], task_id: str, **fields: Any) -> int:
    for k, event in enumerate(events):
        if (
            isinstance(event, kind)
            and getattr(event, "task_id", None) == task_id
            and all(getattr(event, name) == value for name, value in fields.items())
        ):
            return k
    raise AssertionError(f"no {kind.__name__} for {task_id} {fields}")


# -- 1. pipelined maps -------------------------------------------------------------------------

gates: dict[str, asyncio.Event] = {}


@cs.task
async def slow_first(x: int) -> int:
    if x == 0:
        # Item 0 of this stage finishes only once item 1 of the next one has started.
        await asyncio.wait_for(gates["b1"].wait(), NEVER)
    return x + 1


@cs.task
async def times_ten(x: int) -> int:
    if x == 2:  # the value item 1 of ``slow_first`` produced
        gates["b1"].set()
    return x * 10


def test_item_1_of_the_next_stage_starts_before_item_0_of_this_one_finishes() -> None:
    gates["b1"] = asyncio.Event()
    first = slow_first.map([0, 1, 2])
    second = times_ten.map(first)
    result, events = _run(second)
    assert result == [10, 20, 30]
    started_b1 = _position(events, TaskExecutionStarted, f"{second.id}[1]")
    finished_a0 = _position(events, TaskExecutionFinished, f"{first.id}[0]")
    assert started_b1 < finished_a0


@cs.task
def add(x: int, y: int) -> int:
    return x + y


@cs.task
def scale(x: int, factor: int) -> int:
    return x * factor


def test_a_chain_of_maps_with_unmapped_and_extra_mapped_arguments_keeps_input_order() -> None:
    xs = list(range(20))
    ys = list(range(100, 120))
    chain = add.map(scale.map(add.map(xs, ys), cs.unmapped(3)), y=xs)
    result, events = _run(chain)
    assert result == [(x + y) * 3 + x for x, y in zip(xs, ys, strict=True)]
    # Every item of every stage is its own attempt, under ``<map id>[i]``.
    finished = {e.task_id for e in events if isinstance(e, TaskExecutionFinished)}
    assert {f"{chain.id}[{i}]" for i in range(20)} <= finished


@cs.task
async def maybe_fail(x: int) -> int:
    if x == 1:
        raise ValueError("item 1 is bad")
    return x


seen: list[int] = []


@cs.task
async def note(x: int) -> int:
    seen.append(x)
    return x


def test_stop_mode_a_failing_item_stops_the_run_and_its_next_stage_item_never_starts() -> None:
    seen.clear()
    first = maybe_fail.map([0, 1, 2, 3])
    second = note.map(first)
    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    with pytest.raises(ValueError, match="item 1 is bad"):
        cs.run(second, bus=bus, log_level=None)
    started = {e.task_id for e in events if isinstance(e, TaskExecutionStarted)}
    assert f"{second.id}[1]" not in started
    assert 1 not in seen


def test_continue_mode_an_item_whose_input_failed_is_skipped_and_the_others_go_on() -> None:
    seen.clear()
    first = maybe_fail.map([0, 1, 2, 3])
    second = note.map(first)
    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    with pytest.raises(cs.RunFailed) as caught:
        cs.run(second, bus=bus, log_level=None, on_failure="continue")
    assert sorted(seen) == [0, 2, 3]
    assert list(caught.value.failures) == [f"{first.id}[1]"]
    skipped = [e for e in events if isinstance(e, TaskSkipped)]
    assert [(e.task_id, e.reason, e.upstream) for e in skipped] == [
        (f"{second.id}[1]", "UpstreamFailed", f"{first.id}[1]")
    ]
    assert caught.value.results is None  # the stage as a whole did not complete


def test_a_fallback_applies_per_item_and_the_next_stage_takes_it() -> None:
    seen.clear()
    result, _ = _run(note.map(maybe_fail.map([0, 1, 2]).with_fallback(-1)))
    assert result == [0, -1, 2]
    assert sorted(seen) == [-1, 0, 2]


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


def test_a_pipelined_stage_also_read_whole_keeps_its_list() -> None:
    first = scale.map(list(range(10)), cs.unmapped(2))
    result, _ = _run([total(first), add.map(first, cs.unmapped(1)), first])
    assert result == [90, [2 * x + 1 for x in range(10)], [2 * x for x in range(10)]]


@cs.task
def flag(value: bool) -> bool:
    return value


def test_a_skipped_producer_skips_the_stage_mapped_over_it() -> None:
    first = scale.map([1, 2], cs.unmapped(2)).run_if(flag(False))
    second = add.map(first, cs.unmapped(1))
    result, events = _run([second, cs.fold(lambda a, x: a + x, second, 0)])
    assert result == [None, None]
    reasons = {e.task_id: e.reason for e in events if isinstance(e, TaskSkipped)}
    assert reasons[second.id] == "UpstreamSkipped"


def test_streams_of_different_lengths_are_an_error_naming_the_stage() -> None:
    with pytest.raises(ValueError, match=r"add\.map\(\): iterated arguments differ in length"):
        _run(add.map(scale.map([1, 2, 3], cs.unmapped(1)), [1, 2]))


# -- 2. generator tasks ------------------------------------------------------------------------


@cs.task
def count_up(n: int) -> Any:
    yield from range(n)


@cs.task
async def count_up_async(n: int) -> Any:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@pytest.mark.parametrize("producer", [count_up, count_up_async])
def test_a_stream_passed_to_an_ordinary_task_arrives_as_its_list(producer: Any) -> None:
    result, _ = _run([total(producer(5)), producer(3)])
    assert result == [10, [0, 1, 2]]


@pytest.mark.parametrize("producer", [count_up, count_up_async])
def test_map_over_a_stream_is_a_stream_and_stages_chain_into_a_fold(producer: Any) -> None:
    stream = producer(100)
    stage = scale.map(add.map(stream, cs.unmapped(1)), cs.unmapped(2))
    folded = cs.fold(lambda acc, x: acc + x, stage, 0)
    result, events = _run(folded)
    assert result == sum((i + 1) * 2 for i in range(100))
    fold_runs = [
        e for e in events if isinstance(e, TaskExecutionFinished) and e.task_name == "fold"
    ]
    assert [(e.task_id, e.status) for e in fold_runs] == [(folded.id, "Succeeded")]


yield_log: list[str] = []
parsed: dict[int, threading.Event] = {}


@cs.task
def five_pages() -> Any:
    for i in range(5):
        yield_log.append(f"yield {i}")
        yield i
        # The barrier: the next page is produced only once this one was parsed.
        assert parsed[i].wait(NEVER), f"page {i} was never parsed while the generator ran"


@cs.task
def parse(page: int) -> int:
    yield_log.append(f"parsed {page}")
    parsed[page].set()
    return page * 2


@cs.task
async def apages() -> Any:
    for i in range(5):
        yield_log.append(f"yield {i}")
        yield i
        await asyncio.wait_for(asyncio.to_thread(parsed[i].wait), NEVER)


@pytest.mark.parametrize("producer", [five_pages, apages])
def test_parse_of_item_0_finishes_before_the_generator_yields_item_1(producer: Any) -> None:
    yield_log.clear()
    parsed.clear()
    parsed.update({i: threading.Event() for i in range(5)})
    stream = producer()
    result, events = _run(parse.map(stream))
    assert result == [0, 2, 4, 6, 8]
    assert yield_log.index("parsed 0") < yield_log.index("yield 1")
    assert yield_log == [f"{step} {i}" for i in range(5) for step in ("yield", "parsed")]
    # The generator is one attempt, which ran alongside its consumers.
    gen = [e for e in events if getattr(e, "task_id", None) == stream.id]
    assert [type(e).__name__ for e in gen] == ["TaskExecutionStarted", "TaskExecutionFinished"]


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.yielded = 0
        self.started = 0
        self.most_unconsumed = 0


counter = Counter()


@cs.task
def many(n: int) -> Any:
    for i in range(n):
        with counter.lock:
            counter.most_unconsumed = max(
                counter.most_unconsumed, counter.yielded - counter.started
            )
            counter.yielded += 1
        yield i


@cs.task(concurrency=1)
def one_at_a_time(x: int) -> int:
    with counter.lock:
        counter.started += 1
    return x


@pytest.mark.parametrize("buffer", [cs.DEFAULT_BUFFER, 7])
def test_a_generator_never_holds_more_than_buffer_unconsumed_items(buffer: int) -> None:
    global counter
    counter = Counter()
    producer = many if buffer == cs.DEFAULT_BUFFER else cs.task(many.fn, name="many", buffer=buffer)
    folded = cs.fold(lambda acc, x: acc + 1, one_at_a_time.map(producer(10_000)), 0)
    result, _ = _run(folded)
    assert result == 10_000
    assert counter.started == 10_000
    assert 0 < counter.most_unconsumed <= buffer


def test_the_default_buffer_is_documented_and_taken_by_tasks() -> None:
    assert cs.DEFAULT_BUFFER == 100
    assert count_up.buffer == 100
    assert cs.task(buffer=5)(count_up.fn).buffer == 5


@cs.task
def breaks_after_three() -> Any:
    yield 0
    yield 1
    yield 2
    raise ConnectionError("the API went away")


def test_a_raising_generator_fails_like_a_task_stop_mode() -> None:
    with pytest.raises(ConnectionError, match="went away"):
        _run(parse.map(breaks_after_three()))


@cs.task
async def record(x: int) -> int:
    seen.append(x)
    return x


def test_a_raising_generator_in_continue_mode_still_processes_what_it_yielded() -> None:
    seen.clear()
    stream = breaks_after_three()
    events: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(Event, events.append)
    with pytest.raises(cs.RunFailed) as caught:
        cs.run(record.map(stream), bus=bus, log_level=None, on_failure="continue")
    assert sorted(seen) == [0, 1, 2]
    assert list(caught.value.failures) == [stream.id]
    assert isinstance(caught.value.failures[stream.id], ConnectionError)


closed: list[str] = []


@cs.resource(scope="task")
def stream_session() -> Any:
    closed.append("session up")
    yield "session"
    closed.append("session down")


@cs.task
def endless(s: Any = cs.inject("stream_session")) -> Any:
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        closed.append("generator closed")


@cs.task
async def endless_async() -> Any:
    try:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0)
    finally:
        closed.append("generator closed")


@cs.task
async def fail_at_five(x: int) -> int:
    if x == 5:
        raise RuntimeError("stop here")
    return x


@pytest.mark.parametrize("producer", [endless, endless_async])
def test_cancellation_closes_the_generator_and_tears_its_resources_down(producer: Any) -> None:
    closed.clear()
    with pytest.raises(RuntimeError, match="stop here"):
        _run(fail_at_five.map(producer()))
    assert "generator closed" in closed
    if producer is endless:
        assert closed == ["session up", "generator closed", "session down"]


def test_generator_tasks_refuse_what_cannot_apply_to_them() -> None:
    with pytest.raises(TypeError, match="generator task .* retries="):
        cs.task(retries=2)(count_up.fn)
    with pytest.raises(TypeError, match=r"count_up\.map\(\): .* is a generator task"):
        count_up.map([1, 2])
    with pytest.raises(ValueError, match="buffer= .* got 0"):
        cs.task(buffer=0)(count_up.fn)
    with pytest.raises(TypeError, match="cs.fold.. takes a plain function, got task 'add'"):
        cs.fold(add, [1, 2], 0)


@pytest.mark.parametrize(
    "policy",
    [
        lambda call: call.with_retry(2),
        lambda call: call.with_cache(cs.InputHashCache()),
        lambda call: call.with_fallback([]),
    ],
    ids=["retry", "cache", "fallback"],
)
def test_a_generator_call_refuses_retries_caches_and_fallbacks_before_anything_runs(
    policy: Any,
) -> None:
    started: list[Event] = []
    bus = cs.MessageBus()
    bus.subscribe(TaskExecutionStarted, started.append)
    with pytest.raises(TypeError, match=r"the call count_up-\d+ of task 'count_up' is a generator"):
        cs.run(add.map(policy(count_up(3)), cs.unmapped(1)), bus=bus, log_level=None)
    assert started == []


def test_fold_over_a_plain_list_reduces_it() -> None:
    result, _ = _run(cs.fold(lambda acc, x: acc * x, [1, 2, 3, 4], 1))
    assert result == 24


# -- observation never chooses semantics -------------------------------------------------------

OBSERVER_SETS = ["none", "INFO", "record", "hook"]


def _observed_run(target: Any, observers: str, tmp_path: Any) -> tuple[Any, list[Event]]:
    if observers == "none":
        return _run(target)
    if observers == "INFO":
        return _run(target, log_level="INFO")
    if observers == "record":
        return _run(target, record=str(tmp_path / "runs.db"))
    engine = cs.Engine(log_level=None)
    engine.add_call_hook(lambda call: None)
    events: list[Event] = []
    engine.bus.subscribe(Event, events.append)
    return asyncio.run(engine.run(target)), events


@pytest.mark.parametrize("observers", OBSERVER_SETS)
def test_a_stream_behaves_the_same_under_every_observer_set(observers: str, tmp_path: Any) -> None:
    yield_log.clear()
    parsed.clear()
    parsed.update({i: threading.Event() for i in range(5)})
    gates["b1"] = asyncio.Event()
    first = slow_first.map([0, 1, 2])
    second = times_ten.map(first)
    stream = five_pages()
    result, _ = _observed_run(
        [second, cs.fold(lambda acc, x: acc + x, parse.map(stream), 0)], observers, tmp_path
    )
    assert result == [[10, 20, 30], 20]
    assert yield_log == [f"{step} {i}" for i in range(5) for step in ("yield", "parsed")]


# -- 3. executors ------------------------------------------------------------------------------


@cs.task
def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_stages_of_a_stream_run_on_every_executor(executor: str) -> None:
    stream = count_up(12)
    stage = add.map(square.map(stream), cs.unmapped(1))
    result, events = _run(
        [stage, cs.fold(lambda acc, x: acc + x, square.map(add.map([1, 2, 3], [1, 1, 1])), 0)],
        executor=executor,
    )
    assert result == [[i * i + 1 for i in range(12)], 4 + 9 + 16]
    by_id = {e.task_id: e for e in events if isinstance(e, TaskExecutionStarted)}
    # The mapped items ran on the executor; the generator itself on the driver's loop.
    assert by_id[f"{stage.id}[0]"].executor == executor
    assert by_id[stream.id].executor == "local"


# -- records and resume ------------------------------------------------------------------------

BROKEN = {"item": 3}
enriched: list[int] = []


@cs.task
def enrich(x: int) -> int:
    if x == BROKEN["item"]:
        raise RuntimeError("enrich broke")
    enriched.append(x)
    return x * 2


@pytest.fixture
def home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CASCADE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CASCADE_CACHE_DIR", raising=False)
    return tmp_path / "home"


def test_each_item_is_an_attempt_and_a_resume_reruns_the_generator_only(home: Any) -> None:
    BROKEN["item"] = 3
    enriched.clear()
    with pytest.raises(RuntimeError, match="enrich broke"):
        cs.run(enrich.map(count_up(6)), record=True, log_level=None)
    runs = SQLiteRunStore()
    first = runs.runs()[0]
    attempts = {a.task_id: a for a in runs.attempts(first.run_id)}
    generator = [a for a in attempts.values() if a.task_name == "count_up"]
    assert len(generator) == 1
    items = {tid: a.status for tid, a in attempts.items() if a.task_name == "enrich"}
    failed = [tid for tid, status in items.items() if status == "Failed"]
    assert len(failed) == 1 and failed[0].endswith("[3]")
    # The items that succeeded (an item still running in a thread when the failure stopped the
    # run may have run its body, but it was cancelled, not saved: how many depends on timing).
    done_first = sorted(
        int(tid.rsplit("[", 1)[1].rstrip("]"))
        for tid, status in items.items()
        if status == "Succeeded"
    )
    assert set(done_first) <= set(enriched)

    BROKEN["item"] = -1
    enriched.clear()
    assert cs.run(enrich.map(count_up(6)), resume="last", log_level=None) == [
        0,
        2,
        4,
        6,
        8,
        10,
    ]
    second = runs.runs()[0]
    again = runs.attempts(second.run_id)
    # The generator ran again; the items that succeeded before took their checkpoints.
    assert [a.status for a in again if a.task_name == "count_up"] == ["Succeeded"]
    restored = sorted(
        int(a.task_id.rsplit("[", 1)[1].rstrip("]"))
        for a in again
        if a.task_name == "enrich" and a.status == "Skipped" and a.reason == "Checkpoint"
    )
    assert restored == done_first
    assert sorted(enriched) == sorted(set(range(6)) - set(done_first))


# -- how graphs, the dry-run and the CLI show streams ------------------------------------------


def test_graphs_and_the_dry_run_show_streams_and_item_by_item_edges() -> None:
    stream = count_up(3)
    stage = add.map(stream, cs.unmapped(1))
    folded = cs.fold(lambda acc, x: acc + x, stage, 0)
    dot = cs.visualize(folded)
    assert f'label="count_up [stream, buffer {cs.DEFAULT_BUFFER}]"' in dot
    assert dot.count('[style=bold, label="items"]') == 2
    assert cs.visualize(folded, format="mermaid").count("==>|items|") == 2
    steps = cs.dry_run(folded, stream=io.StringIO())
    by_id = {step["task_id"]: step for step in steps}
    assert by_id[stream.id]["stream"] is True
    assert by_id[stage.id]["streams_from"] == [stream.id]
    assert f"item by item from <{stage.id}>" in by_id[folded.id]["notes"]
    # A stream read whole (by an ordinary task) is not item by item.
    assert "items" not in cs.visualize(total(count_up(3)))


def test_the_record_and_the_report_show_a_stream_and_keep_its_edges(home: Any) -> None:
    stream = count_up(4)
    stage = add.map(stream, cs.unmapped(1))
    cs.run(stage, record=True, log_level=None)
    runs = SQLiteRunStore()
    run_id = runs.runs()[0].run_id
    nodes = {node.task_id: node for node in runs.graph(run_id)}
    assert nodes[stream.id].kind == "stream"
    assert nodes[stage.id].kind == "map"
    assert nodes[stage.id].deps == (stream.id,)  # the edge is kept, though it streams
    report = render_report(runs, run_id)
    assert "count_up [stream]" in report
    assert "add [map]" in report


@cs.task
async def stalls_after_one() -> Any:
    try:
        yield 1
        await asyncio.sleep(3600)  # a page that never comes
        yield 2
    finally:
        closed.append("generator closed")


def test_a_generator_that_times_out_fails_like_a_task_and_is_closed() -> None:
    closed.clear()
    # The timeout is the behaviour here: a generous bound, far below the test's own.
    with pytest.raises(cs.TaskTimeoutError):
        _run(record.map(stalls_after_one().with_timeout(1.0)))
    assert closed == ["generator closed"]


@cs.task(executor="processes")
def remote_pages(s: Any = cs.inject("stream_session")) -> Any:
    yield 1


def test_a_generator_whose_executor_sets_resources_up_remotely_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match="task 'remote_pages' is a generator task, which runs in"):
        _run(add.map(remote_pages(), cs.unmapped(1)))
