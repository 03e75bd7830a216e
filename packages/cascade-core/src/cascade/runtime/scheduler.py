"""The scheduler loop: one run of one graph, every node as soon as its inputs are ready.

A node whose inputs are complete is *launched* by one of two routes: straight to its executor
when it has no policies (``RunPlan.needs_policies``), or as a coroutine running the policy
chain (``cascade.runtime.policies``). Both routes end in the same completion callback,
``_node_done``, which records the value, counts down the dependents' pending inputs and queues
the ready ones. The direct route also takes a run-wide checkpoint (looked up before the call,
saved after it), and completes at once a call that finished as it started (Python 3.12+). One
pump drains the queues, a batch of launches per event-loop pass (``LAUNCH_BUDGET``), so
nothing recurses however deep or wide the graph is. The first failure stops new launches,
cancels what can be stopped, waits for what cannot, tears resources down and re-raises the
original exception.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from cascade.events import RunFinished, RunStarted, describe_error
from cascade.executors import Executor, TaskCall
from cascade.graph.build import KIND_PARAM, Node
from cascade.graph.extend import PLAIN_TYPES, returns_graph
from cascade.records.mark import ATTEMPT
from cascade.resources import run_to_end
from cascade.runtime.attempt import (
    announce,
    as_future,
    publish_finished,
    publish_started,
    report_finished,
    stoppable,
)
from cascade.runtime.clock import timed_async, timed_sync
from cascade.runtime.growth import GraphGrowth, Join
from cascade.runtime.inputs import arguments, fetch_inputs, fetch_value, with_run_resources
from cascade.runtime.limits import Weighted
from cascade.runtime.markers import FAILED, SKIPPED, add_note
from cascade.runtime.outcome import MapItemsFailed, RunFailed
from cascade.runtime.plan import RunPlan, unknown_params_error
from cascade.runtime.policies import publish_skip, run_node, save_result
from cascade.spec.cache_policy import CacheContext
from cascade.spec.task import Task

#: How many nodes one pump launches before it lets the event loop run. Enough that the loop's
#: own cost per pass vanishes; few enough that a wide fan-out keeps only a few batches of
#: tasks alive at once (memory, and garbage-collector passes that walk every live task), and
#: that timers, I/O and Ctrl-C wait only milliseconds behind a chain of steps that finish as
#: they start (``benchmarks/run.py``: the 100,000-task fan-out and memory rows).
LAUNCH_BUDGET = 500


class Run(GraphGrowth):
    """The state of one run: results, pending input counts, what is in flight."""

    def __init__(self, plan: RunPlan, shape: Callable[[list[Any]], Any] = list) -> None:
        self.plan = plan
        self.shape = shape
        self.graph = plan.graph
        self.nodes = nodes = plan.graph.nodes
        self.loop = plan.loop
        count = len(nodes)
        self.results: list[Any] = [None] * count
        self.pending = [len(node.deps) for node in nodes]
        self.skipped = bytearray(count)
        self.any_skipped = False
        self.failed = bytearray(count)
        self.any_failed = False
        self.failures: dict[str, BaseException] = {}
        self.failed_resource: str | None = None
        self.completed = bytearray(count)
        self.finished = 0
        self.ready: deque[int] = deque()
        # Tasks that returned graphs (see cascade.runtime.growth).
        self.resolving: deque[int] = deque()
        self.joins: dict[int, Join] = {}
        self.waiters: dict[int, list[int]] = {}
        self.extra_dependents: dict[int, list[int]] = {}
        self.retired: dict[int, weakref.ref[Any]] = {}
        #: Direct-route nodes that were given a slot of the run's limit while waiting for one.
        self.admitted: deque[int] = deque()
        #: Direct-route nodes not started yet that hold some of their gates: node index →
        #: how many (given back if the run stops before they start).
        self.gate_holds: dict[int, int] = {}
        self.pumping = False
        #: Launches left before the pump lets the event loop run (see LAUNCH_BUDGET).
        self.budget = LAUNCH_BUDGET
        self.stopping = False
        self.error: BaseException | None = None
        # Futures in flight: direct-route calls, and the coroutines running policy chains.
        self.inflight: dict[asyncio.Future[Any], Node] = {}
        #: The ``async def`` call the fast path is submitting, while it is (a capturing run's
        #: log records of its eager first step are its; see cascade.records.capture).
        self.submitting: Node | None = None
        self.runners: dict[asyncio.Future[Any], Node] = {}
        self.reported: dict[asyncio.Future[Any], tuple[TaskCall, str]] = {}
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.started_at = plan.started_at  # the plan's: read on every launch and completion
        #: Direct-route calls of a run with a checkpoint policy: the context their result is
        #: saved under when they succeed (looked up in ``_start_direct``).
        self.checkpointing: dict[asyncio.Future[Any], CacheContext] = {}
        # Made once per run rather than per task: a bound method or a closure per task would
        # be more objects for the garbage collector to walk in a wide fan-out.
        self.on_done = self._node_done
        # Completion callbacks run in the run's context as it is once run-scoped resources
        # are set up, so every task sees context variables those set.
        self.context = contextvars.copy_context()

    # -- the run -------------------------------------------------------------------------

    async def execute(self) -> list[Any]:
        plan = self.plan
        bus = plan.bus
        started = time.perf_counter()
        if bus.wants(RunStarted):
            bus.publish(
                RunStarted(
                    run_id=plan.run_id,
                    target_tasks=[self.nodes[i].name for i in plan.graph.targets],
                    params=dict(plan.params),
                )
            )
        status = "Succeeded"
        failure: BaseException | None = None
        started_executors = plan.started_executors
        try:
            for executor in plan.executors:
                await executor.start()
                started_executors.append(executor)
            for name in plan.run_resources:
                try:
                    await plan.resources.enter(plan.providers[name], plan.resources.instances)
                except Exception as exc:
                    add_note(exc, f"while setting up resource '{name}'")
                    self.failed_resource = name
                    raise
            self.context = contextvars.copy_context()
            await self._schedule()
            targets = plan.graph.targets
            values = [self.results[i] for i in targets]
            if plan.has_references:
                values = [
                    await fetch_value(plan, i, v, SKIPPED)
                    for i, v in zip(targets, values, strict=True)
                ]
            values = [None if v is SKIPPED or v is FAILED else v for v in values]
            if self.failures:
                raise RunFailed(dict(self.failures), self.shape(values))
            if plan.unclaimed:  # the whole run is known now: nothing declared these
                raise unknown_params_error(plan.unclaimed, plan.params, grown=True)
            return values
        except asyncio.CancelledError as exc:
            status, failure = "Cancelled", exc
            raise
        except BaseException as exc:
            status, failure = "Failed", exc
            raise
        finally:
            # Cleaning up runs to its end however often the run is cancelled meanwhile; a
            # cancellation that arrived is raised once it has (not swallowed by a failure).
            cancelled = await self._stop_everything()
            try:
                await plan.resources.close(failure)
            except asyncio.CancelledError:
                cancelled = True
            except BaseException as exc:
                culprit = plan.resources.failed_teardown
                if culprit is not None:
                    add_note(exc, f"while tearing down resource '{culprit}'")
                if failure is None:
                    status, failure = "Failed", exc
                    self.failed_resource = culprit
                raise
            finally:
                for executor in reversed(started_executors):
                    try:
                        await run_to_end(executor.shutdown())
                    except asyncio.CancelledError:
                        cancelled = True
                if cancelled and status != "Cancelled":
                    status, failure = "Cancelled", asyncio.CancelledError()
                plan.publish_succeeded()
                await run_to_end(bus.flush())
                if bus.wants(RunFinished):
                    failed = status == "Failed" and failure is not None
                    bus.publish(
                        RunFinished(
                            run_id=plan.run_id,
                            status=status,
                            duration=time.perf_counter() - started,
                            error=describe_error(failure) if failed else None,  # type: ignore[arg-type]
                            error_type=type(failure).__name__ if failed else None,
                            failed_resource=self.failed_resource,
                            exception=failure if failed else None,
                        )
                    )
                await run_to_end(bus.flush())
                if cancelled:
                    raise asyncio.CancelledError

    async def _schedule(self) -> None:
        if not self.nodes:
            return
        params = self.plan.params
        for node in self.nodes:
            if node.kind == KIND_PARAM:
                self._complete(node.index, params[node.lazy.param_name])  # type: ignore[attr-defined]
            elif not node.deps:
                self.ready.append(node.index)
        self._pump()
        await self.done
        if self.error is not None:
            raise self.error

    async def _stop_everything(self) -> bool:
        """Stop launching, cancel what can be cancelled, and wait for everything in flight
        (an attempt abandoned after a timeout only while it holds something the run must give
        back). Returns whether the run was cancelled meanwhile: it finishes first."""
        self.stopping = True
        self.ready.clear()
        self.admitted.clear()
        plan = self.plan
        for gate in plan.all_gates():
            gate.close(plan)
        # Calls that will not start now give back the slots they took (an engine's pools
        # are shared with its other runs).
        holds, self.gate_holds = self.gate_holds, {}
        for index, held in holds.items():
            for weighted in plan.direct_gates(self.nodes[index])[:held]:
                weighted.gate.leave(weighted.weight)
        cancelled = False
        while self.inflight or self.runners or plan.unstoppable:
            for future in self.runners:
                future.cancel()
            for future, node in self.inflight.items():
                if stoppable(future, self._executor(node)):
                    future.cancel()
            waiting = set(self.inflight) | set(self.runners) | plan.unstoppable
            try:
                await asyncio.wait(waiting)
            except asyncio.CancelledError:
                cancelled = True
                continue  # cancelled again while cleaning up: finish cleaning up first
            for future in waiting:
                if future.done():
                    self.inflight.pop(future, None)
                    self.runners.pop(future, None)
                    plan.unstoppable.discard(future)
        return cancelled

    # -- the loop ------------------------------------------------------------------------

    def _pump(self) -> None:
        if self.pumping or not self.budget:
            return
        self.pumping = True
        try:
            ready, admitted, nodes = self.ready, self.admitted, self.nodes
            resolving = self.resolving
            while not self.stopping:
                if admitted:
                    self._start_direct(nodes[admitted.popleft()])
                elif ready:
                    self._launch(nodes[ready.popleft()])
                elif resolving:
                    self._resolve(resolving.popleft())
                    continue
                else:
                    break
                self.budget -= 1
                if not self.budget:
                    self.loop.call_soon(self._refill, context=self.context)
                    break
        except Exception as exc:  # a defect here must end the run, not vanish in a callback
            self._fail(exc)
        finally:
            self.pumping = False

    def _refill(self) -> None:
        """The next event-loop pass after the pump spent its budget: launch the next batch."""
        self.budget = LAUNCH_BUDGET
        self._pump()

    def _launch(self, node: Node) -> None:
        if self.any_failed:
            upstream = next((d for d in node.deps if self.failed[d]), None)
            if upstream is not None:
                self._not_run(node, upstream)
                return
        if self.any_skipped and any(self.skipped[d] for d in node.value_deps):
            self._skip(node, "UpstreamSkipped")
            return
        plan = self.plan
        if plan.needs_policies(node) or (plan.unprepared and id(node.lazy.task) in plan.unprepared):
            runner = self.loop.create_task(self._with_policies(node))
            self.runners[runner] = node
            runner.add_done_callback(self.on_done, context=self.context)
            return
        if not plan.gated or self._pass_gates(node, plan.direct_gates(node), 0):
            self._start_direct(node)

    def _pass_gates(self, node: Node, gates: tuple[Weighted, ...], first: int) -> bool:
        """Enter the gates of a direct-route node from ``first`` on; at one that is full,
        queue the node there and return False (it goes on from the next gate once passed)."""
        for k in range(first, len(gates)):
            weighted = gates[k]
            if not weighted.gate.try_enter(weighted.weight):
                self.plan.note_wait(node, node.lazy.id, weighted.gate)
                self.gate_holds[node.index] = k
                passed = functools.partial(self._passed_gate, node.index, k + 1)
                weighted.gate.wait(passed, weighted.weight, node.lazy.priority, self.plan)
                return False
        return True

    def _passed_gate(self, index: int, next_gate: int) -> None:
        if self.plan.halted:
            return  # the run decided to stop: nothing starts (its gates are closed next)
        node = self.nodes[index]
        gates = self.plan.direct_gates(node)
        if self._pass_gates(node, gates, next_gate):
            self.gate_holds[index] = len(gates)  # until it starts
            self.admitted.append(index)
            self._pump()

    async def _with_policies(self, node: Node) -> Any:
        if self.plan.unprepared and id(node.lazy.task) in self.plan.unprepared:
            await self.plan.prepare_task(node.lazy.task)  # type: ignore[arg-type]
        results: Any = self.results
        if self.plan.has_references:
            results = await fetch_inputs(self.plan, node, self.results, SKIPPED)
        return await run_node(self.plan, node, results)

    def _start_direct(self, node: Node) -> None:
        """Submit a node without policies; it finishes in ``_node_done``."""
        plan = self.plan
        task: Task[..., Any] = node.lazy.task  # type: ignore[assignment]
        if self.gate_holds:
            self.gate_holds.pop(node.index, None)
        try:
            args, kwargs = arguments(node, self.results, plan.graph.index_of)
        except Exception as exc:
            add_note(exc, f"while building the arguments of task '{node.name}'")
            self._leave_gates(node)
            self._fail(exc, node)
            return
        context: CacheContext | None = None
        if plan.checkpoint is not None and (
            args or kwargs or id(task) not in plan.checkpoint_settled
        ):
            # Keyed on the call's own arguments, before resources are injected, as the
            # policy route keys a cached call.
            context = CacheContext(task, node.lazy.id, args, kwargs)
            try:
                hit, cached = plan.checkpoint.lookup(context)
            except Exception as exc:
                add_note(exc, f"while looking up the checkpoint of task '{node.name}'")
                self._leave_gates(node)
                self._fail(exc, node)
                return
            if hit:
                self._leave_gates(node)
                publish_skip(plan, node, node.lazy.id, "Checkpoint")  # restored, not cached
                if type(cached) not in PLAIN_TYPES and returns_graph(cached):
                    self._expand(node, cached)  # the graph it returned: each task restores itself
                else:
                    self._complete(node.index, cached)
                return
        if task.injections:
            kwargs = with_run_resources(plan, task, kwargs)

        # Logs a recorded run captures are the task's when this mark is in the context the
        # call runs in (cascade.records.capture); the executor copies it at submit. An async
        # call on the fast path needs none: its task is found in ``inflight``.
        submit_plain = plan.plain_submit[id(task)]
        mark = None
        if plan.tag_attempts:
            if submit_plain is None or not task.is_async:
                mark = ATTEMPT.set((plan.run_id, node.lazy.id, 1))
            else:  # an eager first step logs before the call is in ``inflight``
                self.submitting = node
        try:
            if submit_plain is not None:
                # The direct route's own fast path: the executor starts the call without a
                # TaskCall, because nobody would look at one (see Executor.submit_plain).
                fn = task.fn
                ended_at = plan.ended_at
                if self.started_at is not None:  # before the call: it may finish as it starts
                    if plan.want_started:
                        publish_started(
                            plan,
                            node.lazy.id,
                            task.name,
                            plan.parent_of.get(node.index) if plan.parent_of else None,
                            1,
                            plan.executor_for(task)[0],
                        )
                    self.started_at[node.index] = time.time()
                    if ended_at is not None and not plan.executor_for(task)[1].requires_pickle:
                        # The call notes when its own code ran (``cascade.runtime.clock``).
                        ended_at[node.index] = 0.0
                        args = (fn, node.index, self.started_at, ended_at, *args)
                        fn = timed_async if task.is_async else timed_sync
                try:
                    future: asyncio.Future[Any] = submit_plain(fn, args, kwargs, task.is_async)
                except Exception as exc:
                    self._leave_gates(node)
                    self._fail(exc, node)
                    return
            else:
                executor_name, executor = plan.executor_for(task)
                call = TaskCall(
                    node.lazy.id, task.name, task.fn, args, dict(kwargs), task.is_async, plan.run_id
                )
                call.leaves_process = executor.requires_pickle
                if plan.parent_of:
                    call.parent_task_id = plan.parent_of.get(node.index)
                try:
                    announce(plan, call, executor_name)
                    future = as_future(plan, executor.submit(call), call.context, eager=True)
                except BaseException as exc:
                    report_finished(plan, call, executor_name, None, exc)
                    self._leave_gates(node)
                    self._fail(exc, node)
                    return
                self.reported[future] = (call, executor_name)
        finally:
            if mark is not None:
                ATTEMPT.reset(mark)
            self.submitting = None
        if context is not None:
            self.checkpointing[future] = context
        self.inflight[future] = node
        if future.done():
            # Finished as it started (see ``LocalExecutor.submit_plain``): completed now, and
            # its dependents join the queue this pump is draining.
            self._node_done(future)
        else:
            future.add_done_callback(self.on_done, context=self.context)

    def _leave_gates(self, node: Node) -> None:
        if self.plan.gated:
            for weighted in self.plan.direct_gates(node):
                weighted.gate.leave(weighted.weight)

    # -- completion, the one path every node finishes through ------------------------------

    def _node_done(self, future: asyncio.Future[Any]) -> None:
        node = self.inflight.pop(future, None)
        direct = node is not None
        if node is None:
            node = self.runners.pop(future)
        elif self.plan.gated:
            if not self.plan.keep_going and not future.cancelled() and future.exception():
                self.plan.halted = True  # before its slots wake a waiter: it must not start
            self._leave_gates(node)
        reported = self.reported.pop(future, None) if self.reported else None
        context = self.checkpointing.pop(future, None) if self.checkpointing else None
        try:
            value = future.result()
        except asyncio.CancelledError:
            if direct:
                self._report_direct(node, reported, None, None, cancelled=True)
            if not self.stopping:
                self._fail(asyncio.CancelledError(f"task '{node.name}' was cancelled"))
            return
        except BaseException as exc:
            if direct:
                self._report_direct(node, reported, None, exc)
            self._fail(exc, node)
            self._pump()
            return
        if direct and (reported is not None or self.started_at is not None):
            self._report_direct(node, reported, value, None)
        if self.stopping:
            return
        if context is not None:
            try:
                value = save_result(self.plan.checkpoint, context, value)  # type: ignore[arg-type]
            except Exception as exc:
                add_note(exc, f"while checkpointing the result of task '{node.name}'")
                self._fail(exc, node)
                self._pump()
                return
        if value is SKIPPED:
            self.skipped[node.index] = 1
            self.any_skipped = True
        elif type(value) not in PLAIN_TYPES and returns_graph(value):
            self._expand(node, value)
            self._pump()
            return
        self._complete(node.index, value)
        self._pump()

    def _report_direct(
        self,
        node: Node,
        reported: tuple[TaskCall, str] | None,
        value: Any,
        exc: BaseException | None,
        cancelled: bool = False,
    ) -> None:
        """How a direct-route call ended, reported once, here: through its ``TaskCall`` when
        it has one, else from the start time kept for its node. A success that only
        ``TasksSucceeded`` wants (the recorder's path) is kept as its node index and end time,
        which ``RunPlan.publish_succeeded`` turns into columns: no tuple per call
        (``benchmarks/bench_records.py``)."""
        plan = self.plan
        if reported is not None:
            report_finished(plan, reported[0], reported[1], value, exc, cancelled=cancelled)
            return
        if self.started_at is None:
            return
        if exc is None and not cancelled and not plan.want_succeeded:
            if plan.want_bulk_successes:
                if not plan.succeeded_nodes and not plan.succeeded:
                    plan.loop.call_soon(plan.publish_succeeded)
                plan.succeeded_nodes.append(node.index)
                ended_at = plan.ended_at  # written by the call itself (runtime/clock.py)
                plan.succeeded_ends.append(
                    (ended_at[node.index] if ended_at is not None else 0.0) or time.time()
                )
            return
        task: Task[..., Any] = node.lazy.task  # type: ignore[assignment]
        publish_finished(
            plan,
            node.lazy.id,
            task.name,
            plan.parent_of.get(node.index) if plan.parent_of else None,
            1,
            self.started_at[node.index] or None,
            (plan.ended_at[node.index] if plan.ended_at is not None else 0.0) or None,
            plan.executor_for(task)[0],
            value,
            exc,
            cancelled=cancelled,
        )

    def _complete(self, index: int, value: Any) -> None:
        """Record a node's result and queue the dependents whose inputs are now complete."""
        self.results[index] = value
        self.completed[index] = 1
        pending, ready = self.pending, self.ready
        for dependent in self.nodes[index].dependents:
            pending[dependent] -= 1
            if pending[dependent] == 0:
                ready.append(dependent)
        if self.extra_dependents:
            for dependent in self.extra_dependents.pop(index, ()):
                pending[dependent] -= 1
                if pending[dependent] == 0:
                    ready.append(dependent)
        if self.waiters:
            self._wake_parents(index)
        self.finished += 1
        if self.finished == len(self.nodes) and not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException, node: Node | None = None) -> None:
        if self.plan.keep_going and node is not None and isinstance(exc, Exception):
            # Only what depends on this node is left out; the run goes on.
            if isinstance(exc, MapItemsFailed):
                self.failures.update(exc.failures)
            else:
                self.failures[node.lazy.id] = exc
            self.failed[node.index] = 1
            self.any_failed = True
            self._complete(node.index, FAILED)
            return
        if self.error is None and not self.stopping:
            self.error = exc
            self.stopping = True
            self.plan.halted = True
            self.ready.clear()
            self.admitted.clear()
            if not self.done.done():
                self.done.set_result(None)

    def _skip(self, node: Node, reason: str) -> None:
        self.skipped[node.index] = 1
        self.any_skipped = True
        publish_skip(self.plan, node, node.lazy.id, reason)
        self._complete(node.index, SKIPPED)

    def _not_run(self, node: Node, upstream: int) -> None:
        """An input failed (keep-going runs): the node does not run, naming that input."""
        self.failed[node.index] = 1
        culprit = self.nodes[upstream].lazy.id
        publish_skip(self.plan, node, node.lazy.id, "UpstreamFailed", culprit)
        self._complete(node.index, FAILED)

    def _executor(self, node: Node) -> Executor:
        return self.plan.executor_for(node.lazy.task)[1]  # type: ignore[arg-type]
