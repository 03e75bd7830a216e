"""Carrying a task's span to another process.

The parent process writes the task span's context into ``call.carrier`` as W3C trace context
(``traceparent``, ``tracestate``) and, when the context holds any, W3C ``baggage``; executors
that run calls in another process ship the carrier with the call and enter ``attach_carrier``
around the function there (``cascade.executors.call_in_worker`` does it). It is a
module-level function so it pickles by reference.

W3C is used on both ends whatever propagators the application configured: both ends are
Cascade's, and a worker process has not run the application's propagator setup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()


def has_baggage(ctx: context.Context) -> bool:
    """Whether ``ctx`` carries baggage (worth sending to workers)."""
    return bool(baggage.get_all(ctx))


def inject_into(
    carrier: dict[str, str],
    span: trace.Span,
    ctx: context.Context,
    with_baggage: bool = True,
) -> None:
    """Write ``span`` (current in ``ctx``) into ``carrier`` as W3C trace context, plus the
    baggage of ``ctx`` if it has any (``with_baggage=False``: the caller knows it has none).

    This runs before every task attempt, so the common case formats ``traceparent`` directly
    instead of going through the propagator API (same header, a fraction of the cost)."""
    span_context = span.get_span_context()
    if span_context.is_valid:
        carrier["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        )
        if span_context.trace_state:
            carrier["tracestate"] = span_context.trace_state.to_header()
    if with_baggage and baggage.get_all(ctx):
        _BAGGAGE.inject(carrier, context=ctx)


def extract_from(carrier: dict[str, str]) -> context.Context:
    """The context described by a carrier ``inject_into`` filled: the remote task span as
    parent, and the baggage."""
    ctx = _TRACE_CONTEXT.extract(carrier)
    if "baggage" in carrier:
        ctx = _BAGGAGE.extract(carrier, context=ctx)
    return ctx


@contextlib.contextmanager
def attach_carrier(carrier: dict[str, str]) -> Iterator[None]:
    """Make the span in ``carrier`` current while the task body runs in a worker, so spans the
    task (or an instrumented library) starts there are children of the task's span."""
    token = context.attach(extract_from(carrier))
    try:
        yield
    finally:
        context.detach(token)


__all__ = ["attach_carrier", "extract_from", "has_baggage", "inject_into"]
