"""Turning one engine's events into OpenTelemetry spans.

The span model (see docs/tracing.md):

- ``cascade.run <target>``: one INTERNAL span per run, from ``RunStarted`` to ``RunFinished``,
  a child of whatever span was current where ``engine.run`` was called. It is the current span
  while the run sets up resources, so spans those create nest under it.
- ``<task name>``: one span per task *attempt*, a child of the run span. The call hook starts it
  just before the attempt is handed to its executor and makes it current in the context the
  attempt runs in; ``TaskExecutionFinished`` ends it at the end time the event reports (measured
  where the work ran). A retried attempt ends with status ERROR and a ``cascade.task.retry``
  event; the next attempt links to it. Successes end together once per event-loop pass, from
  the engine's bulk ``TasksSucceeded`` (no event per task), each at the end time it reports.
- Skipped and cache-hit tasks get a zero-length span with ``cascade.task.skip_reason``.

Every handler runs on the event loop's thread (the bus publishes there and the engine calls its
call hooks there), so the per-run dictionaries need no lock.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

import cascade
from cascade import Engine, TaskCall
from cascade.events import (
    RunFinished,
    RunStarted,
    TaskExecutionFinished,
    TaskNamed,
    TaskRetrying,
    TaskSkipped,
    TasksSucceeded,
)
from cascade_otel.propagation import attach_carrier, has_baggage, inject_into

#: Attribute names, namespaced under ``cascade.`` (plus the semantic convention ``error.type``).
RUN_ID = "cascade.run.id"
RUN_TARGETS = "cascade.run.targets"
RUN_STATUS = "cascade.run.status"
TASK_ID = "cascade.task.id"
TASK_NAME = "cascade.task.name"
TASK_RUN_NAME = "cascade.task.run_name"
TASK_ATTEMPT = "cascade.task.attempt"
TASK_EXECUTOR = "cascade.task.executor"
TASK_STATUS = "cascade.task.status"
TASK_PARENT = "cascade.task.parent_id"
TASK_RETURNED_GRAPH = "cascade.task.returned_graph"
TASK_WAITED = "cascade.task.waited"
TASK_WAITED_FOR = "cascade.task.waited_for"
TASK_SKIPPED = "cascade.task.skipped"
TASK_SKIP_REASON = "cascade.task.skip_reason"
TASK_CACHE_HIT = "cascade.task.cache_hit"
ERROR_TYPE = "error.type"
RETRY_EVENT = "cascade.task.retry"
RETRY_DELAY = "cascade.task.retry.delay"
RETRY_NEXT_ATTEMPT = "cascade.task.retry.next_attempt"

_MAX_VALUE_LENGTH = 256

logger = logging.getLogger("cascade_otel")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _qualified_name(cls: type) -> str:
    """The class's name as users import it: ``cascade.RunFailed`` for Cascade's public
    exceptions (not the internal module that defines them), ``module.Class`` otherwise."""
    module = cls.__module__
    if module in ("builtins", "__main__", None):
        return cls.__qualname__
    if module.startswith("cascade.") and getattr(cascade, cls.__name__, None) is cls:
        return f"cascade.{cls.__name__}"
    return f"{module}.{cls.__qualname__}"


def _error_of(
    exception: BaseException | None, error_type: str | None, error: str | None
) -> tuple[str, str]:
    """``(qualified type name, message)`` of a failure as events carry it: from the exception
    object when the event has it (in-process subscribers always do), else from its fields."""
    if exception is not None:
        return _qualified_name(type(exception)), str(exception)
    kind = error_type or "Exception"
    message = error or ""
    prefix = f"{kind}: "
    return kind, message[len(prefix) :] if message.startswith(prefix) else message


def _attribute_value(value: Any) -> str | bool | int | float:
    if isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else _safe_repr(value)
    if len(text) > _MAX_VALUE_LENGTH:
        text = text[: _MAX_VALUE_LENGTH - 3] + "..."
    return text


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not break tracing
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def _values_from_env() -> bool:
    raw = os.environ.get("CASCADE_OTEL_RECORD_VALUES", "")
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class _RunState:
    span: Span
    context: context.Context
    token: object
    #: whether the run's context carries baggage (the same for all its tasks)
    baggage: bool
    #: open attempt spans by task id (attempts of one task id never overlap)
    attempts: dict[str, Span] = field(default_factory=dict)
    #: failed attempts not ended yet, by task id: a retry may still be announced
    failed: dict[str, tuple[Span, int]] = field(default_factory=dict)
    #: the span of a task's last failed attempt, linked from its next attempt
    previous: dict[str, trace.SpanContext] = field(default_factory=dict)
    #: spans of attempts that returned graphs: the parents of the tasks added at run time
    parents: dict[str, Span] = field(default_factory=dict)
    #: run names of calls (``@cs.task(run_name=...)``) by task id
    names: dict[str, str] = field(default_factory=dict)


class EngineTracing:
    """Traces every run of one engine: subscribes to its bus and adds a call hook.

    Made by ``cascade_otel.instrument``; ``detach()`` (or ``cascade_otel.uninstrument``) undoes
    it. ``record_values`` records parameter and argument values (``repr``, cut to 256
    characters) next to their types; off by default because values may be secrets or personal
    data.
    """

    def __init__(self, engine: Engine, tracer: trace.Tracer, *, record_values: bool) -> None:
        self.engine = engine
        self.tracer = tracer
        self.record_values = record_values
        self._runs: dict[str, _RunState] = {}
        self._signatures: dict[Callable[..., Any], tuple[tuple[str, ...], str | None]] = {}
        #: The argument attributes of calls whose values are not recorded, by function and
        #: argument types (the attributes hold nothing else): a wide fan-out of calls with
        #: the same types builds them once (``benchmarks/bench_otel.py``, the sdk row).
        self._typed: dict[tuple[Any, ...], dict[str, Any]] = {}
        #: The attributes a succeeded span ends with, by executor name (the SDK copies them).
        self._succeeded: dict[str, dict[str, Any]] = {}
        # Successes come in bulk, the rest one event each: the engine then builds no event
        # per succeeded task (``benchmarks/bench_otel.py``, the sdk row).
        self._subscriptions: list[
            tuple[type[Any], Callable[[Any], None], tuple[str, ...] | None]
        ] = [
            (RunStarted, self._on_run_started, None),
            (RunFinished, self._on_run_finished, None),
            (TasksSucceeded, self._on_tasks_succeeded, None),
            (TaskExecutionFinished, self._on_task_finished, ("Failed", "Cancelled")),
            (TaskRetrying, self._on_task_retrying, None),
            (TaskSkipped, self._on_task_skipped, None),
            (TaskNamed, self._on_task_named, None),
        ]

    def attach(self) -> None:
        """Start tracing the engine's runs."""
        for event_type, handler, statuses in self._subscriptions:
            self.engine.bus.subscribe(event_type, handler, statuses=statuses)
        self.engine.add_call_hook(self._on_call)

    def detach(self) -> None:
        """Stop tracing the engine's runs (runs in flight keep the spans they have)."""
        for event_type, handler, _ in self._subscriptions:
            self.engine.bus.unsubscribe(event_type, handler)
        hooks = self.engine.call_hooks
        if self._on_call in hooks:
            hooks.remove(self._on_call)

    # -- the run span --------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted) -> None:
        # Published synchronously inside ``engine.run``: the current context is the caller's.
        parent = context.get_current()
        targets = list(dict.fromkeys(event.target_tasks))
        attributes: dict[str, Any] = {RUN_ID: event.run_id, RUN_TARGETS: targets}
        self._add_values(attributes, "cascade.run.param.", event.params)
        span = self.tracer.start_span(
            f"cascade.run {', '.join(targets)}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.timestamp),
        )
        run_context = trace.set_span_in_context(span, parent)
        # Current for the rest of the run in the run's own task (resource setup, teardown);
        # detached again when the run finishes, in the same task.
        token = context.attach(run_context)
        self._runs[event.run_id] = _RunState(span, run_context, token, has_baggage(parent))

    def _on_run_finished(self, event: RunFinished) -> None:
        state = self._runs.pop(event.run_id, None)
        if state is None:
            return
        end = _ns(event.timestamp)
        for span, failed_end in state.failed.values():
            span.end(end_time=failed_end)
        for span in state.attempts.values():  # attempts the engine stopped waiting for
            span.set_attribute(TASK_STATUS, "Abandoned")
            span.end(end_time=end)
        span = state.span
        span.set_attribute(RUN_STATUS, event.status)
        if event.status == "Failed":
            kind, message = _error_of(event.exception, event.error_type, event.error)
            span.set_attribute(ERROR_TYPE, kind)
            span.set_status(Status(StatusCode.ERROR, message))
        if trace.get_current_span() is span:
            context.detach(state.token)  # type: ignore[arg-type]
        span.end(end_time=end)

    # -- task spans ------------------------------------------------------------------------

    def _on_call(self, call: TaskCall) -> None:
        """Runs inside the attempt's own (throwaway) context, just before it is submitted.

        The engine fails an attempt whose call hook raises, so tracing trouble is logged here
        instead: a broken tracer must never fail a task."""
        try:
            self._start_task_span(call)
        except Exception:
            logger.exception(
                "cascade-otel could not start the span of task '%s' (attempt %d); the task "
                "runs untraced",
                call.task_name,
                call.attempt,
            )

    def _start_task_span(self, call: TaskCall) -> None:
        state = self._runs.get(call.run_id)
        if state is None:  # attached after this run started: leave it untraced
            return
        links = None
        if call.attempt > 1:
            previous = state.previous.pop(call.task_id, None)
            if previous is not None:
                links = [Link(previous)]
        parent_context = state.context
        if call.parent_task_id is not None:
            # A task added at run time: a child of the span of the task that returned it,
            # which the engine may not have reported yet (successes come once per pass).
            parent = state.parents.get(call.parent_task_id)
            if parent is None:
                parent = state.attempts.get(call.parent_task_id)
            if parent is not None:
                parent_context = trace.set_span_in_context(parent, state.context)
        attributes: dict[str, Any] = {
            RUN_ID: call.run_id,
            TASK_ID: call.task_id,
            TASK_NAME: call.task_name,
            TASK_ATTEMPT: call.attempt,
        }
        if call.parent_task_id is not None:
            attributes[TASK_PARENT] = call.parent_task_id
        if state.names:
            named = state.names.get(call.task_id)
            if named is not None:  # an attribute: span names stay the task's (low cardinality)
                attributes[TASK_RUN_NAME] = named
        if call.waited_for:  # it waited for pool slots or rate tokens before it started
            attributes[TASK_WAITED] = call.waited
            attributes[TASK_WAITED_FOR] = list(call.waited_for)
        if call.args or call.kwargs:
            # Given with the others as the span starts: one attribute check in the SDK, not
            # a second one for ``set_attributes``.
            attributes.update(self._argument_attributes(call))
        span = self.tracer.start_span(
            call.task_name,
            context=parent_context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
        )
        task_context = trace.set_span_in_context(span, parent_context)
        context.attach(task_context)  # never detached: the context is this attempt's own
        if call.leaves_process:  # only another process needs the W3C headers
            inject_into(call.carrier, span, task_context, state.baggage)
            call.worker_setup.append(attach_carrier)
        state.attempts[call.task_id] = span

    def _on_task_named(self, event: TaskNamed) -> None:
        state = self._runs.get(event.run_id)
        if state is not None:
            state.names[event.task_id] = event.call_name

    def _on_tasks_succeeded(self, event: TasksSucceeded) -> None:
        state = self._runs.get(event.run_id)
        if state is None:
            return
        attempts, succeeded = state.attempts, self._succeeded
        graphs = frozenset(event.returned_graphs)
        for task_id, end, executor in zip(
            event.task_ids, event.end_times, event.executors, strict=True
        ):
            span = attempts.pop(task_id, None)
            if span is None:
                continue
            attributes = succeeded.get(executor)
            if attributes is None:
                attributes = succeeded[executor] = {
                    TASK_EXECUTOR: executor,
                    TASK_STATUS: "Succeeded",
                }
            span.set_attributes(attributes)  # the status stays UNSET
            if graphs and task_id in graphs:
                span.set_attribute(TASK_RETURNED_GRAPH, True)
                state.parents[task_id] = span
            span.end(end_time=_ns(end))

    def _on_task_finished(self, event: TaskExecutionFinished) -> None:
        """A failed or cancelled attempt (successes come in bulk)."""
        state = self._runs.get(event.run_id)
        if state is None:
            return
        span = state.attempts.pop(event.task_id, None)
        if span is None:
            return
        end = _ns(event.timestamp)
        span.set_attributes({TASK_EXECUTOR: event.executor, TASK_STATUS: event.status})
        if event.status != "Failed":  # cancellation leaves the status UNSET
            span.end(end_time=end)
            return
        kind, message = _error_of(event.exception, event.error_type, event.error)
        if event.exception is not None:
            span.record_exception(event.exception, timestamp=end)
        else:
            span.add_event(
                "exception",
                {"exception.type": kind, "exception.message": message},
                timestamp=end,
            )
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, message))
        # Ended when a retry is announced, or when the run finishes.
        state.failed[event.task_id] = (span, end)

    def _on_task_retrying(self, event: TaskRetrying) -> None:
        state = self._runs.get(event.run_id)
        if state is None:
            return
        pending = state.failed.pop(event.task_id, None)
        if pending is None:
            return
        span, end = pending
        span.add_event(
            RETRY_EVENT,
            {RETRY_DELAY: event.delay, RETRY_NEXT_ATTEMPT: event.attempt + 1},
            timestamp=end,
        )
        span.end(end_time=end)
        state.previous[event.task_id] = span.get_span_context()

    def _on_task_skipped(self, event: TaskSkipped) -> None:
        state = self._runs.get(event.run_id)
        if state is None:
            return
        at = _ns(event.timestamp)
        span = self.tracer.start_span(
            event.task_name,
            context=state.context,
            kind=SpanKind.INTERNAL,
            attributes={
                RUN_ID: event.run_id,
                TASK_ID: event.task_id,
                TASK_NAME: event.task_name,
                TASK_SKIPPED: True,
                TASK_SKIP_REASON: event.reason,
                TASK_CACHE_HIT: event.reason == "CacheHit",
            },
            start_time=at,
        )
        span.end(end_time=at)

    # -- parameters and arguments: names and types, values only when asked -------------

    def _add_values(self, into: dict[str, Any], prefix: str, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            into[f"{prefix}{name}.type"] = type(value).__qualname__
            if self.record_values:
                into[f"{prefix}{name}.value"] = _attribute_value(value)

    def _argument_attributes(self, call: TaskCall) -> dict[str, Any]:
        if self.record_values:
            return self._named_attributes(call)
        key = (call.fn, *map(type, call.args))
        if call.kwargs:
            key += (None, *call.kwargs, *map(type, call.kwargs.values()))
        found = self._typed.get(key)
        if found is None:
            found = self._typed[key] = self._named_attributes(call)
        return found

    def _named_attributes(self, call: TaskCall) -> dict[str, Any]:
        names, var_positional = self._parameter_names(call.fn)
        named: dict[str, Any] = {}
        for position, value in enumerate(call.args):
            if position < len(names):
                named[names[position]] = value
            else:
                extra = position - len(names)
                named[f"{var_positional or 'args'}[{extra}]"] = value
        named.update(call.kwargs)
        attributes: dict[str, Any] = {}
        self._add_values(attributes, "cascade.task.arg.", named)
        return attributes

    def _parameter_names(self, fn: Callable[..., Any]) -> tuple[tuple[str, ...], str | None]:
        found = self._signatures.get(fn)
        if found is None:
            parameters: list[inspect.Parameter] = []
            try:
                parameters = list(inspect.signature(fn).parameters.values())
            except (TypeError, ValueError):  # no signature (some builtins): positions only
                pass
            positional: list[str] = []
            var_positional = None
            for parameter in parameters:
                if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                    positional.append(parameter.name)
                elif parameter.kind is parameter.VAR_POSITIONAL:
                    var_positional = parameter.name
            found = self._signatures[fn] = (tuple(positional), var_positional)
        return found


def values_recorded_by_default() -> bool:
    """Whether ``CASCADE_OTEL_RECORD_VALUES`` asks for values to be recorded."""
    return _values_from_env()


__all__ = ["EngineTracing", "values_recorded_by_default"]
