"""One attempt of a call on the policy route: task-scoped resources, the timeout, the wait.

The steps of the call itself (injection, the ``TaskCall``, announcing it, submitting it,
reporting how it ended) are the call pipeline's (``cascade.runtime.call``); an attempt wraps
them with what only the policy route has.

Timeouts count running time only: when the executor reports when a queued call really starts
(``reports_start``), the clock starts then. A task-scoped resource is torn down only after the
attempt that uses it has stopped, even when the attempt is a thread that cannot be stopped;
such a thread keeps what it holds (``give_back``) and the run waits for it (``RunScope``).
"""

from __future__ import annotations

import asyncio
import functools
import types
from typing import Any

from cascade.executors import Executor, TaskCall
from cascade.graph.build import Node
from cascade.records.mark import ATTEMPT
from cascade.resources import ResourceStack, plan_resources
from cascade.runtime.call import (
    as_future,
    inject,
    mark_attempt,
    new_call,
    stoppable,
    submit_call,
)
from cascade.runtime.channel import generator_call, loop_executor
from cascade.runtime.limits import Gate
from cascade.runtime.scope import finish, retrieve
from cascade.runtime.state import RunState
from cascade.spec.policies import RetryPolicy, TaskTimeoutError
from cascade.spec.task import Task

_CoroutineType = types.CoroutineType


def will_retry(retry: RetryPolicy | None, attempt: int, exc: BaseException) -> bool:
    """Whether ``retry`` attempts again after attempt number ``attempt`` raised ``exc``."""
    return (
        retry is not None
        and attempt <= retry.retries
        and isinstance(exc, Exception)
        and isinstance(exc, retry.on)
    )


async def run_attempt(
    state: RunState,
    node: Node,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: int,
    timeout: float | None,
    retry: RetryPolicy | None,
    *,
    has_fallback: bool = False,
    abandoned: list[asyncio.Future[Any]] | None = None,
) -> Any:
    """Run one attempt with its task-scoped resources and timeout, reporting it. Work the
    attempt had to abandon after its timeout (a thread) is added to ``abandoned``: what the
    caller holds for the attempt is given back when it really ends (``give_back``)."""
    plan = state.plan
    executor_name, executor = plan.executor_for(task)
    if task.is_generator:  # streams hook: its driver runs on the event loop (docs/streams.md)
        executor_name, executor = loop_executor(state.handles)
    scoped: ResourceStack | None = None
    remote = executor.remote_resources
    submitted: list[asyncio.Future[Any]] = []
    failure: BaseException | None = None
    report = state.report
    try:
        if task.injections and not remote:
            kwargs = dict(kwargs)
            for param, name in task.injections:
                if param not in kwargs and name in plan.task_resources:
                    if scoped is None:
                        scoped = ResourceStack(plan.bus, plan.run_id)
                    kwargs[param] = await _enter_task_resource(state, scoped, name)
            kwargs = inject(state, task, kwargs)
        call = new_call(state, node, task, task_id, args, kwargs, attempt, timeout)
        if task.is_generator:
            # Streams hook: the attempt runs a driver that feeds what the generator yields
            # into the node's stream (cascade.runtime.channel).
            call.fn = generator_call(state.streams, task, task_id, state.loop)
            call.is_async, call.leaves_process = True, False
        if task.injections and remote:
            call.resources = {p: n for p, n in task.injections if p not in kwargs}
            call.resource_providers = plan.remote_providers
        # What the attempt logs is the task's (cascade.records.capture).
        mark = mark_attempt(state, task_id, attempt)
        try:
            value = await _submit_and_wait(state, executor_name, executor, call, submitted)
        except BaseException as exc:
            failure = exc
            retrying = will_retry(retry, attempt, exc)
            report.call_ended(
                call,
                executor_name,
                None,
                exc,
                will_retry=retrying,
                fell_back=has_fallback and not retrying and isinstance(exc, Exception),
            )
            raise
        finally:
            if mark is not None:
                ATTEMPT.reset(mark)
        report.call_ended(call, executor_name, value, None)
        return value
    except BaseException as exc:
        failure = exc
        raise
    finally:
        running = [f for f in submitted if not f.done()]
        if running and isinstance(failure, TaskTimeoutError) and abandoned is not None:
            abandoned.extend(running)
        if scoped is not None:
            await _close_after_attempt(state, scoped, failure, running)


def give_back(
    state: RunState, gate: Gate, weight: int, abandoned: list[asyncio.Future[Any]]
) -> None:
    """Leave ``gate`` for an attempt, or, when the attempt abandoned work that still runs (a
    thread after a timeout), once that work has really stopped: a slot stays held while
    something runs in it. The run waits for such work before it ends, so the slot comes back
    (an engine's pools outlive the run)."""
    running = [f for f in abandoned if not f.done()]
    if not running:
        gate.leave(weight)
        return
    left = len(running)

    def stopped(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if not left:
            gate.leave(weight)

    for future in running:
        future.add_done_callback(stopped)
        state.scope.outlive(future)


async def _close_after_attempt(
    state: RunState,
    scoped: ResourceStack,
    failure: BaseException | None,
    running: list[asyncio.Future[Any]],
) -> None:
    """Tear an attempt's task-scoped resources down once its work has stopped. A
    cancellation that arrives meanwhile is raised once teardown is over."""
    if running and isinstance(failure, TaskTimeoutError):
        # Abandoned after a timeout: the thread goes on, so its resources close when it
        # ends; the run waits for both before it ends (its event loop must still be there).
        def close_later(_: asyncio.Future[Any]) -> None:
            state.scope.outlive(state.loop.create_task(scoped.close(failure)))

        running[0].add_done_callback(close_later)
        state.scope.outlive(running[0])
        return
    cancelled = await finish(running, cancel=False)  # the work stops before teardown
    try:
        await scoped.close(failure)
    finally:
        if cancelled:
            raise asyncio.CancelledError


async def _enter_task_resource(state: RunState, scoped: ResourceStack, name: str) -> Any:
    """Set up a task-scoped resource (and task-scoped resources it injects) for one attempt;
    run-scoped ones it injects come from the run."""
    plan = state.plan
    if name in scoped.instances:
        return scoped.instances[name]
    providers = plan.providers
    for dep in plan_resources(providers, [(name, f"resource '{name}'")]):
        if dep in scoped.instances or dep not in plan.task_resources:
            continue
        available = {**state.resources.instances, **scoped.instances}
        await scoped.enter(providers[dep], available)
    return scoped.instances[name]


async def _submit_and_wait(
    state: RunState,
    executor_name: str,
    executor: Executor,
    call: TaskCall,
    submitted: list[asyncio.Future[Any]],
) -> Any:
    """Submit the attempt and wait for it: up to its timeout, counted from when it really
    started; cancelled, it stops the work where it can and otherwise leaves it to the run's
    scope."""
    started: asyncio.Future[None] | None = None
    if call.timeout is not None and state.handles[id(executor)].reports_start:
        started = state.loop.create_future()
        call.on_start = functools.partial(_mark_started, started)
    awaitable = submit_call(state, call, executor_name, executor)
    if type(awaitable) is _CoroutineType and call.context is None and call.timeout is None:
        # A coroutine with nothing to run it in and no clock: await it in this task rather
        # than in a task of its own (one Task fewer per attempt; map items and retried
        # tasks take this path, see the map row of benchmarks/run.py). Cancelling this task
        # cancels it just the same.
        return await awaitable
    future = as_future(state, awaitable, call.context)
    submitted.append(future)
    can_stop = stoppable(future, executor)
    if call.timeout is None:
        if can_stop:
            return await future  # being cancelled cancels it, and waits until it stopped
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            state.scope.outlive(future)
            raise
    try:
        if started is not None:
            await asyncio.wait({future, started}, return_when=asyncio.FIRST_COMPLETED)
        done, _ = await asyncio.wait({future}, timeout=call.timeout)
    except asyncio.CancelledError:
        if can_stop:
            await finish([future], cancel=True)
        else:
            state.scope.outlive(future)
        raise
    if not done:
        # Timed out. Stop the attempt where the executor can; a thread cannot be stopped,
        # so the run stops waiting for it (it finishes in the background, its result lost).
        if can_stop:
            if await finish([future], cancel=True):
                raise asyncio.CancelledError
        else:
            future.add_done_callback(retrieve)
        raise TaskTimeoutError(call.task_name, call.timeout)
    return future.result()


def _mark_started(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_result(None)
