"""Streams: which nodes pass items on one by one, and the drivers of the stages that read them.

A *producer* is a generator task's call or a ``.map``; a *consumer* is a ``.map`` with a
producer as an iterated argument (``b.map(a.map(xs))``, ``parse.map(pages())``), or a
``cs.fold`` over one. ``plan_streams`` finds these edges before the run starts and takes them
out of the scheduler's dependency counts: a consumer is launched as soon as its other inputs
are complete, and reads its producer's ``Stream`` (``cascade.runtime.channel``) item by item.
Item ``i`` of a consumer map starts once item ``i`` of each of its streamed inputs is in,
whatever the other items do, through the same policy chain as any map item
(``cascade.runtime.policies``): its own events (``<map id>[i]``), retries, cache and
checkpoint, fallback, pools, rates, limits and priority. A consumer map is itself a producer
for the stages mapped over it, so chains of any length pipeline.

Failure: in a stop-mode run the first failing item stops the run (its stage raises, the
scheduler cancels the rest). With ``on_failure="continue"`` an item whose input item failed is
skipped as upstream-failed (``TaskSkipped``, naming that item), the others go on, and the
stage ends failed once all are settled; a fold over a failed item does not run.

Memory: a producer keeps the list of its items only when something needs it (a task that is
not a stream consumer takes it, or it is a target); a consumer stage reads its inputs only
while it has fewer than its task's ``buffer`` items in flight or waiting in its own output,
so a paused consumer pauses its producers up to the generator.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import operator
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from cascade.executors import Executor, TaskCall
from cascade.graph.build import KIND_MAP, Node
from cascade.graph.streams import is_generator, stream_inputs
from cascade.runtime.call import PlainItems, stoppable
from cascade.runtime.channel import (
    ABORTED,
    ITEM,
    ITEM_FAILED,
    ITEM_STARTED,
    SKIPPED_INPUT,
    STREAMED,
    Inbox,
    Stream,
    StreamTable,
    Subscription,
)
from cascade.runtime.inputs import arguments
from cascade.runtime.markers import SKIPPED
from cascade.runtime.outcome import MapItemsFailed
from cascade.runtime.plan import RunPlan
from cascade.runtime.policies import _as_list, _limited
from cascade.runtime.scope import finish
from cascade.runtime.state import RunState
from cascade.spec.fold import FOLD
from cascade.spec.streams import GENERATOR_TASKS, check_generator_options
from cascade.spec.task import MISSING, MappedLazyResult, passed_whole

_KIND = operator.attrgetter("kind")

#: The executor name a fold's attempt reports: it runs on the driver's event loop.
ON_LOOP = "local"


# -- planning ------------------------------------------------------------------------------


def plan_streams(plan: RunPlan, nodes: list[Node], pending: list[int]) -> StreamTable | None:
    """Find the stream edges of a run's graph and take them out of the dependency counts
    (``pending``, and the producers' ``dependents``), so consumers start before their
    producers end. ``None`` when nothing in the graph streams (the common case: one pass)."""
    if KIND_MAP not in map(_KIND, nodes) and (
        not GENERATOR_TASKS[0] or not any(map(_streams, nodes))
    ):
        return None  # the common case, found by passes in C
    table = StreamTable()
    loop = plan.loop
    targets = set(plan.graph.targets)
    edges: dict[int, list[tuple[int, int | str]]] = {}  # consumer → (producer, slot key)
    for node in nodes:
        found = stream_inputs(node, nodes)
        if found:
            edges[node.index] = found
    producers = {p for found in edges.values() for p, _ in found}
    for node in nodes:
        if is_generator(node):
            lazy = node.lazy
            check_generator_options(
                f"the call {lazy.id} of task '{node.name}'",
                retries=lazy.retry,
                cache=lazy.cache,
                fallback=None if lazy.fallback is MISSING else lazy.fallback,
            )
            task = lazy.task
            assert task is not None
            name, executor = plan.executor_for(task)
            if task.injections and executor.remote_resources:
                raise TypeError(
                    f"task '{task.name}' is a generator task, which runs in the driver "
                    f"process, but its executor '{name}' sets the resources it injects up in "
                    "its workers; give the generator executor='local' (the stages mapped "
                    f"over it can stay on '{name}')"
                )
            producers.add(node.index)
    if not producers:
        return None
    for consumer, found in edges.items():
        node = nodes[consumer]
        drop = {p for p, _ in found}
        # ``deps`` stay as they are (records, graphs and the not-run check read them): only
        # the count the scheduler waits on, the producer's completion fan-out, and the
        # values fetched before the call (``fetch_inputs``) leave the producer out.
        node.value_deps = tuple(d for d in node.value_deps if d not in drop)
        pending[consumer] -= len(drop)
        if not pending[consumer]:
            table.start_now.append(consumer)
        for producer in drop:
            upstream = nodes[producer]
            upstream.dependents = tuple(d for d in upstream.dependents if d != consumer)
        table.driven.add(consumer)
    for index in producers:
        node = nodes[index]
        task = node.lazy.task
        assert task is not None
        keep = index in targets or bool(node.dependents)
        stream = Stream(node.lazy.id, task.buffer, keep, loop)
        table.by_node[index] = stream
        table.by_id[node.lazy.id] = stream
        if node.kind == KIND_MAP:
            table.driven.add(index)
    for consumer, found in edges.items():
        inbox = Inbox(loop)
        table.inboxes[consumer] = inbox
        table.subscriptions[consumer] = [
            table.by_node[producer].subscribe(inbox, slot)
            for slot, (producer, _) in enumerate(found)
        ]
        table.inputs[consumer] = tuple((key, producer) for producer, key in found)
        own = table.by_node.get(consumer)
        if own is not None:
            own.producer_inbox = inbox
    for index in table.by_node:
        if index not in table.inboxes and index in table.driven:
            # A map over plain lists whose items stream on: woken when its output has room.
            table.inboxes[index] = Inbox(loop)
            table.by_node[index].producer_inbox = table.inboxes[index]
    return table


def _streams(node: Node) -> bool:
    task = node.lazy.task
    return task is not None and task.streams


# -- running a driven node -------------------------------------------------------------------


async def run_streamed(state: RunState, node: Node, results: Sequence[Any]) -> Any:
    """Run a consumer, or a map whose items stream on (its condition already passed)."""
    plan = state.plan
    table = state.streams
    assert table is not None
    inputs = dict(table.inputs.get(node.index, ()))
    # The streamed inputs are not in ``results`` (their producers are still running): a
    # placeholder stands in, replaced item by item.
    placeholders = _Placeholders(results, set(inputs.values()))
    args, kwargs = arguments(node, placeholders, plan.graph.index_of)
    subscriptions = table.subscriptions.get(node.index, [])
    try:
        if node.lazy.task is FOLD:
            return await _fold(state, node, args, kwargs, table, subscriptions)
        return await _map(state, node, args, kwargs, table, inputs, subscriptions)
    finally:
        for subscription in subscriptions:
            subscription.close()


class _Placeholders(Sequence[Any]):
    __slots__ = ("base", "streamed")

    def __init__(self, base: Sequence[Any], streamed: set[int]) -> None:
        self.base = base
        self.streamed = streamed

    def __getitem__(self, index: Any) -> Any:
        if index in self.streamed:
            return STREAMED
        return self.base[index]

    def __len__(self) -> int:
        return len(self.base)


class _Item:
    """What a consumer knows of item ``i`` before it can start: its streamed inputs so far."""

    __slots__ = ("missing", "values")

    def __init__(self, slots: int) -> None:
        self.values: list[Any] = [None] * slots
        self.missing = slots


async def _map(
    state: RunState,
    node: Node,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    table: StreamTable,
    inputs: dict[int | str, int],
    subscriptions: list[Subscription],
) -> Any:
    lazy = node.lazy
    assert isinstance(lazy, MappedLazyResult)
    task = lazy.task
    assert task is not None
    plan = state.plan
    loop = state.loop
    out = table.by_node.get(node.index)
    inbox = table.inboxes[node.index]
    keep = out is None or out.keep
    slot_of = {key: slot for slot, key in enumerate(inputs)}
    fetch = [
        (key, source)
        for key, producer in inputs.items()
        if (source := _references(plan, node, producer)) is not None
    ]
    stream_count = len(inputs)
    # The columns known now: lists, decided as ``.map`` decides them today.
    columns: dict[int | str, list[Any]] = {}
    keys: list[int | str] = [*lazy.iterated_args, *lazy.iterated_kwargs]
    for key in keys:
        if key in slot_of:
            continue
        label = f"argument {key}" if isinstance(key, int) else f"argument '{key}'"
        value = args[key] if isinstance(key, int) else kwargs[key]
        if passed_whole(value):
            continue  # passed whole to every item, as a plain map does
        columns[key] = _as_list(value, node.name, label)
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"argument {k!r} has {len(c)}" for k, c in columns.items())
        raise ValueError(f"{node.name}.map(): iterated arguments differ in length: {detail}")
    known = next(iter(lengths)) if lengths else None
    if known is None and not slot_of:
        raise TypeError(
            f"{node.name}.map(): nothing to fan out over: its iterated arguments produced "
            "text, bytes or a mapping, which is passed whole to every item; map over a list"
        )
    ends: list[int | None] = [None] * stream_count
    aborted: str | None = None
    waiting: dict[int, _Item] = {}
    ready: list[tuple[int, list[Any]]] = []  # a heap: complete items not started yet
    head = [0]  # the lowest item index not started (or skipped) yet
    ahead: set[int] = set()  # started items above the head
    dead: set[int] = set()
    running: dict[int, asyncio.Future[Any]] = {}
    finished: deque[tuple[int, asyncio.Future[Any]]] = deque()  # in the order they ended
    plain = PlainItems.of(state, node) if not fetch else None
    values: dict[int, Any] = {}
    failures: dict[str, Exception] = {}
    settled = 0

    def release(index: int) -> None:
        for subscription in subscriptions:
            subscription.release(index)

    def start(index: int, streamed: list[Any]) -> None:
        passed(index)
        item_args = list(args)
        item_kwargs = dict(kwargs)
        for key, column in columns.items():
            if isinstance(key, int):
                item_args[key] = column[index]
            else:
                item_kwargs[key] = column[index]
        for key, slot in slot_of.items():
            if isinstance(key, int):
                item_args[key] = streamed[slot]
            else:
                item_kwargs[key] = streamed[slot]
        item: asyncio.Future[Any]
        if plain is not None:
            item = plain.start(index, tuple(item_args), item_kwargs)
            release(index)
        else:
            item = loop.create_task(
                _item(state, node, index, tuple(item_args), item_kwargs, release, fetch)
            )
        running[index] = item
        item.add_done_callback(functools.partial(ended, index))

    def ended(index: int, done: asyncio.Future[Any]) -> None:
        finished.append((index, done))
        inbox.wake()

    def passed(index: int) -> None:
        """Item ``index`` started or was skipped: move the head past what has."""
        ahead.add(index)
        while head[0] in ahead:
            ahead.discard(head[0])
            head[0] += 1

    def skip(index: int, culprit: str) -> None:
        nonlocal settled
        passed(index)
        dead.add(index)
        waiting.pop(index, None)
        release(index)
        item_id = f"{lazy.id}[{index}]"
        state.report.skipped(node, item_id, "UpstreamFailed", culprit)
        failed_items.add(index)
        settled += 1
        if out is not None:
            out.push(index, item_id, ITEM_FAILED)

    failed_items: set[int] = set()

    def total() -> int | None:
        if any(end is None for end in ends):
            return None
        counts = {end for end in ends if end is not None}
        if known is not None:
            counts.add(known)
        if len(counts) > 1 and aborted is None:
            detail = ", ".join(
                f"argument {key!r} has {ends[slot]}" for key, slot in slot_of.items()
            )
            if known is not None:
                detail += f", the lists have {known}"
            raise ValueError(f"{node.name}.map(): iterated arguments differ in length: {detail}")
        return min(counts) if counts else 0

    try:
        if stream_count == 0:
            assert known is not None
            for index in range(known):
                start(index, [])
        while True:
            while finished:
                index, done = finished.popleft()
                running.pop(index, None)
                release(index)
                settled += 1
                if plain is not None:
                    plain.settle(index, done)
                if done.cancelled():
                    if state.halted:
                        continue  # the run is stopping: the failure that stops it follows
                    raise asyncio.CancelledError
                exc = done.exception()
                if exc is None:
                    value = done.result()
                    if keep:
                        values[index] = value
                    if out is not None:
                        out.push(index, value)
                    continue
                if not plan.keep_going or not isinstance(exc, Exception):
                    raise exc
                if isinstance(exc, MapItemsFailed):
                    failures.update(exc.failures)
                else:
                    failures[f"{lazy.id}[{index}]"] = exc
                failed_items.add(index)
                if out is not None:
                    out.push(index, f"{lazy.id}[{index}]", ITEM_FAILED)
            count = total()
            if count is not None and settled >= count and not running:
                break
            while inbox.entries:
                slot, kind, index, value = inbox.entries.popleft()
                if kind == ITEM:
                    if index in dead:
                        subscriptions[slot].release(index)
                        continue
                    if known is not None and index >= known:
                        raise ValueError(
                            f"{node.name}.map(): iterated arguments differ in length: the "
                            f"stream of argument {list(inputs)[slot]!r} has more items than "
                            f"the lists, which have {known}"
                        )
                    item = waiting.get(index)
                    if item is None:
                        item = waiting[index] = _Item(stream_count)
                    item.values[slot] = value
                    item.missing -= 1
                    if item.missing == 0:
                        del waiting[index]
                        heapq.heappush(ready, (index, item.values))
                elif kind == ITEM_FAILED:
                    if index not in dead:
                        skip(index, value)
                elif kind == SKIPPED_INPUT:
                    state.report.skipped(node, lazy.id, "UpstreamSkipped")
                    if out is not None:
                        out.end(SKIPPED_INPUT)
                    return SKIPPED
                else:  # END or ABORTED: no more items from this input
                    ends[slot] = index
                    if kind == ABORTED:
                        if not plan.keep_going:
                            await _stopped(state)
                        aborted = value
                        if not running and not settled and not index:
                            # Nothing came: the stage did not run, like any task whose input
                            # failed (``on_failure="continue"``).
                            state.report.skipped(node, lazy.id, "UpstreamFailed", value)
                            if out is not None:
                                out.end(ABORTED, lazy.id)
                            raise MapItemsFailed({})
            # Start what is ready, lowest index first, while fewer than ``buffer`` items are
            # in flight or waiting in this stage's output; the lowest item not started yet
            # starts regardless, since an in-order consumer (a fold) may be waiting for it.
            backlog = len(running) + (out.held if out is not None else 0)
            while ready and (out is None or backlog < task.buffer or ready[0][0] <= head[0]):
                index, streamed = heapq.heappop(ready)
                start(index, streamed)
                backlog += 1
            if out is not None:
                out.paused = bool(ready)  # woken when its output has room again
            count = total()
            if count is not None:
                for index in [i for i in waiting if i >= count]:
                    waiting.pop(index)
                if settled >= count and not running:
                    break
            await inbox.sleep()
    except BaseException:
        if out is not None:
            out.end(ABORTED, lazy.id)
        await _cancel_all(state, node, running)
        raise
    count = total() or 0
    if failures or failed_items or aborted is not None:
        if out is not None:
            out.end(ABORTED, lazy.id)
        raise MapItemsFailed(failures)
    if out is not None:
        out.end()
    if not keep:
        return STREAMED
    return [values[index] for index in range(count)]


async def _item(
    state: RunState,
    node: Node,
    index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    release: Any,
    fetch: list[tuple[int | str, Executor]],
) -> Any:
    """One item of a driven map: the policy chain of any map item, releasing its streamed
    inputs when its attempt starts (``ITEM_STARTED``) or, at the latest, when it settles.
    Streamed inputs that are references on another executor are fetched first, as
    ``fetch_inputs`` fetches a plain map's."""
    ITEM_STARTED.set(lambda: release(index))
    if fetch:
        arg_list, kwargs = list(args), dict(kwargs)
        for key, producer in fetch:
            if isinstance(key, int):
                arg_list[key] = (await producer.materialize([arg_list[key]]))[0]
            else:
                kwargs[key] = (await producer.materialize([kwargs[key]]))[0]
        args = tuple(arg_list)
    return await _limited(state, node, f"{node.lazy.id}[{index}]", args, kwargs)


def _references(plan: RunPlan, node: Node, producer: int) -> Executor | None:
    """The executor to fetch a streamed input's items from, when they are references that
    ``node``'s own executor cannot take as they are (``returns_references``)."""
    if not plan.has_references:
        return None
    upstream = plan.graph.nodes[producer].lazy.task
    assert upstream is not None and node.lazy.task is not None
    source = plan.executor_for(upstream)[1]
    if not source.returns_references:
        return None
    if node.lazy.task is not FOLD and source is plan.executor_for(node.lazy.task)[1]:
        return None
    return source


async def _stopped(state: RunState) -> None:
    """An input's producer failed in a stop-mode run: its failure stops the run, which
    cancels this stage; it waits for that, so the run fails with the producer's error, not
    with a consequence of it."""
    await state.loop.create_future()


async def _cancel_all(state: RunState, node: Node, running: dict[int, asyncio.Future[Any]]) -> None:
    """Cancel the items still running that can be stopped, and wait until all have (a second
    cancellation meanwhile is raised once they have): a thread runs to its end."""
    task = node.lazy.task
    assert task is not None
    executor = state.plan.executor_for(task)[1]
    for item in running.values():
        if stoppable(item, executor):
            item.cancel()
    cancelled = await finish(list(running.values()), cancel=False)
    for item in running.values():
        if not item.cancelled():
            item.exception()
    if cancelled:
        raise asyncio.CancelledError


async def _fold(
    state: RunState,
    node: Node,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    table: StreamTable,
    subscriptions: list[Subscription],
) -> Any:
    """A fold over a stream: ``fn`` applied in item order as items come in, each let go once
    folded; one attempt, reported like any task's."""
    inbox = table.inboxes[node.index]
    (subscription,) = subscriptions
    bound = dict(zip(("fn", "items", "initial"), args, strict=False))
    bound.update(kwargs)
    fn, value = bound["fn"], bound["initial"]
    ((_, producer),) = table.inputs[node.index]
    plan = state.plan
    source = _references(plan, node, producer)
    call = TaskCall(node.lazy.id, FOLD.name, fn, (), {}, False, plan.run_id)
    call.parent_task_id = state.parent_of.get(node.index)
    early: dict[int, Any] = {}
    folded = 0
    end: int | None = None
    first: float | None = None  # when the first item came: the attempt's start
    try:
        while True:
            while inbox.entries:
                _, kind, index, item = inbox.entries.popleft()
                if kind == ITEM:
                    early[index] = item
                elif kind in (ITEM_FAILED, ABORTED):
                    if not plan.keep_going:
                        await _stopped(state)
                    # An item it needs did not complete (``on_failure="continue"``).
                    state.report.skipped(node, node.lazy.id, "UpstreamFailed", item)
                    raise MapItemsFailed({})
                elif kind == SKIPPED_INPUT:
                    state.report.skipped(node, node.lazy.id, "UpstreamSkipped")
                    return SKIPPED
                else:
                    end = index
            if first is None and early:
                first = time.time()
            while folded in early:
                item = early.pop(folded)
                if source is not None:
                    item = (await source.materialize([item]))[0]
                value = fn(value, item)
                subscription.release(folded)
                folded += 1
            if end is not None and folded >= end:
                break
            await inbox.sleep()
    except MapItemsFailed:
        raise
    except Exception as exc:
        _report(state, call, first, None, exc)
        raise
    _report(state, call, first, value, None)
    return value


def _report(
    state: RunState, call: TaskCall, first: float | None, value: Any, exc: BaseException | None
) -> None:
    """A fold's one attempt, announced once it is over (an input that fails before then
    leaves it not run, with no attempt): it started when its first item came."""
    state.report.announce(call, ON_LOOP)
    if first is not None:
        call.start_time = first
    call.end_time = time.time()
    state.report.call_ended(call, ON_LOOP, value, exc)
