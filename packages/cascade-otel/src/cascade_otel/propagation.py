"""Carrying a task's span to another process.

The parent process injects the task span's context into ``call.carrier`` (W3C ``traceparent``,
plus whatever else the configured propagators write, such as ``baggage``); executors that run
calls in another process ship the carrier with the call and enter ``attach_carrier`` around the
function there (``cascade.executors.base.call_in_worker`` does it). It is a module-level
function so it pickles by reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context, propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()


def inject_into(carrier: dict[str, str], ctx: context.Context) -> None:
    """Write ``ctx`` into ``carrier`` with the configured propagators, and always as W3C
    ``traceparent``: a worker process has not seen the application's propagator setup, and
    W3C is what it falls back to."""
    propagate.inject(carrier, context=ctx)
    if "traceparent" not in carrier:
        _W3C.inject(carrier, context=ctx)


def extract_from(carrier: dict[str, str]) -> context.Context:
    """The context described by ``carrier``: the configured propagators first, W3C if they
    found no span."""
    ctx = propagate.extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid and "traceparent" in carrier:
        ctx = _W3C.extract(carrier, context=ctx)
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


__all__ = ["attach_carrier", "extract_from", "inject_into"]
