"""Fixtures for the tracing tests: an SDK provider writing to an in-memory exporter, injected
into the engine (no global state), and small helpers to read the finished spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import cascade as cs
import cascade_otel


class Traced:
    """An SDK provider, its in-memory exporter and engines instrumented with it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests.user_code")

    def engine(self, **options: Any) -> cs.Engine:
        options.setdefault("log_level", None)
        engine = cs.Engine(**options)
        assert cascade_otel.instrument(engine, tracer_provider=self.provider) is not None
        return engine

    def run(self, target: Any, params: dict[str, Any] | None = None, **options: Any) -> Any:
        return asyncio.run(self.engine(**options).run(target, params))

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans]}"
        return found[0]

    def run_span(self) -> ReadableSpan:
        runs = [s for s in self.spans if s.name.startswith("cascade.run ")]
        assert len(runs) == 1, [s.name for s in self.spans]
        return runs[0]


@pytest.fixture
def traced() -> Iterator[Traced]:
    traced = Traced()
    yield traced
    traced.provider.shutdown()
