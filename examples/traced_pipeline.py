"""A traced pipeline: one OpenTelemetry trace per run, a span per task, your spans inside.

    pip install "cascade-core[otel]" opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    python examples/traced_pipeline.py                  # spans printed to the console
    python examples/traced_pipeline.py --fail           # ... with a failing task

    # Jaeger (all-in-one listens for OTLP/HTTP on 4318), or any OTLP endpoint:
    docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=orders-job \\
        python examples/traced_pipeline.py              # then open http://localhost:16686

The application configures the SDK (this file does, in ``configure_tracing``); cascade-otel,
installed, does the rest: ``cs.run`` is traced because a real tracer provider is set. The
exporter follows the standard variables: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (or ``OTEL_TRACES_EXPORTER=otlp``), the
console otherwise; ``OTEL_TRACES_EXPORTER=none`` exports nothing. ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` name the service. See docs/tracing.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

import cascade as cs

# User code gets its tracer as any instrumented library would.
tracer = trace.get_tracer("orders.example")


def choose_exporter() -> SpanExporter | None:
    """The exporter the standard OTEL_* variables ask for (None: export nothing)."""
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint_set = any(
        os.environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if choice == "none":
        return None
    if choice == "otlp" or (not choice and endpoint_set):
        # Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION itself.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return ConsoleSpanExporter()


def configure_tracing() -> TracerProvider:
    """What an application does once at start-up (or leaves to ``opentelemetry-instrument``)."""
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "cascade-example"})
    )
    exporter = choose_exporter()
    if exporter is not None:
        processor = (
            SimpleSpanProcessor(exporter)
            if isinstance(exporter, ConsoleSpanExporter)
            else BatchSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


regions = cs.Param("regions", default="north,south,east", description="comma separated")
fail = cs.Param("fail", default=False, type=bool, description="make the publish step fail")


@cs.task
def list_regions(regions: str) -> list[str]:
    return [r.strip() for r in regions.split(",") if r.strip()]


@cs.task
async def fetch_orders(region: str) -> list[dict[str, object]]:
    """An async task on the event loop: its span is current while it awaits."""
    with tracer.start_as_current_span("GET /orders", attributes={"region": region}):
        await asyncio.sleep(random.uniform(0.01, 0.05))  # stands in for an HTTP call
    return [{"region": region, "amount": random.randint(5, 50)} for _ in range(3)]


@cs.task
def price(orders: list[dict[str, object]]) -> float:
    """A sync task in the thread pool: its span is current in the worker thread too."""
    with tracer.start_as_current_span("lookup exchange rates"):
        rate = 1.1
    return sum(float(str(o["amount"])) for o in orders) * rate


_attempts = {"count": 0}


@cs.task
def load_rates_table() -> str:
    """Fails on its first attempt; with a retry that shows as two spans."""
    _attempts["count"] += 1
    if _attempts["count"] == 1:
        raise ConnectionError("rates service reset the connection")
    return "rates-v2"


@cs.task
def total(prices: list[float], table: str) -> float:
    return round(sum(prices), 2)


@cs.task
def publish(amount: float, fail: bool) -> str:
    if fail:
        raise PermissionError("report bucket is read-only")
    return f"published {amount}"


@cs.task
def send_pager_alert(amount: float) -> None:
    """Skipped unless the total is huge: shows up as a zero-length span with the reason."""


def build() -> dict[str, cs.LazyResult[object]]:
    prices = price.map(fetch_orders.map(list_regions(regions)))
    amount = total(prices, load_rates_table().with_retry(retries=2))
    return {
        "report": publish(amount, fail),
        "alert": send_pager_alert(amount).run_if(False),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="north,south,east")
    parser.add_argument("--fail", action="store_true", help="make the publish step fail")
    args = parser.parse_args(argv)
    provider = configure_tracing()
    try:
        # The run span becomes a child of whatever span is current, like this one.
        with tracer.start_as_current_span("nightly orders job") as job:
            try:
                result = cs.run(
                    build(), params={"regions": args.regions, "fail": args.fail}, log_level=None
                )
            except PermissionError as exc:
                print(f"run failed: {exc}", file=sys.stderr)
                return 1
            trace_id = trace.format_trace_id(job.get_span_context().trace_id)
        print(f"{result['report']} (trace {trace_id})", file=sys.stderr)
        return 0
    finally:
        provider.shutdown()  # flushes the batch processor


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
