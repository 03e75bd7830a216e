"""End to end against a real OTLP/HTTP receiver: the SDK's OTLP exporter sends a run's spans
over HTTP to a receiver on 127.0.0.1 that decodes the ``ExportTraceServiceRequest`` protobufs,
and the assertions are about what it received."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import cascade as cs
import cascade_otel

pytestmark = pytest.mark.timeout(60)


class OTLPReceiver:
    """A minimal OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf body."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append(request)
                receiver.paths.append(self.path)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], str, Span]]:
        """Every received span with its resource attributes and scope name."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append((resource, scope_spans.scope.name, span))
        return found


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


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
    attributes = _attributes(failed.attributes)
    assert attributes["error.type"] == "PermissionError"
    assert attributes["cascade.task.name"] == "publish"
    assert attributes["cascade.task.attempt"] == 1
    assert attributes["cascade.task.arg.total.type"] == "int"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert _attributes(exception.attributes)["exception.type"] == "PermissionError"
    assert "raise PermissionError" in _attributes(exception.attributes)["exception.stacktrace"]

    assert run.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert _attributes(run.attributes)["error.type"] == "PermissionError"
    for ok in ("fetch_orders", "price", "GET /rates"):
        assert spans[ok].status.code == Status.StatusCode.STATUS_CODE_UNSET
