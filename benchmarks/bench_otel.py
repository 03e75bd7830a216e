"""What tracing costs per task: the 10,000-task async fan-out with and without cascade-otel.

    python benchmarks/bench_otel.py [--tasks 10000] [--repeat 7]

One process, one graph shape: ``total`` (a sum) over N no-op ``async def`` tasks, the graph
built fresh for every repetition and run on a fresh ``cs.Engine(log_level=None)``, as
``cs.run`` would. Modes, interleaved so machine noise hits them alike:

- ``baseline``: the otel plugin not loaded at all.
- ``api-only``: the plugin loaded, the API without an SDK (the global ``ProxyTracerProvider``),
  as for an application that installed cascade-otel but configured no SDK. Target: <= 3 µs/task
  over baseline.
- ``api-hook``: for information, what the API alone would cost if tracing were attached anyway
  (a provider whose spans are non-recording): the call hook and the engine's policy path.
- ``sdk``: the SDK with a ``BatchSpanProcessor`` (queue large enough to drop nothing) and an
  exporter that drops the batches; the timing includes ``force_flush``. Target: <= 30 µs/task.

Prints a markdown table: median and best wall time per run, µs per task, and the overhead per
task over the baseline (from the medians).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import cascade as cs
import cascade_otel
from cascade.plugins import PluginManager

TARGETS_US = {"api-only": 3.0, "sdk": 30.0}


@cs.task
async def noop() -> int:
    return 1


@cs.task
async def total(values: list[int]) -> int:
    return sum(values)


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing: measures tracing, not an exporter's I/O."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


class NonRecordingTracer(trace.Tracer):
    """The API's behaviour without an SDK, but not recognisable as a no-op, so tracing gets
    attached: every span is non-recording."""

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return trace.use_span(self.start_span())


class NonRecordingProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return NonRecordingTracer()


def build(tasks: int) -> Any:
    return total([noop() for _ in range(tasks)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--gc-off",
        action="store_true",
        help="diagnostic: disable the cyclic GC while timing, to see how much of the cost is "
        "collections triggered by the objects a 10,000-wide fan-out keeps alive at once",
    )
    args = parser.parse_args(argv)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), (
        "run without a global SDK provider (unset OTEL_PYTHON_TRACER_PROVIDER)"
    )
    without_plugins = PluginManager(load_entrypoints=False)
    with_plugins = PluginManager()
    assert any(p.name == "otel" for p in with_plugins.plugin_info()), (
        "cascade-otel is not installed"
    )

    exporter = DropExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4 * args.tasks))

    def baseline() -> cs.Engine:
        return cs.Engine(log_level=None, plugin_manager=without_plugins)

    def api_only() -> cs.Engine:
        engine = cs.Engine(log_level=None, plugin_manager=with_plugins)
        assert not engine.call_hooks, "tracing got attached without an SDK"
        return engine

    def api_hook() -> cs.Engine:
        engine = cs.Engine(log_level=None, plugin_manager=without_plugins)
        assert cascade_otel.instrument(engine, tracer_provider=NonRecordingProvider())
        return engine

    def with_sdk() -> cs.Engine:
        engine = cs.Engine(log_level=None, plugin_manager=without_plugins)
        assert cascade_otel.instrument(engine, tracer_provider=sdk)
        return engine

    modes: dict[str, tuple[Callable[[], cs.Engine], Callable[[], Any] | None]] = {
        "baseline": (baseline, None),
        "api-only": (api_only, None),
        "api-hook": (api_hook, None),
        "sdk": (with_sdk, sdk.force_flush),
    }
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for factory, flush in modes.values():  # warm up every path once
        asyncio.run(factory().run(build(args.tasks)))
        if flush:
            flush()
    exported_before = exporter.exported
    for _ in range(args.repeat):
        for mode, (factory, flush) in modes.items():
            target, engine = build(args.tasks), factory()
            gc.collect()
            if args.gc_off:
                gc.disable()
            started = time.perf_counter()
            assert asyncio.run(engine.run(target)) == args.tasks
            if flush:
                flush()
            samples[mode].append(time.perf_counter() - started)
            gc.enable()
    expected_spans = args.repeat * (args.tasks + 2)
    assert exporter.exported - exported_before == expected_spans, "spans were dropped"
    assert otel_context.get_current() == otel_context.Context()

    count = args.tasks + 1  # the no-op tasks and the sum
    base = statistics.median(samples["baseline"])
    gc_note = ", cyclic GC off while timing" if args.gc_off else ""
    print(f"\n{args.tasks:,}-task async fan-out, {args.repeat} repetitions per mode{gc_note}\n")
    print("| mode | median ms | best ms | µs/task | overhead µs/task | target |")
    print("|---|---:|---:|---:|---:|---|")
    failed = False
    for mode, times in samples.items():
        median = statistics.median(times)
        overhead = (median - base) / count * 1e6
        target = TARGETS_US.get(mode)
        verdict = ""
        if target is not None:
            ok = overhead <= target
            failed |= not ok
            verdict = f"≤ {target:g} {'ok' if ok else 'MISSED'}"
        print(
            f"| {mode} | {median * 1e3:.1f} | {min(times) * 1e3:.1f} | "
            f"{median / count * 1e6:.2f} | {overhead:+.2f} | {verdict} |"
        )
    sdk.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
