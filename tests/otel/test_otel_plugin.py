"""Installing cascade-otel is enough: the entry point instruments every engine against the
global provider, attaches nothing without an SDK, and can be switched off."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider

import cascade as cs
import cascade_otel
from cascade.events import TaskExecutionFinished
from cascade.plugins import PluginManager

pytestmark = pytest.mark.timeout(300)  # subprocesses that import the SDK: slow on a loaded machine


@cs.task
def double(x: int) -> int:
    return 2 * x


def test_the_entry_point_is_registered_as_a_cascade_plugin() -> None:
    manager = PluginManager()
    (info,) = [p for p in manager.plugin_info() if p.name == "otel"]
    assert info.distribution == "cascade-otel"
    assert info.version == cascade_otel.__version__
    assert info.hooks == ["cascade_engine_created"]
    assert info.entry_point == "otel = cascade_otel.plugin"


def test_without_an_sdk_nothing_is_attached() -> None:
    engine = cs.Engine(log_level=None, plugin_manager=PluginManager())
    assert engine.call_hooks == []
    assert not engine.bus.wants(TaskExecutionFinished)
    assert cascade_otel.tracing_of(engine) is None
    assert asyncio.run(engine.run(double(2))) == 4


def test_no_op_providers_attach_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = cs.Engine(log_level=None)
    assert cascade_otel.instrument(engine, tracer_provider=NoOpTracerProvider()) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert cascade_otel.instrument(engine, tracer_provider=TracerProvider()) is None
    assert engine.call_hooks == []


def test_instrumenting_twice_does_not_double_spans_and_uninstrument_stops(traced: Any) -> None:
    engine = traced.engine()
    cascade_otel.instrument(engine, tracer_provider=traced.provider)
    assert len(engine.call_hooks) == 1
    asyncio.run(engine.run(double(1)))
    assert sorted(s.name for s in traced.spans) == ["cascade.run double", "double"]
    cascade_otel.uninstrument(engine)
    assert engine.call_hooks == []
    assert not engine.bus.wants(TaskExecutionFinished)
    traced.exporter.clear()
    asyncio.run(engine.run(double(1)))
    assert traced.spans == []


APP = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    import cascade as cs

    @cs.task
    def double(x):
        with trace.get_tracer("app").start_as_current_span("inside"):
            return 2 * x

    with trace.get_tracer("app").start_as_current_span("main"):
        result = cs.run(double(21), log_level=None)
    spans = [
        {
            "name": s.name,
            "id": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None,
            "trace": s.context.trace_id,
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"result": result, "spans": spans}))
    """
)


def _run_app(**env: str) -> dict[str, Any]:
    environment = {**os.environ, **env}
    environment.pop("CASCADE_DISABLE_PLUGIN_AUTOLOAD", None)
    done = subprocess.run(
        [sys.executable, "-c", APP],
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_cs_run_is_traced_once_the_application_configures_the_sdk() -> None:
    out = _run_app()
    assert out["result"] == 42
    spans = {s["name"]: s for s in out["spans"]}
    assert set(spans) == {"main", "cascade.run double", "double", "inside"}
    assert spans["cascade.run double"]["parent"] == spans["main"]["id"]
    assert spans["double"]["parent"] == spans["cascade.run double"]["id"]
    assert spans["inside"]["parent"] == spans["double"]["id"]
    assert len({s["trace"] for s in out["spans"]}) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [{"CASCADE_OTEL_DISABLED": "1"}, {"CASCADE_PLUGINS_BLOCK": "otel"}],
    ids=["disabled", "blocked"],
)
def test_the_plugin_can_be_switched_off(env: dict[str, str]) -> None:
    out = _run_app(**env)
    assert out["result"] == 42
    spans = {s["name"]: s for s in out["spans"]}
    assert set(spans) == {"main", "inside"}
