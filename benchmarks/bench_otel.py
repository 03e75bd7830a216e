"""What tracing costs per task: the 10,000-task async fan-out with and without cascade-otel.

    python benchmarks/bench_otel.py [--tasks 10000] [--repeat 7]

One process, one graph shape, the performance issue's fan-out: ``total([noop(i) for i in
range(N)])``, a sum over N no-op ``async def`` calls passed as one list, the graph built fresh
for every repetition and run on a fresh ``cs.Engine(log_level=None)``, as ``cs.run`` would.
Modes, interleaved so machine noise hits them alike:

- ``baseline``: the otel plugin not loaded at all.
- ``api-only``: the plugin loaded, the API without an SDK (the global ``ProxyTracerProvider``),
  as for an application that installed cascade-otel but configured no SDK. Target: <= 3 µs/task
  over baseline.
- ``api-hook``: for information, what the API alone would cost if tracing were attached anyway
  (a provider whose spans are non-recording): the call hook and the engine's policy path.
- ``sdk``: the SDK with a ``BatchSpanProcessor`` (queue large enough to drop nothing) and an
  exporter that drops the batches; the timing includes ``force_flush``.
- ``sdk-floor``: what the SDK itself costs for the same spans, with no engine at all: on the
  same provider, the run's span and the N+1 task spans started by hand with
  ``tracer.start_span`` (children of the run span, with the attributes cascade-otel gives
  them, the argument's type included), all N+1 alive at once, then all ended, then
  ``force_flush``.

Target for the SDK: its overhead over the baseline (``sdk`` minus ``baseline``) at most 1.3x
the floor (both for the same N+2 spans), i.e. tracing adds at most 30% on top of what the SDK
needs anyway; judged on the CPU-time medians, which other work on the machine moves less than
wall time.

Prints a markdown table: median and best wall time per repetition, µs per task, and the
overhead per task over the baseline (from the medians); then the SDK overhead per task, the
floor per span and their ratio, in wall time and in CPU time of every thread of the process
(the span processor's export thread included), which a machine shared with other work moves
much less than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import cascade as cs
import cascade_otel
from cascade.plugins import PluginManager
from cascade_otel.tracing import (
    RUN_ID,
    RUN_STATUS,
    RUN_TARGETS,
    TASK_ATTEMPT,
    TASK_EXECUTOR,
    TASK_ID,
    TASK_NAME,
    TASK_STATUS,
)

#: Overhead over the baseline, µs per task.
TARGETS_US = {"api-only": 3.0}
#: ``sdk`` overhead over the baseline, as a multiple of ``sdk-floor`` (the same spans by hand).
SDK_FLOOR_TARGET = 1.3


@cs.task
async def noop(i: int) -> int:
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
    return total([noop(i) for i in range(tasks)])


def sdk_floor(tracer: trace.Tracer, tasks: int) -> Callable[[], None]:
    """One repetition of ``sdk-floor``: the spans a traced run of ``build(tasks)`` makes (a run
    span and tasks + 1 task spans), started and ended by hand, every task span alive at once.
    The ids are made beforehand, as the engine has them before tracing sees a task."""
    run_id = uuid.uuid4().hex
    names = ["noop"] * tasks + ["total"]
    calls = [(name, f"{name}-{i}") for i, name in enumerate(names, 1)]
    # The argument's type, as cascade-otel records it (``noop(i)``, ``total(values)``).
    arguments = {
        "noop": {"cascade.task.arg.i.type": "int"},
        "total": {"cascade.task.arg.values.type": "list"},
    }

    def run() -> None:
        run_span = tracer.start_span(
            "cascade.run total",
            context=otel_context.get_current(),
            kind=SpanKind.INTERNAL,
            attributes={RUN_ID: run_id, RUN_TARGETS: ["total"]},
        )
        run_context = trace.set_span_in_context(run_span)
        spans = [
            tracer.start_span(
                name,
                context=run_context,
                kind=SpanKind.INTERNAL,
                attributes={
                    RUN_ID: run_id,
                    TASK_ID: task_id,
                    TASK_NAME: name,
                    TASK_ATTEMPT: 1,
                    **arguments[name],
                },
            )
            for name, task_id in calls
        ]
        for span in spans:
            span.set_attributes({TASK_EXECUTOR: "local", TASK_STATUS: "Succeeded"})
            span.end()
        run_span.set_attribute(RUN_STATUS, "Succeeded")
        run_span.end()

    return run


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

    def engine_mode(factory: Callable[[], cs.Engine]) -> Callable[[], Callable[[], None]]:
        def prepare() -> Callable[[], None]:
            target, engine = build(args.tasks), factory()

            def run() -> None:
                assert asyncio.run(engine.run(target)) == args.tasks

            return run

        return prepare

    tracer = trace.get_tracer(
        cascade_otel.INSTRUMENTATION_NAME, cascade_otel.__version__, tracer_provider=sdk
    )
    # Each mode: what prepares one repetition (untimed) and returns the timed part, and what
    # runs after it inside the timing.
    modes: dict[str, tuple[Callable[[], Callable[[], None]], Callable[[], Any] | None]] = {
        "baseline": (engine_mode(baseline), None),
        "api-only": (engine_mode(api_only), None),
        "api-hook": (engine_mode(api_hook), None),
        "sdk": (engine_mode(with_sdk), sdk.force_flush),
        "sdk-floor": (lambda: sdk_floor(tracer, args.tasks), sdk.force_flush),
    }
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    for prepare, flush in modes.values():  # warm up every path once
        prepare()()
        if flush:
            flush()
    exported_before = exporter.exported
    for _ in range(args.repeat):
        for mode, (prepare, flush) in modes.items():
            run = prepare()
            gc.collect()
            if args.gc_off:
                gc.disable()
            started, started_cpu = time.perf_counter(), time.process_time()
            run()
            if flush:
                flush()
            samples[mode].append(time.perf_counter() - started)
            cpu[mode].append(time.process_time() - started_cpu)
            gc.enable()
    spans = args.tasks + 2  # per repetition: the run, the no-op tasks and the sum
    expected_spans = 2 * args.repeat * spans  # sdk and sdk-floor
    assert exporter.exported - exported_before == expected_spans, "spans were dropped"
    assert otel_context.get_current() == otel_context.Context()

    count = args.tasks + 1  # the no-op tasks and the sum
    median_of = {mode: statistics.median(times) for mode, times in samples.items()}
    base = median_of["baseline"]
    sdk_overhead = median_of["sdk"] - base
    floor = median_of["sdk-floor"]
    ratio = sdk_overhead / floor
    best_ratio = (min(samples["sdk"]) - min(samples["baseline"])) / min(samples["sdk-floor"])
    cpu_median = {mode: statistics.median(times) for mode, times in cpu.items()}
    cpu_best = {mode: min(times) for mode, times in cpu.items()}
    cpu_overhead = cpu_median["sdk"] - cpu_median["baseline"]
    cpu_ratio = cpu_overhead / cpu_median["sdk-floor"]
    ratio_ok = cpu_ratio <= SDK_FLOOR_TARGET
    gc_note = ", cyclic GC off while timing" if args.gc_off else ""
    print(f"\n{args.tasks:,}-task async fan-out, {args.repeat} repetitions per mode{gc_note}\n")
    print("| mode | median ms | best ms | µs/task | overhead µs/task | target |")
    print("|---|---:|---:|---:|---:|---|")
    failed = not ratio_ok
    for mode, times in samples.items():
        median = median_of[mode]
        overhead = f"{(median - base) / count * 1e6:+.2f}"
        target = TARGETS_US.get(mode)
        verdict = ""
        if target is not None:
            ok = (median - base) / count * 1e6 <= target
            failed |= not ok
            verdict = f"≤ {target:g} {'ok' if ok else 'MISSED'}"
        elif mode == "sdk":
            verdict = f"≤ {SDK_FLOOR_TARGET:g}× floor (CPU) {'ok' if ratio_ok else 'MISSED'}"
        elif mode == "sdk-floor":
            overhead = "-"  # no engine: not comparable with the baseline
            verdict = "floor"
        print(
            f"| {mode} | {median * 1e3:.1f} | {min(times) * 1e3:.1f} | "
            f"{median / count * 1e6:.2f} | {overhead} | {verdict} |"
        )
    print(
        f"\nSDK overhead: {sdk_overhead / count * 1e6:.2f} µs/task "
        f"(sdk minus baseline, medians, {count:,} tasks)"
    )
    print(
        f"SDK floor: {floor / spans * 1e6:.2f} µs/span "
        f"({spans:,} spans by hand, {count:,} alive at once, median)"
    )
    print(f"SDK overhead / SDK floor: {ratio:.2f}× ({best_ratio:.2f}× from the best times)")
    print(
        f"CPU time, every thread: overhead {cpu_overhead / count * 1e6:.2f} µs/task, floor "
        f"{cpu_median['sdk-floor'] / spans * 1e6:.2f} µs/span, ratio {cpu_ratio:.2f}× "
        f"(target ≤ {SDK_FLOOR_TARGET:g}×; "
        f"{(cpu_best['sdk'] - cpu_best['baseline']) / cpu_best['sdk-floor']:.2f}× from the "
        "best times)"
    )
    sdk.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
