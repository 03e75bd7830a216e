"""One task attempt: its ``TaskCall``, the call hooks, the executor, the wait, the report.

``announce`` and ``report_finished`` are the only places that publish an attempt's start and
end, for both routes a node can take. ``run_attempt`` is the policy route's attempt (with
task-scoped resources and a timeout); the direct route in the scheduler submits the same way
through ``submit`` and reports through ``report_finished``.

Timeouts count running time only: when the executor reports when a queued call really starts
(``reports_start``), the clock starts then. A task-scoped resource is torn down only after the
attempt that uses it has stopped, even when the attempt is a thread that cannot be stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import time
import types
from collections.abc import Awaitable
from typing import Any

from cascade.events import (
    TaskExecutionFinished,
    TaskExecutionStarted,
    describe_error,
    make_event,
)
from cascade.executors import Executor, TaskCall
from cascade.graph.extend import returns_graph
from cascade.records.mark import ATTEMPT
from cascade.resources import ResourceStack, plan_resources
from cascade.runtime.inputs import with_run_resources
from cascade.runtime.limits import Gate
from cascade.runtime.plan import RunPlan
from cascade.spec.policies import RetryPolicy, TaskTimeoutError
from cascade.spec.task import Task

_CoroutineType = types.CoroutineType
_TASKS_TAKE_CONTEXT = sys.version_info >= (3, 11)
_EAGER_TASKS = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True)


def announce(plan: RunPlan, call: TaskCall, executor_name: str) -> None:
    """Just before an attempt is submitted: run the call hooks inside the attempt's own
    context, publish ``TaskExecutionStarted`` and start its clock."""
    if plan.waits:
        wait = plan.waits.pop(call.task_id, None)
        if wait is not None:
            call.waited, call.waited_for = time.monotonic() - wait[0], tuple(wait[1])
    if plan.call_hooks:
        context = contextvars.copy_context()
        for hook in plan.call_hooks:
            context.run(hook, call)
        call.context = context
    if plan.want_started:
        publish_started(
            plan,
            call.task_id,
            call.task_name,
            call.parent_task_id,
            call.attempt,
            executor_name,
            call.waited,
            call.waited_for,
        )
    call.start_time = time.time()


def publish_started(
    plan: RunPlan,
    task_id: str,
    task_name: str,
    parent_task_id: str | None,
    attempt: int,
    executor_name: str,
    waited: float | None = None,
    waited_for: tuple[str, ...] = (),
) -> None:
    """Publish ``TaskExecutionStarted`` from an attempt's fields; the direct route's calls
    without a ``TaskCall`` publish through here too (their wait is taken from the plan)."""
    if waited is None and plan.waits:
        wait = plan.waits.pop(task_id, None)
        if wait is not None:
            waited, waited_for = time.monotonic() - wait[0], tuple(wait[1])
    if waited is None:
        waited = 0.0
    plan.bus.publish(
        make_event(
            TaskExecutionStarted,
            run_id=plan.run_id,
            task_id=task_id,
            task_name=task_name,
            parent_task_id=parent_task_id,
            attempt=attempt,
            executor=executor_name,
            waited=waited,
            waited_for=waited_for,
        )
    )


def report_finished(
    plan: RunPlan,
    call: TaskCall,
    executor_name: str,
    value: Any,
    exc: BaseException | None,
    *,
    cancelled: bool = False,
    will_retry: bool = False,
    fell_back: bool = False,
) -> None:
    """Publish ``TaskExecutionFinished`` for an attempt, if anyone wants its status."""
    publish_finished(
        plan,
        call.task_id,
        call.task_name,
        call.parent_task_id,
        call.attempt,
        call.start_time,
        call.end_time,
        executor_name,
        value,
        exc,
        cancelled=cancelled,
        will_retry=will_retry,
        fell_back=fell_back,
    )


def publish_finished(
    plan: RunPlan,
    task_id: str,
    task_name: str,
    parent_task_id: str | None,
    attempt: int,
    start_time: float | None,
    end_time: float | None,
    executor_name: str,
    value: Any,
    exc: BaseException | None,
    *,
    cancelled: bool = False,
    will_retry: bool = False,
    fell_back: bool = False,
) -> None:
    """``report_finished`` from an attempt's fields, for the direct route's calls that have
    no ``TaskCall`` (``end_time`` ``None``: now)."""
    if cancelled or isinstance(exc, asyncio.CancelledError):
        if not plan.want_cancelled:
            return
        status = "Cancelled"
    elif exc is None:
        if plan.want_bulk_successes:
            end_time = end_time or time.time()
            plan.note_succeeded(
                (
                    task_id,
                    task_name,
                    parent_task_id,
                    attempt,
                    start_time or end_time,
                    end_time,
                    executor_name,
                )
            )
        if not plan.want_succeeded:
            return
        status = "Succeeded"
    else:
        if not plan.want_failed:
            return
        status = "Failed"
    end = end_time or time.time()
    start = start_time or end
    fields: dict[str, Any] = {
        "run_id": plan.run_id,
        "timestamp": end,
        "task_id": task_id,
        "task_name": task_name,
        "parent_task_id": parent_task_id,
        "status": status,
        "duration": max(end - start, 0.0),
        "attempt": attempt,
        "start_time": start,
        "executor": executor_name,
    }
    if status == "Succeeded":
        fields["result"] = value
        fields["returned_graph"] = returns_graph(value)
    elif status == "Failed":
        assert exc is not None
        fields.update(
            error=describe_error(exc),
            error_type=type(exc).__name__,
            exception=exc,
            will_retry=will_retry,
            fell_back=fell_back,
        )
    plan.bus.publish(make_event(TaskExecutionFinished, **fields))


def as_future(
    plan: RunPlan,
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
    loop = plan.loop
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


def will_retry(retry: RetryPolicy | None, attempt: int, exc: BaseException) -> bool:
    """Whether ``retry`` attempts again after attempt number ``attempt`` raised ``exc``."""
    return (
        retry is not None
        and attempt <= retry.retries
        and isinstance(exc, Exception)
        and isinstance(exc, retry.on)
    )


async def run_attempt(
    plan: RunPlan,
    task: Task[..., Any],
    task_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: int,
    timeout: float | None,
    retry: RetryPolicy | None,
    *,
    parent: str | None = None,
    has_fallback: bool = False,
    abandoned: list[asyncio.Future[Any]] | None = None,
) -> Any:
    """Run one attempt with its task-scoped resources and timeout, reporting it. Work the
    attempt had to abandon after its timeout (a thread) is added to ``abandoned``: what the
    caller holds for the attempt is given back when it really ends (``give_back``)."""
    executor_name, executor = plan.executor_for(task)
    scoped: ResourceStack | None = None
    remote = executor.remote_resources
    submitted: list[asyncio.Future[Any]] = []
    failure: BaseException | None = None
    try:
        if task.injections and not remote:
            kwargs = dict(kwargs)
            for param, name in task.injections:
                if param not in kwargs and name in plan.task_resources:
                    if scoped is None:
                        scoped = ResourceStack(plan.bus, plan.run_id)
                    kwargs[param] = await _enter_task_resource(plan, scoped, name)
            kwargs = with_run_resources(plan, task, kwargs)
        call = TaskCall(
            task_id,
            task.name,
            task.fn,
            args,
            dict(kwargs),
            task.is_async,
            plan.run_id,
            attempt,
            timeout,
        )
        call.leaves_process = executor.requires_pickle
        call.parent_task_id = parent
        if task.injections and remote:
            call.resources = {p: n for p, n in task.injections if p not in kwargs}
            call.resource_providers = plan.remote_providers
        # The mark that makes what the call logs the task's (cascade.records.capture).
        mark = ATTEMPT.set((plan.run_id, task_id, attempt)) if plan.tag_attempts else None
        try:
            announce(plan, call, executor_name)
            value = await _submit_and_wait(plan, executor, call, submitted)
        except BaseException as exc:
            failure = exc
            retrying = will_retry(retry, attempt, exc)
            report_finished(
                plan,
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
        report_finished(plan, call, executor_name, value, None)
        return value
    except BaseException as exc:
        failure = exc
        raise
    finally:
        running = [f for f in submitted if not f.done()]
        if running and isinstance(failure, TaskTimeoutError) and abandoned is not None:
            abandoned.extend(running)
        if scoped is not None:
            await _close_after_attempt(plan, scoped, failure, running)


def give_back(plan: RunPlan, gate: Gate, weight: int, abandoned: list[asyncio.Future[Any]]) -> None:
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
        _wait_at_run_end(plan, future)


async def _close_after_attempt(
    plan: RunPlan,
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
            closing = plan.loop.create_task(scoped.close(failure))
            plan.unstoppable.add(closing)
            closing.add_done_callback(plan.unstoppable.discard)

        running[0].add_done_callback(close_later)
        _wait_at_run_end(plan, running[0])
        return
    cancelled = False
    while running:
        try:
            await asyncio.wait(running)
        except asyncio.CancelledError:
            cancelled = True  # the work still has to stop before teardown
        running = [f for f in running if not f.done()]
    try:
        await scoped.close(failure)
    finally:
        if cancelled:
            raise asyncio.CancelledError


async def _enter_task_resource(plan: RunPlan, scoped: ResourceStack, name: str) -> Any:
    """Set up a task-scoped resource (and task-scoped resources it injects) for one attempt;
    run-scoped ones it injects come from the run."""
    if name in scoped.instances:
        return scoped.instances[name]
    providers = plan.providers
    for dep in plan_resources(providers, [(name, f"resource '{name}'")]):
        if dep in scoped.instances or dep not in plan.task_resources:
            continue
        available = {**plan.resources.instances, **scoped.instances}
        await scoped.enter(providers[dep], available)
    return scoped.instances[name]


async def _submit_and_wait(
    plan: RunPlan, executor: Executor, call: TaskCall, submitted: list[asyncio.Future[Any]]
) -> Any:
    started: asyncio.Future[None] | None = None
    if call.timeout is not None and getattr(executor, "reports_start", False):
        started = plan.loop.create_future()
        call.on_start = functools.partial(_mark_started, started)
    awaitable = executor.submit(call)
    if type(awaitable) is _CoroutineType and call.context is None and call.timeout is None:
        # A coroutine with nothing to run it in and no clock: await it in this task rather
        # than in a task of its own (one Task fewer per attempt; map items and retried
        # tasks take this path, see the map row of benchmarks/run.py). Cancelling this task
        # cancels it just the same.
        return await awaitable
    future = as_future(plan, awaitable, call.context)
    submitted.append(future)
    can_stop = stoppable(future, executor)
    if call.timeout is None:
        if can_stop:
            return await future  # being cancelled cancels it, and waits until it stopped
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            _wait_at_run_end(plan, future)
            raise
    try:
        if started is not None:
            await asyncio.wait({future, started}, return_when=asyncio.FIRST_COMPLETED)
        done, _ = await asyncio.wait({future}, timeout=call.timeout)
    except asyncio.CancelledError:
        if can_stop:
            future.cancel()
            await asyncio.wait({future})
        else:
            _wait_at_run_end(plan, future)
        raise
    if not done:
        # Timed out. Stop the attempt where the executor can; a thread cannot be stopped,
        # so the run stops waiting for it (it finishes in the background, its result lost).
        if can_stop:
            future.cancel()
            await asyncio.wait({future})
        else:
            future.add_done_callback(_retrieve)
        raise TaskTimeoutError(call.task_name, call.timeout)
    return future.result()


def _mark_started(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_result(None)


def _wait_at_run_end(plan: RunPlan, future: asyncio.Future[Any]) -> None:
    if future in plan.unstoppable:
        return
    plan.unstoppable.add(future)
    future.add_done_callback(plan.unstoppable.discard)
    future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Fetch the outcome of work nobody waits for any more, so asyncio does not report it as
    "never retrieved": the attempt it belonged to already failed or was cancelled."""
    if not future.cancelled():
        future.exception()
