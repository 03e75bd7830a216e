"""The call pipeline: one task call from ready to settled, each step written once.

    arguments → gates → checkpoint/cache lookup → run-scoped injection → submit → settle

A node without policies runs down this pipeline as it is (``start`` and ``settle``, driven by
the scheduler's ready queue and its completion callback). A node with policies
(``cascade.runtime.policies``) wraps the same steps in a coroutine: a condition before them,
a fan-out over map items, limits, retries and a fallback around them, task-scoped resources
and a timeout around the submit (``cascade.runtime.attempt``). Neither re-implements a step.

Who listens never chooses a step. A call is built as a ``TaskCall`` when call hooks must see
it or its executor has no plain submit; otherwise it is submitted plain (its executor's
``submit_plain``: no per-call object). Either way the same steps run in the same order and
the same events can be built (``cascade.runtime.report``), so a run gives the same results and
per-task events whoever listens (``tests/core/properties/test_observers_property.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import sys
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from cascade.executors import Executor, TaskCall
from cascade.graph.build import KIND_TASK, Node
from cascade.graph.extend import PLAIN_TYPES, returns_graph
from cascade.records.mark import ATTEMPT
from cascade.runtime import growth
from cascade.runtime.channel import item_started
from cascade.runtime.clock import timed_async, timed_sync
from cascade.runtime.inputs import arguments
from cascade.runtime.limits import Waiter, Weighted
from cascade.runtime.markers import add_note
from cascade.runtime.outcome import MapItemsFailed
from cascade.runtime.scope import finish, retrieve
from cascade.runtime.state import RunState
from cascade.spec.cache_policy import CacheContext, CachePolicy
from cascade.spec.task import Task

_CoroutineType = types.CoroutineType
_TASKS_TAKE_CONTEXT = sys.version_info >= (3, 11)
_EAGER_TASKS = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True)

#: Where ``settle`` hands a call's outcome (the scheduler's completion path): the node, and
#: either its value or the exception it raised (``CancelledError`` when it was cancelled).
Finish = Callable[[Node, Any, "BaseException | None"], None]


# -- gates ------------------------------------------------------------------------------------


def pass_gates(
    state: RunState,
    node: Node,
    task_id: str,
    gates: tuple[Weighted, ...],
    first: int,
    on_pass: Callable[[int, int], None],
    place: int | None = None,
) -> tuple[int, Waiter | None]:
    """Enter ``gates`` from ``first`` on. Returns how many were entered: all of them, or up
    to the first that is full, where the call now waits (and its place in that gate's
    queue); once it passes that one, ``on_pass(node.index, next_gate)`` is called (cheap:
    it queues the call, it does not run it)."""
    for k in range(first, len(gates)):
        weighted = gates[k]
        if not weighted.gate.try_enter(weighted.weight):
            state.report.waiting(node, task_id, weighted.gate)
            waiter = weighted.gate.wait(
                functools.partial(on_pass, node.index, k + 1),
                weighted.weight,
                node.lazy.priority,
                state,
                place,
            )
            return k, waiter
    return len(gates), None


async def enter_gates(
    state: RunState,
    node: Node,
    task_id: str,
    gates: tuple[Weighted, ...],
    place: int | None = None,
) -> None:
    """``pass_gates`` for a coroutine (the policy route): returns once every gate is
    entered. Cancelled meanwhile, it leaves what it entered, and a gate that was just being
    handed to it passes on to the next waiter."""
    entered = 0
    while entered < len(gates):
        passed: asyncio.Future[int] = state.loop.create_future()

        def on_pass(_: int, next_gate: int, passed: asyncio.Future[int] = passed) -> None:
            if passed.done():  # cancelled as it was handed over: pass it straight on
                weighted = gates[next_gate - 1]
                weighted.gate.leave(weighted.weight)
            else:
                passed.set_result(next_gate)

        entered, waiter = pass_gates(state, node, task_id, gates, entered, on_pass, place)
        if waiter is None:
            return
        try:
            entered = await passed
        except asyncio.CancelledError:
            if passed.done() and not passed.cancelled():
                entered = passed.result()  # handed over, then cancelled before it woke
            else:
                gates[entered].gate.drop(waiter)
            for weighted in gates[:entered]:
                weighted.gate.leave(weighted.weight)
            raise


def leave_gates(state: RunState, node: Node) -> None:
    """A direct-route call ended (or will not start): give its gates back."""
    plan = state.plan
    if plan.gated:
        for weighted in plan.direct_gates(node):
            weighted.gate.leave(weighted.weight)


# -- checkpoint and cache ---------------------------------------------------------------------


def cache_of(
    state: RunState, node: Node, task: Task[..., Any], has_inputs: bool
) -> CachePolicy | None:
    """The cache policy a call is looked up and saved under: the node's own, else the run's
    checkpoint policy, which skips calls without inputs of tasks it has settled (see
    ``CachePolicy``: their key cannot change within a run)."""
    if task.is_generator:  # streams hook: a generator's stream is never kept (docs/streams.md)
        return None
    cache = node.lazy.cache
    if cache is not None:
        return cache
    plan = state.plan
    checkpoint = plan.checkpoint
    if checkpoint is None or (not has_inputs and id(task) in plan.checkpoint_settled):
        return None
    return checkpoint


def lookup(
    state: RunState,
    policy: CachePolicy,
    node: Node,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[bool, Any, CacheContext]:
    """Look a call up under ``policy``, keyed on its own arguments (before resources are
    injected). A hit is reported as skipped: a cache hit, or a checkpoint restored from the
    run this one resumes; a miss the policy explained, as a ``TaskCacheMissed``."""
    context = CacheContext(task, task_id, args, kwargs, run_id=state.plan.run_id)
    try:
        hit, value = policy.lookup(context)
    except Exception as exc:
        what = "cache" if node.lazy.cache else "checkpoint"
        add_note(exc, f"while looking up the {what} of task '{node.name}'")
        raise
    if hit:
        state.report.skipped(node, task_id, "CacheHit" if node.lazy.cache else "Checkpoint")
    elif context.miss is not None:  # the policy said why it missed
        state.report.cache_missed(node, task_id, context.miss)
    return hit, value, context


def save(policy: CachePolicy, context: CacheContext, value: Any, node: Node) -> Any:
    """Save a call's result under ``policy`` and return it.

    A task that returned a graph is saved as what it returned, the graph, not the value the
    graph resolves to: each task in the graph runs under its own cache or checkpoint, keyed by
    its own code and inputs. So a task in it that fell back or was skipped, whose code changed,
    or that reads a param given another value, runs again instead of hiding behind the
    parent's entry, and a cache never changes what runs (a tail call stays a tail call)."""
    try:
        policy.save(context, value)
    except Exception as exc:
        what = "caching" if node.lazy.cache else "checkpointing"
        add_note(exc, f"while {what} the result of task '{node.name}'")
        raise
    return value


# -- injection and submission -----------------------------------------------------------------


def inject(state: RunState, task: Task[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` (copied) with the run-scoped resource instances ``task`` injects, where
    the call does not pass the parameter itself (task-scoped ones, set up by the attempt,
    are in ``kwargs`` already)."""
    kwargs = dict(kwargs)
    instances = state.resources.instances
    for param, name in task.injections:
        if param not in kwargs:
            kwargs[param] = instances[name]
    return kwargs


def new_call(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: int = 1,
    timeout: float | None = None,
) -> TaskCall:
    """The ``TaskCall`` of one attempt."""
    executor = state.plan.executor_for(task)[1]
    call = TaskCall(
        task_id, task.name, task.fn, args, dict(kwargs), task.is_async, state.plan.run_id,
        attempt, timeout,
    )  # fmt: skip
    call.leaves_process = executor.requires_pickle
    if state.parent_of:
        call.parent_task_id = state.parent_of.get(node.index)
    return call


def submit_call(
    state: RunState, call: TaskCall, executor_name: str, executor: Executor
) -> Awaitable[Any]:
    """Announce an attempt (call hooks, its start event) and hand it to its executor."""
    # Streams hook: an item of a stage mapped over a stream lets its input go as it starts
    # (cascade.runtime.channel: the buffer counts only items no call has taken yet).
    item_started()
    state.report.announce(call, executor_name)
    return state.handles[id(executor)].submit(call)


def mark_attempt(state: RunState, task_id: str, attempt: int) -> contextvars.Token[Any] | None:
    """When the run captures what tasks log (cascade.records.capture), mark the context the
    attempt starts in as the attempt's (reset the token once it is submitted, or, for a
    coroutine awaited in place, once it ended)."""
    if not state.plan.tag_attempts:
        return None
    return ATTEMPT.set((state.plan.run_id, task_id, attempt))


def as_future(
    state: RunState,
    awaitable: Awaitable[Any],
    context: contextvars.Context | None,
    eager: bool = False,
) -> asyncio.Future[Any]:
    """What an executor's ``submit`` returned, as a future the engine can wait on; a
    coroutine becomes a task running in the attempt's context when there is one. ``eager``
    (the direct route, Python 3.12+) starts it as ``submit_plain`` does, so a call takes its
    first step at the same moment whether or not it was built as a ``TaskCall``."""
    if isinstance(awaitable, asyncio.Future):
        return awaitable
    loop = state.loop
    if eager and _EAGER_TASKS and type(awaitable) is _CoroutineType:
        return asyncio.Task(  # type: ignore[call-arg,unused-ignore]
            awaitable, loop=loop, context=context, eager_start=True
        )
    if type(awaitable) is _CoroutineType:
        if context is None:
            return loop.create_task(awaitable)  # type: ignore[arg-type]
        if _TASKS_TAKE_CONTEXT:  # 3.11+: run in it as it is, no copy
            return loop.create_task(awaitable, context=context)  # type: ignore[arg-type,call-arg,unused-ignore]
        return context.run(loop.create_task, awaitable)  # type: ignore[arg-type]
    if context is not None:
        return context.run(asyncio.ensure_future, awaitable)
    return asyncio.ensure_future(awaitable)


def stoppable(future: asyncio.Future[Any], executor: Executor) -> bool:
    """Whether cancelling the future stops the work (a coroutine, or an executor that says
    so); other work (a thread) runs to its end and the run waits for it."""
    return isinstance(future, asyncio.Task) or executor.stops_on_cancel


# -- the direct route: a node without policies ------------------------------------------------


def start(state: RunState, node: Node, on_done: Callable[[asyncio.Future[Any]], None]) -> None:
    """Run a node without policies down the pipeline, its gates passed: arguments,
    checkpoint lookup, injection, submit. The call is in flight in the run's scope when this
    returns (``on_done`` hears when it ends), or was finished already: restored from a
    checkpoint, failed before it started, or completed as it started (Python 3.12+)."""
    plan = state.plan
    task: Task[..., Any] = node.lazy.task  # type: ignore[assignment]
    if state.gate_holds:
        state.gate_holds.pop(node.index, None)
    context: CacheContext | None = None
    try:
        args, kwargs = arguments(node, state.results, plan.graph.index_of)
    except Exception as exc:
        add_note(exc, f"while building the arguments of task '{node.name}'")
        leave_gates(state, node)
        state.fail(exc, node)
        return
    if plan.checkpoint is not None:
        policy = cache_of(state, node, task, bool(args or kwargs))
        if policy is not None:
            try:
                hit, cached, context = lookup(state, policy, node, task, node.lazy.id, args, kwargs)
            except Exception as exc:
                leave_gates(state, node)
                state.fail(exc, node)
                return
            if hit:
                leave_gates(state, node)
                if is_graph(cached):
                    growth.expand(state, node, cached)  # each task in it restores itself
                else:
                    state.complete(node.index, cached)
                return
    if task.injections:
        kwargs = inject(state, task, kwargs)
    submit_plain = state.plain_submit.get(id(task))
    in_place = False
    try:
        if submit_plain is not None:
            # Before Python 3.12 (no eager start) an async call on the run's own loop
            # settles itself (``settles_itself``); from 3.12 it takes its first step as it
            # starts, and one that ends there, as the benchmarks' calls do, is completed by
            # ``start`` at once: a wrapper would only add a coroutine to each (about 10 %
            # more instructions per task on the fan-out and chain rows, Python 3.13).
            in_place = not _EAGER_TASKS and task.is_async and id(task) in state.on_loop
            fn: Callable[..., Any] = task.fn
            if in_place:
                args = (node.index, fn, *args)
                fn = state.settling
            if state.plain_quiet:
                # Nothing to note about the call: hand it straight over (the fan-out and
                # chain rows of benchmarks/run.py).
                future = submit_plain(fn, args, kwargs, task.is_async)
            else:
                future = _submit_noted(state, node, task, submit_plain, fn, args, kwargs, in_place)
        else:
            executor_name, executor = plan.executor_for(task)
            call = new_call(state, node, task, node.lazy.id, args, kwargs)
            mark = mark_attempt(state, call.task_id, 1)
            try:
                awaitable = submit_call(state, call, executor_name, executor)
                future = as_future(state, awaitable, call.context, eager=True)
            except BaseException as exc:
                state.report.call_ended(call, executor_name, None, exc)
                raise
            finally:
                if mark is not None:
                    ATTEMPT.reset(mark)
            state.reported[future] = (call, executor_name)
    except Exception as exc:
        leave_gates(state, node)
        state.fail(exc, node)
        return
    if context is not None:
        state.checkpointing[future] = context
    state.scope.calls[future] = node
    if future.done():
        # Finished as it started (see ``LocalExecutor.submit_plain``): completed now, and
        # its dependents join the queue the pump is draining.
        on_done(future)
    elif not in_place:
        future.add_done_callback(on_done, context=state.context)


def _submit_noted(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    submit_plain: Callable[..., asyncio.Future[Any]],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    in_place: bool,
) -> asyncio.Future[Any]:
    """Submit a call without a ``TaskCall`` (the executor's fast path: no per-call object)
    when something is to be noted about it: its start is reported from the node first, and,
    when a success's times are wanted, the call notes when its own code ran."""
    fn, args, mark = _note_start(state, node, task, fn, args, in_place)
    if state.plan.tag_attempts and task.is_async:
        # While it is submitted, the call's eager first step (Python 3.12+) is the node's:
        # a capturing run's log records are its (cascade.records.capture).
        state.submitting = node
    try:
        return submit_plain(fn, args, kwargs, task.is_async)  # type: ignore[no-any-return]
    finally:
        state.submitting = None
        if mark is not None:
            ATTEMPT.reset(mark)


def _note_start(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    in_place: bool,
) -> tuple[Callable[..., Any], tuple[Any, ...], contextvars.Token[Any] | None]:
    """Report a plain call's start, wrap it to note its times when they are wanted (a call
    that settles itself notes its own), and mark the context a sync call's logs are
    captured in: the function and arguments to submit, and the mark to reset after."""
    plan = state.plan
    report = state.report
    started_at = report.started_at
    if started_at is not None:  # before the call: it may finish as it starts
        index = node.index
        if plan.want_started:
            report.started(
                node.lazy.id,
                task.name,
                state.parent_of.get(index) if state.parent_of else None,
                1,
                plan.executor_for(task)[0],
            )
        started_at[index] = time.time()
        ended_at = report.ended_at
        if ended_at is not None and not in_place and not plan.executor_for(task)[1].requires_pickle:
            ended_at[index] = 0.0
            args = (fn, index, started_at, ended_at, *args)
            fn = timed_async if task.is_async else timed_sync
    # Logs a recorded run captures are the task's when this mark is in the context the call
    # runs in (cascade.records.capture); the executor copies it at submit. An async call
    # needs none: its asyncio task is found among the run's calls in flight.
    mark = None
    if plan.tag_attempts and not task.is_async:
        mark = mark_attempt(state, node.lazy.id, 1)
    return fn, args, mark


def settle(state: RunState, finish: Finish, future: asyncio.Future[Any]) -> None:
    """A direct-route call ended: report it, give its gates back, save its checkpoint, and
    hand its outcome to ``finish``. (The scheduler makes ``partial(settle, state, finish)``
    once per run: the done callback of every direct-route call that does not settle itself,
    see ``settles_itself``.)"""
    node = state.scope.calls.pop(future, None)
    if node is None:  # the run ended without it (defensive: its scope waited for it)
        retrieve(future)
        return
    try:
        value = future.result()
    except asyncio.CancelledError as exc:
        _settled(state, finish, future, node, None, exc, True)
        return
    except BaseException as exc:
        _settled(state, finish, future, node, None, exc)
        return
    _settled(state, finish, future, node, value, None)


def _settled(
    state: RunState,
    finish: Finish,
    future: asyncio.Future[Any],
    node: Node,
    value: Any,
    exc: BaseException | None,
    cancelled: bool = False,
) -> None:
    """``settle``'s steps once the outcome is known, however it was heard."""
    plan = state.plan
    if plan.gated:
        if exc is not None and not cancelled and not plan.keep_going:
            state.halted = True  # before its slots wake a waiter: it must not start
        leave_gates(state, node)
    reported = state.reported.pop(future, None) if state.reported else None
    context = state.checkpointing.pop(future, None) if state.checkpointing else None
    if exc is not None:
        _report(state, node, reported, None, None if cancelled else exc, cancelled)
        finish(node, None, exc)
        return
    if reported is not None or state.report.started_at is not None:
        _report(state, node, reported, value, None)
    if context is not None and not state.stopping:
        try:
            value = save(plan.checkpoint, context, value, node)  # type: ignore[arg-type]
        except Exception as exc:
            finish(node, None, exc)
            return
    finish(node, value, None)


async def settles_itself(
    state: RunState,
    finish: Finish,
    index: int,
    fn: Callable[..., Awaitable[Any]],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """An ``async def`` call that runs as a task on the run's own loop, settled in its own
    last step rather than by a done callback one event-loop pass later: on a chain of small
    steps that pass is as much as the step itself (``benchmarks/run.py``, the chain row,
    Python 3.10 and 3.11). It settles in the run's context, as the done callback would, so
    nothing the call set in its own context leaks into what completes or starts next. It
    never starts eagerly (``start`` wraps no call on Python 3.12+): ``start`` is never on
    the stack when it settles."""
    ended_at = state.report.ended_at
    if ended_at is not None:
        state.report.started_at[index] = time.time()  # type: ignore[index]
    exc: BaseException | None = None
    try:
        value = await fn(*args, **kwargs)
    except BaseException as raised:
        exc, value = raised, None
    if ended_at is not None:
        ended_at[index] = time.time()
    future: asyncio.Future[Any] = asyncio.current_task(state.loop)  # type: ignore[assignment]
    node = state.scope.calls.pop(future, None)
    if node is None:  # the run ended without it (defensive: its scope waited for it)
        if exc is not None:
            raise exc
        return None
    cancelled = isinstance(exc, asyncio.CancelledError)
    state.context.run(_settled, state, finish, future, node, value, exc, cancelled)
    if cancelled or (exc is not None and not isinstance(exc, Exception)):
        raise exc  # type: ignore[misc]  # cancelled; KeyboardInterrupt, SystemExit go on up
    return None


def _report(
    state: RunState,
    node: Node,
    reported: tuple[TaskCall, str] | None,
    value: Any,
    exc: BaseException | None,
    cancelled: bool = False,
) -> None:
    if reported is not None:
        state.report.call_ended(reported[0], reported[1], value, exc, cancelled=cancelled)
    else:
        state.report.node_ended(node, value, exc, cancelled)


class PlainItems:
    """The plain route for the items of a map (``cascade.runtime.policies``) or of a mapped
    stream stage (``cascade.runtime.streams``) whose task has no policy and no gate: each item
    is submitted as ``start`` submits a call (the executor's ``submit_plain``: no
    ``TaskCall``, no policy chain of its own), its start and end published from what is kept
    here. Which observers listen changes only what is published, never this route: it is
    chosen from the task's policies and the call hooks (which see each attempt, so they get
    the policy route's ``TaskCall``), as the direct route is."""

    __slots__ = (
        "context",
        "executor_name",
        "id",
        "in_place",
        "parent",
        "plan",
        "started",
        "state",
        "submit",
        "task",
    )

    def __init__(self, state: RunState, node: Node, submit: Any, executor_name: str) -> None:
        self.state = state
        self.plan = state.plan
        self.task: Task[..., Any] = node.lazy.task  # type: ignore[assignment]
        self.id = node.lazy.id
        self.parent = state.parent_of.get(node.index)
        self.submit = submit
        self.executor_name = executor_name
        self.started: dict[int, float] = {}
        #: Whether an item runs as a task on the run's loop and so can settle itself.
        self.in_place = self.task.is_async and id(self.task) in state.on_loop
        #: The context an item's end is heard in (see ``settles_itself``).
        self.context = contextvars.copy_context()

    @classmethod
    def of(cls, state: RunState, node: Node) -> PlainItems | None:
        plan = state.plan
        task = node.lazy.task
        assert task is not None
        submit = state.plain_submit.get(id(task))
        alone = dataclasses.replace(node, kind=KIND_TASK)  # the call as if it were not mapped
        if (
            submit is None
            or plan.checkpoint is not None
            or plan.needs_policies(alone)
            or plan.limiter is not None
            or plan.attempt_gates(node)
        ):
            return None
        return cls(state, node, submit, plan.executor_for(task)[0])

    def start(
        self,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn: Callable[..., Any] | None = None,
    ) -> Any:
        """Submit item ``index``: the task's function, or ``fn`` wrapping it (its first
        positional arguments then say which item and function it wraps)."""
        state, plan, task = self.state, self.plan, self.task
        task_id = f"{self.id}[{index}]"
        if plan.want_started:
            state.report.started(task_id, task.name, self.parent, 1, self.executor_name)
        self.started[index] = time.time()
        if task.injections:
            kwargs = inject(state, task, kwargs)
        mark = mark_attempt(state, task_id, 1)
        try:
            if fn is None:
                return self.submit(task.fn, args, kwargs, task.is_async)
            return self.submit(fn, (index, task.fn, *args), kwargs, task.is_async)
        except Exception as exc:
            failed: asyncio.Future[Any] = state.loop.create_future()
            failed.set_exception(exc)
            return failed
        finally:
            if mark is not None:
                ATTEMPT.reset(mark)

    def settle(self, index: int, done: asyncio.Future[Any]) -> None:
        """Item ``index`` ended: publish how, from its future."""
        cancelled = done.cancelled()
        exc = None if cancelled else done.exception()
        value = None if exc is not None or cancelled else done.result()
        self.ended(index, value, exc, cancelled)

    def ended(self, index: int, value: Any, exc: BaseException | None, cancelled: bool) -> None:
        """Item ``index`` ended: publish how (once: an item not heard of yet is the only one
        reported)."""
        state, plan = self.state, self.plan
        started = self.started.pop(index, None)
        if exc is not None and not plan.keep_going:
            state.halted = True  # before anything else starts: the run stops
        if plan.report_plain:
            state.report.ended(
                f"{self.id}[{index}]",
                self.task.name,
                self.parent,
                1,
                started,
                None,
                self.executor_name,
                value,
                exc,
                cancelled=cancelled,
            )

    async def run_all(
        self, count: int, inputs: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Any]:
        """The values of items ``0 … count-1`` of a map whose items can settle themselves
        (``in_place``), ``inputs(k)`` giving item ``k``'s arguments.

        Each item is one asyncio task of the task's coroutine and nothing else: no policy
        chain, no done callback, no ``asyncio.wait`` over them all; it settles in its last
        step (``benchmarks/run.py``, the map row). The failure raised is the item that failed
        first; in a stop-mode run the other items are cancelled then, in a keep-going run
        they finish and every failure is raised together (``MapItemsFailed``)."""
        state = self.state
        if not count:
            return []
        outcome = _MapOutcome(self, count, state.loop.create_future())
        wrapper = functools.partial(_item_settles_itself, outcome)
        items: list[asyncio.Future[Any]] = []
        try:
            for k in range(count):
                if outcome.stop:  # an item failed as it started (Python 3.12+): no more
                    break
                if state.halted:  # the run decided to stop: what has not started never will
                    raise asyncio.CancelledError
                args, kwargs = inputs(k)
                item = self.start(k, args, kwargs, wrapper)
                items.append(item)
                if item.done() and k in self.started:  # the submit itself failed: no step
                    outcome.ended(k, None, item.exception(), False)
            if not outcome.done.done():
                await outcome.done
        except asyncio.CancelledError:
            await self._stop(items, outcome)
            raise
        if outcome.stop and await self._stop(items, outcome):
            raise asyncio.CancelledError
        if outcome.first is not None:
            if self.plan.keep_going and isinstance(outcome.first, Exception):
                raise MapItemsFailed(outcome.failures)  # type: ignore[arg-type]
            raise outcome.first
        return outcome.values

    async def _stop(self, items: list[asyncio.Future[Any]], outcome: _MapOutcome) -> bool:
        """Cancel the items still running and wait for them; an item cancelled before its
        first step (it never heard of its own end) is published as cancelled here. Returns
        whether this was cancelled meanwhile."""
        cancelled = await finish([item for item in items if not item.done()], cancel=True)
        for index in list(self.started):
            self.ended(index, None, None, True)
        for item in items:
            retrieve(item)
        return cancelled


class _MapOutcome:
    """What a map's items settled to so far (``PlainItems.run_all``)."""

    __slots__ = ("done", "failures", "first", "items", "left", "stop", "values")

    def __init__(self, items: PlainItems, count: int, done: asyncio.Future[None]) -> None:
        self.items = items
        self.values: list[Any] = [None] * count
        self.left = count
        self.done = done
        self.first: BaseException | None = None
        self.failures: dict[str, BaseException] = {}
        #: Set at a stop-mode run's first failure: the other items are cancelled.
        self.stop = False

    def ended(self, index: int, value: Any, exc: BaseException | None, cancelled: bool) -> None:
        items = self.items
        items.ended(index, value, exc, cancelled)
        if exc is not None:
            if self.first is None:
                self.first = exc
            self.failures[f"{items.id}[{index}]"] = exc
            if not items.plan.keep_going:
                self.stop = True
        elif not cancelled:
            self.values[index] = value
        self.left -= 1
        if (self.stop or not self.left) and not self.done.done():
            self.done.set_result(None)


async def _item_settles_itself(
    outcome: _MapOutcome,
    index: int,
    fn: Callable[..., Awaitable[Any]],
    /,
    *args: Any,
    **kwargs: Any,
) -> None:
    """One item of ``PlainItems.run_all``: ``settles_itself`` for a map's item."""
    context = outcome.items.context
    try:
        value = await fn(*args, **kwargs)
    except asyncio.CancelledError:
        context.run(outcome.ended, index, None, None, True)
        raise
    except BaseException as exc:
        context.run(outcome.ended, index, None, exc, False)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and SystemExit go on up
        return
    context.run(outcome.ended, index, value, None, False)


def is_graph(value: Any) -> bool:
    """Whether a task's value holds LazyResults (the run grows by them)."""
    return type(value) not in PLAIN_TYPES and returns_graph(value)


__all__ = [
    "Finish",
    "PlainItems",
    "as_future",
    "cache_of",
    "enter_gates",
    "inject",
    "is_graph",
    "leave_gates",
    "lookup",
    "mark_attempt",
    "new_call",
    "pass_gates",
    "save",
    "settle",
    "start",
    "stoppable",
    "submit_call",
]
