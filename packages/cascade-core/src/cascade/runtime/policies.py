"""The policy chain a node with policies runs through, outermost first:

condition → mapping (one chain per item) → concurrency limits (the task's, then the run's)
→ cache → fallback → retries → one attempt (``cascade.runtime.attempt``).

``run_node`` returns the node's value, or ``SKIPPED`` for a node whose condition was false.
The steps of the call itself (arguments, gates, cache lookup and save, injection, submit,
report) are the call pipeline's (``cascade.runtime.call``): a policy wraps them, it never
re-implements one. To add a policy, add a step here where it belongs in that order, and a
check to ``RunPlan.needs_policies`` so nodes that use it take this route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

from cascade.events import TaskNamed, TaskRetrying, describe_error, preview
from cascade.graph.build import KIND_MAP, Node
from cascade.runtime.attempt import give_back, run_attempt, will_retry
from cascade.runtime.call import PlainItems, cache_of, enter_gates, lookup, save
from cascade.runtime.inputs import arguments
from cascade.runtime.limits import Weighted, arrival
from cascade.runtime.markers import SKIPPED
from cascade.runtime.outcome import MapItemsFailed
from cascade.runtime.scope import finish
from cascade.runtime.state import RunState
from cascade.spec.run_name import call_name
from cascade.spec.task import MISSING, MappedLazyResult, Task, passed_whole


async def run_node(state: RunState, node: Node, results: Sequence[Any]) -> Any:
    """Run one node with its policies, its inputs taken from ``results``."""
    lazy = node.lazy
    if not condition_holds(state, node, results):
        return SKIPPED
    args, kwargs = arguments(node, results, state.graph.index_of)
    if node.kind == KIND_MAP:
        return await _run_map(state, node, args, kwargs)
    return await _limited(state, node, lazy.id, args, kwargs)


def condition_holds(state: RunState, node: Node, results: Sequence[Any]) -> bool:
    """Whether a node's ``run_if`` condition (if any) holds; a node whose condition is
    false is reported skipped here."""
    lazy = node.lazy
    if lazy.condition is not MISSING:
        condition = results[node.condition] if node.condition >= 0 else lazy.condition
        if not condition:
            state.report.skipped(node, lazy.id, "ConditionFalse")
            return False
    return True


async def _run_map(
    state: RunState, node: Node, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    lazy = node.lazy
    assert isinstance(lazy, MappedLazyResult)
    # Which arguments fan out is decided from their values: a Param or a task that produced
    # text, bytes or a mapping passes it whole, as a literal one would be.
    whole: list[str] = []
    columns: dict[str, list[Any]] = {}
    arg_columns: list[tuple[int, list[Any]]] = []
    kwarg_columns: list[tuple[str, list[Any]]] = []
    for pos in lazy.iterated_args:
        label = f"argument {pos}"
        if passed_whole(args[pos]):
            whole.append(label)
            continue
        columns[label] = _as_list(args[pos], node.name, label)
        arg_columns.append((pos, columns[label]))
    for key in lazy.iterated_kwargs:
        label = f"argument '{key}'"
        if passed_whole(kwargs[key]):
            whole.append(label)
            continue
        columns[label] = _as_list(kwargs[key], node.name, label)
        kwarg_columns.append((key, columns[label]))
    if not columns:
        raise TypeError(
            f"{node.name}.map(): nothing to fan out over: {', '.join(whole)} produced text, "
            "bytes or a mapping, which is passed whole to every item; map over a list"
        )
    lengths = {label: len(items) for label, items in columns.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{label} has {n}" for label, n in lengths.items())
        raise ValueError(f"{node.name}.map(): iterated arguments differ in length: {detail}")
    count = next(iter(lengths.values()))

    def inputs(k: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        item_args = list(args)
        for pos, column in arg_columns:
            item_args[pos] = column[k]
        item_kwargs = dict(kwargs)
        for key, column in kwarg_columns:
            item_kwargs[key] = column[k]
        return tuple(item_args), item_kwargs

    plain = PlainItems.of(state, node)
    if plain is not None and plain.in_place:
        return await plain.run_all(count, inputs)

    def item_call(k: int) -> Coroutine[Any, Any, Any]:
        return _limited(state, node, f"{lazy.id}[{k}]", *inputs(k))

    items = [state.loop.create_task(item_call(k)) for k in range(count)]
    if not items:
        return []
    # Items in the order they ended, so the failure raised is the one that failed first (the
    # one events reported first), not the first in item order.
    ended: list[asyncio.Task[Any]] = []
    for item in items:
        item.add_done_callback(ended.append)
    # Stopping at the first failure cancels the other items; keeping going lets them finish.
    keep_going = state.plan.keep_going
    until = asyncio.ALL_COMPLETED if keep_going else asyncio.FIRST_EXCEPTION
    try:
        _, pending = await asyncio.wait(items, return_when=until)
    except asyncio.CancelledError:
        await finish(items, cancel=True)
        _retrieve(items, ended)
        raise
    if pending and await finish(pending, cancel=True):
        _retrieve(items, ended)
        raise asyncio.CancelledError
    first = _retrieve(items, ended)
    if first is not None and keep_going and isinstance(first, Exception):
        failures = {
            f"{lazy.id}[{k}]": item.exception()
            for k, item in enumerate(items)
            if not item.cancelled() and isinstance(item.exception(), Exception)
        }
        raise MapItemsFailed(failures)  # type: ignore[arg-type]
    if first is not None:
        raise first
    return [item.result() for item in items]


def _retrieve(
    items: list[asyncio.Task[Any]], ended: list[asyncio.Task[Any]]
) -> BaseException | None:
    """The exception of the item that failed first (``ended`` is the order items ended in),
    after retrieving every item's, so none is reported as "never retrieved"."""
    for item in items:
        if item.done() and not item.cancelled():
            item.exception()
    for item in ended:
        if not item.cancelled() and item.exception() is not None:
            return item.exception()
    return None


async def _limited(
    state: RunState, node: Node, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A node (or mapped item) inside its task's concurrency limit and the run's. In a
    stop-mode run its failure stops the run: that is decided here, as it fails, before the
    slots it frees wake anyone, so nothing waiting for them starts."""
    try:
        return await _within_limits(state, node, task_id, args, kwargs)
    except Exception:
        if not state.plan.keep_going:
            state.halted = True
        raise


async def _within_limits(
    state: RunState, node: Node, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    plan = state.plan
    task: Task[..., Any] = node.lazy.task  # type: ignore[assignment]
    if task.run_name is not None and plan.want_named:
        state.report.task_event(TaskNamed, node, task_id, call_name=call_name(task, args, kwargs))
    limits = _limits_of(state, task)
    if not limits:
        return await _cached(state, node, task, task_id, args, kwargs, [])
    abandoned: list[asyncio.Future[Any]] = []  # every attempt's, see ``give_back``
    await enter_gates(state, node, task_id, limits)
    try:
        return await _cached(state, node, task, task_id, args, kwargs, abandoned)
    finally:
        for weighted in reversed(limits):
            give_back(state, weighted.gate, weighted.weight, abandoned)


def _limits_of(state: RunState, task: Task[..., Any]) -> tuple[Weighted, ...]:
    """The limits a call holds for all its attempts: its task's ``concurrency``, then the
    run's ``max_concurrency``."""
    plan = state.plan
    task_limiter = plan.task_limiter(task)
    limits: tuple[Weighted, ...] = ()
    if task_limiter is not None:
        limits += (Weighted(task_limiter, 1),)
    if plan.limiter is not None:
        limits += (Weighted(plan.limiter, 1),)
    return limits


async def _cached(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    abandoned: list[asyncio.Future[Any]],
) -> Any:
    policy = cache_of(state, node, task, bool(args or kwargs))
    if policy is None:
        return await _retried(state, node, task, task_id, args, kwargs, abandoned)
    hit, cached, context = lookup(state, policy, node, task, task_id, args, kwargs)
    if hit:
        return cached
    value = await _retried(state, node, task, task_id, args, kwargs, abandoned)
    plan = state.plan
    if plan.has_references:
        value = (await plan.executor_for(task)[1].materialize([value]))[0]
    return save(policy, context, value, node)


async def _retried(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    abandoned: list[asyncio.Future[Any]],
) -> Any:
    plan = state.plan
    lazy = node.lazy
    retry = lazy.retry
    timeout = lazy.timeout
    fallback = lazy.fallback
    gates = plan.attempt_gates(node)
    place = arrival()  # kept by every attempt: a retry keeps its place in a gate's queue
    attempt = 1
    while True:
        left_running: list[asyncio.Future[Any]] = []  # this attempt's, see ``give_back``
        try:
            # Pool slots are held while an attempt runs, not between retries; every attempt
            # takes a token of each rate.
            if gates:  # most calls have none: no coroutine to make (benchmarks/run.py, map row)
                await enter_gates(state, node, task_id, gates, place)
            try:
                if state.halted:  # the run decided to stop while this call waited
                    raise asyncio.CancelledError
                return await run_attempt(
                    state,
                    node,
                    task,
                    task_id,
                    args,
                    kwargs,
                    attempt,
                    timeout,
                    retry,
                    has_fallback=fallback is not MISSING,
                    abandoned=left_running,
                )
            finally:
                abandoned.extend(left_running)
                for weighted in gates:
                    give_back(state, weighted.gate, weighted.weight, left_running)
        except Exception as exc:
            if retry is None or not will_retry(retry, attempt, exc):
                if fallback is not MISSING:
                    return fallback
                raise
            delay = retry.delay_before(attempt, plan.rng)
            if plan.want_retrying:
                state.report.task_event(
                    TaskRetrying,
                    node,
                    task_id,
                    attempt=attempt,
                    delay=delay,
                    error=describe_error(exc),
                    error_type=type(exc).__name__,
                    exception=exc,
                )
            attempt += 1
            if delay:
                await asyncio.sleep(delay)


def _as_list(value: Any, task_name: str, label: str) -> list[Any]:
    if isinstance(value, list):
        return value
    try:
        return list(value)
    except TypeError:
        raise TypeError(
            f"{task_name}.map(): {label} must be iterable, got {type(value).__name__}: "
            f"{preview(value)}; to pass it whole to every item, wrap it in cs.unmapped(...)"
        ) from None
