"""End to end against a real OTLP/HTTP receiver: the SDK's OTLP exporter sends a run's spans
over HTTP to a receiver on 127.0.0.1 that decodes the ``ExportTraceServiceRequest`` protobufs,
and the assertions are about what it received."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otlp_receiver import OTLPReceiver, attributes_of

import cascade as cs
import cascade_otel

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


# The provider of the test in progress, for user code inside a task to start spans with.
_provider: list[TracerProvider] = []


@cs.task
def fetch_orders(day: str) -> list[int]:
    return [3, 5, 8]


@cs.task
async def price(orders: list[int]) -> int:
    tracer = _provider[0].get_tracer("shop.pricing")
    with tracer.start_as_current_span("GET /rates"):
        await asyncio.sleep(0.01)
    return sum(orders) * 10


@cs.task
def publish(total: int) -> None:
    raise PermissionError(f"report bucket is read-only (total {total})")


def test_a_failed_run_lands_in_an_otlp_receiver_as_one_trace(receiver: OTLPReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "nightly-report"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint)))
    _provider.append(provider)
    try:
        engine = cs.Engine(log_level=None)
        cascade_otel.instrument(engine, tracer_provider=provider)
        with pytest.raises(PermissionError):
            asyncio.run(engine.run(publish(price(fetch_orders("2024-05-01")))))
        assert provider.force_flush(10_000)
    finally:
        _provider.clear()
        provider.shutdown()

    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    received = receiver.spans()
    assert {resource["service.name"] for resource, _, _ in received} == {"nightly-report"}
    spans = {span.name: span for _, _, span in received}
    scopes = {span.name: scope for _, scope, span in received}
    assert sorted(spans) == [
        "GET /rates",
        "cascade.run publish",
        "fetch_orders",
        "price",
        "publish",
    ]
    assert len(received) == 5
    assert len({span.trace_id for span in spans.values()}) == 1

    run = spans["cascade.run publish"]
    assert run.parent_span_id == b""
    assert run.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert scopes["cascade.run publish"] == "cascade_otel"
    for task in ("fetch_orders", "price", "publish"):
        assert spans[task].parent_span_id == run.span_id
        assert scopes[task] == "cascade_otel"
    assert spans["GET /rates"].parent_span_id == spans["price"].span_id
    assert scopes["GET /rates"] == "shop.pricing"
    assert spans["price"].start_time_unix_nano <= spans["GET /rates"].start_time_unix_nano
    assert spans["GET /rates"].end_time_unix_nano <= spans["price"].end_time_unix_nano

    failed = spans["publish"]
    assert failed.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert failed.status.message == "report bucket is read-only (total 160)"
    attributes = attributes_of(failed.attributes)
    assert attributes["error.type"] == "PermissionError"
    assert attributes["cascade.task.name"] == "publish"
    assert attributes["cascade.task.attempt"] == 1
    assert attributes["cascade.task.arg.total.type"] == "int"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert attributes_of(exception.attributes)["exception.type"] == "PermissionError"
    assert "raise PermissionError" in attributes_of(exception.attributes)["exception.stacktrace"]

    assert run.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert attributes_of(run.attributes)["error.type"] == "PermissionError"
    for ok in ("fetch_orders", "price", "GET /rates"):
        assert spans[ok].status.code == Status.StatusCode.STATUS_CODE_UNSET


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "traced_pipeline.py"


@pytest.mark.slow
@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_the_example_sends_its_trace_to_the_standard_otlp_endpoint(
    receiver: OTLPReceiver, fail: bool
) -> None:
    """The example configures the exporter from OTEL_EXPORTER_OTLP_ENDPOINT and
    OTEL_SERVICE_NAME only, as docs/tracing.md tells users to."""
    base = receiver.endpoint.removesuffix("/v1/traces")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_SERVICE_NAME": "orders-job"}
    env.pop("CASCADE_DISABLE_PLUGIN_AUTOLOAD", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *(["--fail"] if fail else [])],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == (1 if fail else 0), done.stderr

    received = receiver.spans()
    assert {resource["service.name"] for resource, _, _ in received} == {"orders-job"}
    spans = [span for _, _, span in received]
    assert len({span.trace_id for span in spans}) == 1
    by_id = {span.span_id: span for span in spans}
    (job,) = [s for s in spans if s.name == "nightly orders job"]
    (run,) = [s for s in spans if s.name.startswith("cascade.run ")]
    assert run.name == "cascade.run publish, send_pager_alert"
    assert run.parent_span_id == job.span_id
    tasks = [s for s in spans if "cascade.task.id" in attributes_of(s.attributes)]
    assert {s.parent_span_id for s in tasks} == {run.span_id}
    assert len([s for s in tasks if s.name == "fetch_orders"]) == 3
    assert len([s for s in tasks if s.name == "load_rates_table"]) == 2
    for user_span, task_name in (
        ("GET /orders", "fetch_orders"),
        ("lookup exchange rates", "price"),
    ):
        found = [s for s in spans if s.name == user_span]
        assert len(found) == 3
        assert {by_id[s.parent_span_id].name for s in found} == {task_name}
    (alert,) = [s for s in tasks if s.name == "send_pager_alert"]
    assert attributes_of(alert.attributes)["cascade.task.skip_reason"] == "ConditionFalse"
    (publish,) = [s for s in tasks if s.name == "publish"]
    expected = Status.StatusCode.STATUS_CODE_ERROR if fail else Status.StatusCode.STATUS_CODE_UNSET
    assert publish.status.code == expected
    assert run.status.code == expected
