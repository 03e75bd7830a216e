"""Context propagation: while a task body runs its span is the current span, wherever it runs
(async on the loop, sync in the thread pool, the threads executor, worker processes), and a
run started under an active span is that span's child."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

import cascade as cs

pytestmark = pytest.mark.timeout(60)

# Spans user code starts; the fixture's provider is set before each test that uses it.
_user_tracer: list[trace.Tracer] = []


def _tracer() -> trace.Tracer:
    return _user_tracer[-1]


@pytest.fixture(autouse=True)
def user_tracer(traced: Any) -> Any:
    _user_tracer.append(traced.tracer)
    yield
    _user_tracer.pop()


@cs.task
async def async_work(label: str) -> str:
    with _tracer().start_as_current_span(f"before {label}"):
        pass
    await asyncio.sleep(random.uniform(0, 0.02))  # interleave with the other items
    with _tracer().start_as_current_span(f"after {label}"):
        pass
    return label


@cs.task
def sync_work(label: str) -> str:
    with _tracer().start_as_current_span(f"before {label}"):
        time.sleep(random.uniform(0, 0.02))
        with _tracer().start_as_current_span(f"nested {label}"):
            pass
    return f"{label}@{threading.current_thread().name}"


@cs.task
def collect(items: list[str]) -> list[str]:
    return items


def _assert_children_of_their_task(traced: Any, labels: list[str], kinds: list[str]) -> None:
    """Every user span ``<kind> <label>`` is a child of the span of the task item that got
    ``label`` (which the task's ``cascade.task.arg.label.type`` cannot tell, so we match the
    item by trace structure: one task span per label, each with its own user spans)."""
    spans = traced.spans
    by_id = {s.context.span_id: s for s in spans}
    run = traced.run_span()
    owners: dict[str, set[int]] = {label: set() for label in labels}
    for kind in kinds:
        for label in labels:
            (user_span,) = [s for s in spans if s.name == f"{kind} {label}"]
            assert user_span.context.trace_id == run.context.trace_id
            parent = by_id[user_span.parent.span_id]
            if kind == "nested":
                parent = by_id[parent.parent.span_id]
            assert parent.attributes["cascade.task.name"] in ("async_work", "sync_work")
            assert parent.parent.span_id == run.context.span_id
            owners[label].add(parent.context.span_id)
    # all spans of one label hang under one task span, and different labels under different ones
    assert all(len(owner) == 1 for owner in owners.values())
    assert len(set.union(*owners.values())) == len(labels)


def test_async_tasks_on_the_loop_make_their_span_current(traced: Any) -> None:
    labels = [f"a{i}" for i in range(8)]
    assert traced.run(collect(async_work.map(labels))) == labels
    _assert_children_of_their_task(traced, labels, ["before", "after"])


def test_sync_tasks_in_the_thread_pool_make_their_span_current(traced: Any) -> None:
    labels = [f"s{i}" for i in range(8)]
    results = traced.run(collect(sync_work.map(labels)))
    main_thread = threading.current_thread().name
    assert all(r.split("@")[1] != main_thread for r in results)  # ran in pool threads
    _assert_children_of_their_task(traced, labels, ["before", "nested"])


def test_threads_executor_runs_sync_and_async_tasks_in_their_span(traced: Any) -> None:
    labels = [f"t{i}" for i in range(4)]
    sync_items = sync_work.map(labels[:2])
    async_items = async_work.map(labels[2:])
    traced.run([sync_items, async_items], executor="threads")
    _assert_children_of_their_task(traced, labels[:2], ["before", "nested"])
    _assert_children_of_their_task(traced, labels[2:], ["before", "after"])
    assert {s.attributes["cascade.task.executor"] for s in traced.named("sync_work")} == {"threads"}


def test_current_span_of_the_caller_is_the_parent_of_the_run_span(traced: Any) -> None:
    engine = traced.engine()
    with traced.tracer.start_as_current_span("caller") as caller:
        assert asyncio.run(engine.run(collect(async_work.map(["x"])))) == ["x"]
        assert trace.get_current_span() is caller
    run = traced.run_span()
    assert run.parent.span_id == caller.get_span_context().span_id
    assert {s.context.trace_id for s in traced.spans} == {caller.get_span_context().trace_id}


async def test_run_async_under_an_active_span_and_the_span_is_restored_after(
    traced: Any,
) -> None:
    engine = traced.engine()
    with traced.tracer.start_as_current_span("handler") as handler:
        await engine.run(collect(sync_work.map(["y"])))
        assert trace.get_current_span() is handler
        await engine.run(collect(async_work.map(["z"])))
        assert trace.get_current_span() is handler
    assert trace.get_current_span() is trace.INVALID_SPAN
    runs = [s for s in traced.spans if s.name.startswith("cascade.run")]
    assert len(runs) == 2
    assert {r.parent.span_id for r in runs} == {handler.get_span_context().span_id}
    assert len({r.context.span_id for r in runs}) == 2


def test_resource_setup_nests_under_the_run_span(traced: Any) -> None:
    @cs.resource
    def database() -> Any:
        with _tracer().start_as_current_span("connect"):
            pass
        yield {"rows": 3}
        with _tracer().start_as_current_span("disconnect"):
            pass

    @cs.task
    def query(db: Any = cs.inject("database")) -> int:
        with _tracer().start_as_current_span("SELECT"):
            return int(db["rows"])

    engine = traced.engine()
    engine.register(database)
    assert asyncio.run(engine.run(query())) == 3
    run = traced.run_span()
    assert traced.one("connect").parent.span_id == run.context.span_id
    assert traced.one("disconnect").parent.span_id == run.context.span_id
    assert traced.one("SELECT").parent.span_id == traced.one("query").context.span_id


# -- worker processes: the module-level function is what a spawned worker imports -------------


def span_in_worker(label: str) -> dict[str, Any]:
    """Start a span with an SDK configured in the worker, and report where it hangs."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("worker").start_as_current_span(f"work {label}"):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None, "no span was current in the worker"
    return {
        "pid": os.getpid(),
        "trace_id": span.context.trace_id,
        "parent_span_id": span.parent.span_id,
        "parent_is_remote": span.parent.is_remote,
        "sampled": span.context.trace_flags.sampled,
        "baggage": dict(baggage.get_all()),
    }


span_in_worker_task = cs.task(span_in_worker)


@pytest.mark.slow
def test_process_executor_carries_the_task_span_to_the_worker(traced: Any) -> None:
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        results = traced.run(
            collect(span_in_worker_task.map(["p0", "p1", "p2"])), executor="processes"
        )
    finally:
        otel_context.detach(token)
    assert all(r["pid"] != os.getpid() for r in results)
    run = traced.run_span()
    task_spans = traced.named("span_in_worker")
    assert len(task_spans) == 3
    assert {s.attributes["cascade.task.executor"] for s in task_spans} == {"processes"}
    assert {r["trace_id"] for r in results} == {run.context.trace_id}
    assert {r["parent_span_id"] for r in results} == {s.context.span_id for s in task_spans}
    assert all(r["parent_is_remote"] and r["sampled"] for r in results)
    assert all(r["baggage"] == {"tenant": "acme"} for r in results)
