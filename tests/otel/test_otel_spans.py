"""The span model: names, parent/child links, attributes, status and events for success,
failure, retries, skips, cache hits and cancellation (SDK + InMemorySpanExporter)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import cascade as cs
from cascade.events import (
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TasksSucceeded,
    TaskWaiting,
)

pytestmark = pytest.mark.timeout(30)


@cs.task
def extract(n: int) -> list[int]:
    return list(range(n))


@cs.task
async def transform(rows: list[int], factor: int = 2) -> list[int]:
    return [r * factor for r in rows]


@cs.task
def load(rows: list[int]) -> int:
    return sum(rows)


class ShippingError(RuntimeError):
    """A custom exception, so error.type must be its qualified name."""


def test_success_builds_one_trace_with_a_span_per_task(traced: Any) -> None:
    engine = traced.engine()
    finished: list[TaskExecutionFinished] = []
    runs: list[Any] = []
    engine.bus.subscribe(TaskExecutionFinished, finished.append)
    engine.bus.subscribe(RunStarted, runs.append)
    engine.bus.subscribe(RunFinished, runs.append)

    assert asyncio.run(engine.run(load(transform(extract(3))))) == 6

    run = traced.run_span()
    assert run.name == "cascade.run load"
    assert run.kind is SpanKind.INTERNAL
    assert run.parent is None
    assert run.status.status_code is StatusCode.UNSET
    assert run.attributes["cascade.run.id"] == runs[0].run_id
    assert run.attributes["cascade.run.targets"] == ("load",)
    assert run.attributes["cascade.run.status"] == "Succeeded"
    assert run.start_time == int(runs[0].timestamp * 1e9)
    assert run.end_time == int(runs[1].timestamp * 1e9)
    assert run.instrumentation_scope.name == "cascade_otel"

    assert {s.context.trace_id for s in traced.spans} == {run.context.trace_id}
    assert sorted(s.name for s in traced.spans) == [
        "cascade.run load",
        "extract",
        "load",
        "transform",
    ]
    by_event = {e.task_name: e for e in finished}
    for name in ("extract", "transform", "load"):
        span = traced.one(name)
        event = by_event[name]
        assert span.parent.span_id == run.context.span_id
        assert span.kind is SpanKind.INTERNAL
        assert span.status.status_code is StatusCode.UNSET
        assert span.end_time == int(event.timestamp * 1e9)
        assert run.start_time <= span.start_time <= int(event.start_time * 1e9) + 1000
        assert span.attributes["cascade.run.id"] == event.run_id
        assert span.attributes["cascade.task.id"] == event.task_id
        assert span.attributes["cascade.task.name"] == name
        assert span.attributes["cascade.task.attempt"] == 1
        assert span.attributes["cascade.task.executor"] == "local"
        assert span.attributes["cascade.task.status"] == "Succeeded"
        assert "error.type" not in span.attributes


def test_arguments_and_params_by_name_and_type_only(traced: Any) -> None:
    secret = cs.Param("token", type=str)
    traced.run(transform(extract(2), factor=secret).run_if(True), params={"token": "s3cr3t"})
    span = traced.one("transform")
    assert span.attributes["cascade.task.arg.rows.type"] == "list"
    assert span.attributes["cascade.task.arg.factor.type"] == "str"
    assert traced.run_span().attributes["cascade.run.param.token.type"] == "str"
    for recorded in traced.spans:
        assert "s3cr3t" not in repr(dict(recorded.attributes or {}))
        assert not any(key.endswith(".value") for key in recorded.attributes or {})


def test_values_are_recorded_when_opted_in(traced: Any) -> None:
    import cascade_otel

    engine = cs.Engine(log_level=None)
    cascade_otel.instrument(engine, tracer_provider=traced.provider, record_values=True)
    asyncio.run(engine.run(transform(extract(2), factor=cs.Param("f", type=int)), {"f": "5"}))
    span = traced.one("transform")
    assert span.attributes["cascade.task.arg.rows.value"] == "[0, 1]"
    assert span.attributes["cascade.task.arg.factor.value"] == 5
    assert traced.run_span().attributes["cascade.run.param.f.value"] == 5


def test_failure_marks_task_and_run_error_with_the_exception(traced: Any) -> None:
    @cs.task
    def ship(rows: list[int]) -> None:
        raise ShippingError(f"carrier refused {len(rows)} rows")

    with pytest.raises(ShippingError):
        traced.run(ship(extract(4)))

    failed = traced.one("ship")
    expected_type = f"{__name__}.ShippingError"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "carrier refused 4 rows"
    assert failed.attributes["error.type"] == expected_type
    assert failed.attributes["cascade.task.status"] == "Failed"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == expected_type
    assert exception.attributes["exception.message"] == "carrier refused 4 rows"
    assert "raise ShippingError" in exception.attributes["exception.stacktrace"]

    run = traced.run_span()
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "carrier refused 4 rows"
    assert run.attributes["error.type"] == expected_type
    assert run.attributes["cascade.run.status"] == "Failed"
    assert traced.one("extract").status.status_code is StatusCode.UNSET


def test_cancelled_task_is_not_an_error(traced: Any) -> None:
    @cs.task
    async def slow() -> int:
        await asyncio.sleep(10)
        return 1

    @cs.task
    async def fails_soon() -> int:
        await asyncio.sleep(0.05)
        raise ValueError("no")

    @cs.task
    def both(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ValueError):
        traced.run(both(slow(), fails_soon()))
    cancelled = traced.one("slow")
    assert cancelled.attributes["cascade.task.status"] == "Cancelled"
    assert cancelled.status.status_code is StatusCode.UNSET
    assert not cancelled.events
    assert traced.one("fails_soon").status.status_code is StatusCode.ERROR


async def test_cancelled_run_is_not_an_error(traced: Any) -> None:
    started = asyncio.Event()

    @cs.task
    async def wait_forever() -> None:
        started.set()
        await asyncio.sleep(30)

    run = asyncio.ensure_future(traced.engine().run(wait_forever()))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    span = traced.run_span()
    assert span.attributes["cascade.run.status"] == "Cancelled"
    assert span.status.status_code is StatusCode.UNSET
    assert traced.one("wait_forever").status.status_code is StatusCode.UNSET


def test_retries_make_one_span_per_attempt(traced: Any) -> None:
    calls: list[int] = []

    @cs.task
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} dropped")
        return "ok"

    assert traced.run(flaky().with_retry(retries=3)) == "ok"

    attempts = sorted(traced.named("flaky"), key=lambda s: s.attributes["cascade.task.attempt"])
    assert [s.attributes["cascade.task.attempt"] for s in attempts] == [1, 2, 3]
    run = traced.run_span()
    assert {s.parent.span_id for s in attempts} == {run.context.span_id}
    assert len({s.attributes["cascade.task.id"] for s in attempts}) == 1
    for number, span in enumerate(attempts[:2], start=1):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == f"attempt {number} dropped"
        assert span.attributes["error.type"] == "ConnectionError"
        (retry,) = [e for e in span.events if e.name == "cascade.task.retry"]
        assert retry.attributes["cascade.task.retry.next_attempt"] == number + 1
        assert retry.attributes["cascade.task.retry.delay"] == 0.0
    for earlier, later in itertools.pairwise(attempts):
        assert [link.context.span_id for link in later.links] == [earlier.context.span_id]
        assert earlier.end_time <= later.start_time
    assert attempts[2].status.status_code is StatusCode.UNSET
    assert not attempts[2].events
    assert run.status.status_code is StatusCode.UNSET


def test_retries_exhausted_fail_the_run(traced: Any) -> None:
    @cs.task
    def broken() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        traced.run(broken().with_retry(retries=1))
    attempts = traced.named("broken")
    assert len(attempts) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    last = max(attempts, key=lambda s: s.attributes["cascade.task.attempt"])
    assert not [e for e in last.events if e.name == "cascade.task.retry"]
    assert traced.run_span().status.status_code is StatusCode.ERROR


def test_skipped_tasks_get_a_short_span_with_the_reason(traced: Any) -> None:
    @cs.task
    def notify(total: int) -> str:
        return f"sent {total}"

    skipped = load(extract(3)).run_if(False)
    traced.run([notify(skipped), load(extract(1))])

    run = traced.run_span()
    assert run.name == "cascade.run notify, load"
    condition = [s for s in traced.named("load") if s.attributes.get("cascade.task.skipped")]
    assert len(condition) == 1
    (span,) = condition
    assert span.attributes["cascade.task.skip_reason"] == "ConditionFalse"
    assert span.attributes["cascade.task.cache_hit"] is False
    assert span.start_time == span.end_time
    assert span.parent.span_id == run.context.span_id
    upstream = traced.one("notify")
    assert upstream.attributes["cascade.task.skip_reason"] == "UpstreamSkipped"
    assert upstream.status.status_code is StatusCode.UNSET


def test_cache_hits_are_visible(traced: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path / "cache"))
    runs: list[int] = []

    @cs.task(cache=cs.InputHashCache())
    def expensive(n: int) -> int:
        runs.append(n)
        return n * 10

    @cs.task(cache=cs.FileExistenceCache(str(tmp_path / "report-{n}.txt")))
    def write_report(n: int, value: int) -> Path:
        path = tmp_path / f"report-{n}.txt"
        path.write_text(str(value))
        return path

    assert traced.run(write_report(4, expensive(4))) == tmp_path / "report-4.txt"
    for name in ("expensive", "write_report"):
        first = traced.one(name)
        assert "cascade.task.cache_hit" not in first.attributes
        assert first.attributes["cascade.task.status"] == "Succeeded"
    traced.exporter.clear()

    assert traced.run(write_report(4, expensive(4))) == tmp_path / "report-4.txt"
    assert runs == [4]
    run = traced.run_span()
    for name in ("expensive", "write_report"):
        hit = traced.one(name)
        assert hit.attributes["cascade.task.cache_hit"] is True
        assert hit.attributes["cascade.task.skipped"] is True
        assert hit.attributes["cascade.task.skip_reason"] == "CacheHit"
        assert hit.parent.span_id == run.context.span_id
        assert hit.start_time == hit.end_time
        assert hit.status.status_code is StatusCode.UNSET


def test_mapped_items_get_a_span_each(traced: Any) -> None:
    @cs.task
    def square(x: int) -> int:
        return x * x

    assert traced.run(load(square.map([1, 2, 3]))) == 14
    items = traced.named("square")
    assert len(items) == 3
    assert len({s.attributes["cascade.task.id"] for s in items}) == 3
    assert {s.parent.span_id for s in items} == {traced.run_span().context.span_id}


async def test_concurrent_runs_on_one_engine_get_separate_traces(traced: Any) -> None:
    engine = traced.engine()
    results = await asyncio.gather(
        engine.run(load(transform(extract(2)))), engine.run(load(transform(extract(3))))
    )
    assert results == [2, 6]
    runs = [s for s in traced.spans if s.name.startswith("cascade.run")]
    assert len(runs) == 2
    assert len({r.context.trace_id for r in runs}) == 2
    for run in runs:
        children = [s for s in traced.spans if s.parent and s.parent.span_id == run.context.span_id]
        assert sorted(s.name for s in children) == ["extract", "load", "transform"]
        assert {s.context.trace_id for s in children} == {run.context.trace_id}


def test_a_broken_tracer_never_fails_a_task(traced: Any, caplog: Any) -> None:
    import cascade_otel

    class Exploding(Exception):
        pass

    engine = traced.engine()
    tracing = cascade_otel.tracing_of(engine)
    assert tracing is not None
    real_start = tracing.tracer.start_span

    def start_span(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "transform":
            raise Exploding("tracer bug")
        return real_start(name, *args, **kwargs)

    tracing.tracer = type("Tracer", (), {"start_span": staticmethod(start_span)})()
    assert asyncio.run(engine.run(load(transform(extract(2))))) == 2
    assert "could not start the span of task 'transform'" in caplog.text
    assert sorted(s.name for s in traced.spans) == ["cascade.run load", "extract", "load"]


@cs.task
def pick(n: int) -> Any:
    return load(extract(n)) if n else "nothing"


@cs.task
def fan(n: int) -> Any:
    return [pick(i) for i in range(n)]


def test_a_task_added_at_run_time_is_a_child_of_the_task_that_returned_it(traced: Any) -> None:
    engine = traced.engine()
    assert asyncio.run(engine.run(fan(3))) == ["nothing", 0, 1]
    spans = {
        span.attributes["cascade.task.id"]: span
        for span in traced.spans
        if span.attributes and "cascade.task.id" in span.attributes
    }
    run = traced.run_span()
    by_name: dict[str, list[Any]] = {}
    for span in spans.values():
        by_name.setdefault(span.name, []).append(span)
    (fan_span,) = by_name["fan"]
    assert fan_span.parent.span_id == run.context.span_id
    assert fan_span.attributes["cascade.task.returned_graph"] is True
    assert len(by_name["pick"]) == 3 and len(by_name["load"]) == 2
    for span in by_name["pick"]:
        assert span.parent.span_id == fan_span.context.span_id
        assert span.attributes["cascade.task.parent_id"] == fan_span.attributes["cascade.task.id"]
    pick_ids = {span.context.span_id for span in by_name["pick"]}
    for span in by_name["load"] + by_name["extract"]:
        assert span.parent.span_id in pick_ids, "a child of the pick that returned it"
    assert {span.context.trace_id for span in spans.values()} == {run.context.trace_id}


@cs.task
def plus_one(x: int) -> int:
    return x + 1


def test_a_task_added_after_its_parents_span_ended_is_still_its_child(traced: Any) -> None:
    """Successes end their spans in bulk, once per event-loop pass: the task a graph added
    may start before that (the test above) or, as here, only after: its input finishes once
    the parent's success has been published and its span ended."""
    engine = traced.engine()
    published = asyncio.Event()
    bulks: list[TasksSucceeded] = []

    @cs.task
    async def later() -> int:
        await published.wait()
        return 5

    gate = later()

    @cs.task
    def spawn() -> Any:
        return plus_one(gate)

    def on_bulk(event: TasksSucceeded) -> None:
        bulks.append(event)
        if "spawn" in event.task_names:
            published.set()

    engine.bus.subscribe(TasksSucceeded, on_bulk)
    parent = spawn()
    assert asyncio.run(engine.run([parent, gate])) == [6, 5]
    assert any(parent.id in bulk.returned_graphs for bulk in bulks)
    spawn_span, child = traced.one("spawn"), traced.one("plus_one")
    assert spawn_span.attributes["cascade.task.returned_graph"] is True
    assert spawn_span.end_time <= child.start_time  # ended before the child started
    assert child.parent.span_id == spawn_span.context.span_id
    assert child.attributes["cascade.task.parent_id"] == parent.id
    assert "cascade.task.returned_graph" not in child.attributes


def test_tracing_asks_the_engine_for_no_event_per_successful_task(traced: Any) -> None:
    """What keeps tracing cheap on wide runs (``benchmarks/bench_otel.py``): successes reach
    it in bulk; failures and cancellations one event each."""
    engine = traced.engine()
    assert not engine.bus.wants(TaskExecutionFinished, status="Succeeded")
    assert engine.bus.wants(TaskExecutionFinished, status="Failed")
    assert engine.bus.wants(TaskExecutionFinished, status="Cancelled")
    assert engine.bus.wants(TasksSucceeded)
    assert asyncio.run(engine.run(load(transform(extract(3))))) == 6
    assert [s.attributes["cascade.task.status"] for s in traced.spans if s.parent] == [
        "Succeeded"
    ] * 3


def test_a_wait_for_a_pool_is_recorded_on_the_task_span(traced: Any) -> None:
    import threading

    release = threading.Event()

    @cs.task(pools={"api": 1})
    def holder() -> None:
        release.wait(30)

    @cs.task(pools={"api": 1})
    def waiter() -> int:
        return 1

    engine = traced.engine(pools={"api": 1})
    engine.bus.subscribe(TaskWaiting, lambda e: release.set())
    asyncio.run(engine.run([holder(), waiter()]))
    (span,) = traced.named("waiter")
    assert span.attributes["cascade.task.waited_for"] == ("pool 'api'",)
    assert span.attributes["cascade.task.waited"] >= 0
    assert "cascade.task.waited" not in traced.one("holder").attributes


@cs.task(run_name="page-{n}")
def page(n: int) -> int:
    return n


def test_a_run_name_is_an_attribute_and_the_span_keeps_the_task_name(traced: Any) -> None:
    assert traced.run(page.map([1, 2])) == [1, 2]
    spans = traced.named("page")
    assert sorted(s.attributes["cascade.task.run_name"] for s in spans) == ["page-1", "page-2"]
    assert not [s for s in traced.spans if s.name.startswith("page-")]
