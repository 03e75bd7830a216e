"""OpenTelemetry traces of Cascade runs: one trace per run, one span per task attempt.

Installing ``cascade-otel`` is enough: its plugin instruments every new ``cascade.Engine``
against the global tracer provider, and does nothing at all (no hook, no subscription) while
that provider is the API's no-op one, so an application without the SDK pays nothing.
``CASCADE_OTEL_DISABLED=1`` turns the plugin off. Tests and applications that manage their own
provider attach it explicitly:

```python
import cascade as cs
import cascade_otel

engine = cs.Engine()
cascade_otel.instrument(engine, tracer_provider=provider)
```
"""

from __future__ import annotations

import os
import weakref

from opentelemetry import trace

from cascade import Engine
from cascade_otel._version import __version__
from cascade_otel.tracing import EngineTracing, values_recorded_by_default

INSTRUMENTATION_NAME = "cascade_otel"
"""The instrumentation scope name spans are reported under."""

_attached: weakref.WeakKeyDictionary[Engine, EngineTracing] = weakref.WeakKeyDictionary()


def is_disabled() -> bool:
    """Whether ``CASCADE_OTEL_DISABLED`` turns automatic instrumentation off."""
    raw = os.environ.get("CASCADE_OTEL_DISABLED", "")
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _real_tracer(provider: trace.TracerProvider | None) -> trace.Tracer | None:
    """A tracer from ``provider`` (the global one if ``None``), or ``None`` when every span it
    made would be a no-op: then tracing is not attached at all."""
    if provider is None or isinstance(provider, trace.ProxyTracerProvider):
        provider = trace.get_tracer_provider()  # the proxy resolves to the global if one is set
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=provider)
    if isinstance(tracer, (trace.NoOpTracer, trace.ProxyTracer)):  # e.g. OTEL_SDK_DISABLED
        return None
    return tracer


def instrument(
    engine: Engine,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    record_values: bool | None = None,
) -> EngineTracing | None:
    """Trace every run of ``engine`` with spans from ``tracer_provider`` (default: the global
    provider). Replaces any tracing attached to ``engine`` before, so calling it on an engine
    the plugin already instrumented does not double the spans.

    ``record_values`` records parameter and argument values next to their names and types
    (default: ``CASCADE_OTEL_RECORD_VALUES``, else off, since values may be secrets).

    Returns the attached ``EngineTracing``, or ``None`` when the provider is a no-op (the API
    without an SDK, ``NoOpTracerProvider``, ``OTEL_SDK_DISABLED``): nothing is attached then.
    """
    uninstrument(engine)
    tracer = _real_tracer(tracer_provider)
    if tracer is None:
        return None
    if record_values is None:
        record_values = values_recorded_by_default()
    tracing = EngineTracing(engine, tracer, record_values=record_values)
    tracing.attach()
    _attached[engine] = tracing
    return tracing


def uninstrument(engine: Engine) -> None:
    """Remove the tracing ``instrument`` attached to ``engine``, if any."""
    tracing = _attached.pop(engine, None)
    if tracing is not None:
        tracing.detach()


def tracing_of(engine: Engine) -> EngineTracing | None:
    """The tracing attached to ``engine``, if any."""
    return _attached.get(engine)


__all__ = [
    "INSTRUMENTATION_NAME",
    "EngineTracing",
    "__version__",
    "instrument",
    "is_disabled",
    "tracing_of",
    "uninstrument",
]
