"""The scheduler loop: one run of one graph, every node as soon as its inputs are ready.

The scheduler knows the ready queues and completion, nothing of how a call is made. A node
whose inputs are complete is *launched* by one of two routes: down the call pipeline as it is
(``cascade.runtime.call``) when it has no policies (``RunPlan.needs_policies``), or as a
coroutine running the policy chain around the same pipeline (``cascade.runtime.policies``).
Both end in the same completion path, which records the value in the run's state
(``cascade.runtime.state``), grows the graph by a returned graph (``cascade.runtime.growth``)
and queues the dependents that became ready. One pump drains the queues, a batch of launches
per event-loop pass (``LAUNCH_BUDGET``), so nothing recurses however deep or wide the graph
is. The first failure stops new launches; the run's scope (``cascade.runtime.scope``) cancels
what can be stopped and waits for what cannot; resources are torn down and the original
exception re-raised.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from typing import Any

from cascade.events import RunFinished, RunStarted, describe_error
from cascade.graph.build import KIND_PARAM, Node
from cascade.graph.extend import PLAIN_TYPES
from cascade.resources import run_to_end
from cascade.runtime import call, growth
from cascade.runtime.inputs import fetch_inputs, fetch_value
from cascade.runtime.markers import FAILED, SKIPPED, add_note
from cascade.runtime.outcome import RunFailed
from cascade.runtime.plan import RunPlan, unknown_params_error
from cascade.runtime.policies import condition_holds, run_node
from cascade.runtime.scope import retrieve
from cascade.runtime.state import RunState
from cascade.runtime.streams import plan_streams, run_streamed

#: How many nodes one pump launches before it lets the event loop run. Enough that the loop's
#: own cost per pass vanishes; few enough that a wide fan-out keeps only a few batches of
#: tasks alive at once (memory, and garbage-collector passes that walk every live task), and
#: that timers, I/O and Ctrl-C wait only milliseconds behind a chain of steps that finish as
#: they start (``benchmarks/run.py``: the 100,000-task fan-out and memory rows).
LAUNCH_BUDGET = 500


class Run:
    """The loop of one run over its state: launch what is ready, hear what completed."""

    def __init__(self, plan: RunPlan, shape: Callable[[list[Any]], Any] = list) -> None:
        self.plan = plan
        self.shape = shape
        self.state = RunState(plan)
        # Streams hook: consumers of a stream wait for its items, not for its producer's end
        # (cascade.runtime.streams takes those edges out of ``pending``).
        self.state.streams = plan_streams(plan, self.state.nodes, self.state.pending)
        self.loop = plan.loop
        self.pumping = False
        #: Launches left before the pump lets the event loop run (see LAUNCH_BUDGET).
        self.budget = LAUNCH_BUDGET
        # Made once per run rather than per task: a bound method or a closure per task would
        # be more objects for the garbage collector to walk in a wide fan-out.
        self.on_call_done = functools.partial(call.settle, self.state, self._finish)
        self.state.settling = functools.partial(call.settles_itself, self.state, self._finish)
        self.on_runner_done = self._runner_done
        self.on_passed = self._passed_gate

    # -- the run -------------------------------------------------------------------------

    async def execute(self) -> list[Any]:
        plan, state = self.plan, self.state
        bus = plan.bus
        started = time.perf_counter()
        if bus.wants(RunStarted):
            bus.publish(
                RunStarted(
                    run_id=plan.run_id,
                    target_tasks=[state.nodes[i].name for i in plan.graph.targets],
                    params=dict(plan.params),
                )
            )
        status = "Succeeded"
        failure: BaseException | None = None
        started_executors = state.started_executors
        resources = state.resources
        try:
            for executor in plan.executors:
                await state.open_executor(executor)
            for name in plan.run_resources:
                try:
                    await resources.enter(plan.providers[name], resources.instances)
                except Exception as exc:
                    add_note(exc, f"while setting up resource '{name}'")
                    state.failed_resource = name
                    raise
            state.context = contextvars.copy_context()
            await self._schedule()
            targets = plan.graph.targets
            values = [state.results[i] for i in targets]
            if plan.has_references:
                values = [
                    await fetch_value(plan, i, v, SKIPPED)
                    for i, v in zip(targets, values, strict=True)
                ]
            values = [None if v is SKIPPED or v is FAILED else v for v in values]
            if state.failures:
                raise RunFailed(dict(state.failures), self.shape(values))
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
                await resources.close(failure)
            except asyncio.CancelledError:
                cancelled = True
            except BaseException as exc:
                culprit = resources.failed_teardown
                if culprit is not None:
                    add_note(exc, f"while tearing down resource '{culprit}'")
                if failure is None:
                    status, failure = "Failed", exc
                    state.failed_resource = culprit
                raise
            finally:
                for executor in reversed(started_executors):
                    try:
                        await run_to_end(state.close_executor(executor))
                    except asyncio.CancelledError:
                        cancelled = True
                if cancelled and status != "Cancelled":
                    status, failure = "Cancelled", asyncio.CancelledError()
                state.report.publish_succeeded()
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
                            failed_resource=state.failed_resource,
                            exception=failure if failed else None,
                        )
                    )
                await run_to_end(bus.flush())
                if cancelled:
                    raise asyncio.CancelledError

    async def _schedule(self) -> None:
        state = self.state
        if not state.nodes:
            return
        params = self.plan.params
        for node in state.nodes:
            if node.kind == KIND_PARAM:
                state.complete(node.index, params[node.lazy.param_name])  # type: ignore[attr-defined]
            elif not node.deps:
                state.ready.append(node.index)
        if state.streams is not None:  # streams hook: stages whose only inputs are streams
            state.ready.extend(state.streams.start_now)
        self._pump()
        await state.done
        if state.error is not None:
            raise state.error

    async def _stop_everything(self) -> bool:
        """Stop launching, give back the slots of calls that will not start now (an
        engine's pools are shared with its other runs), and close the run's scope: cancel
        what can be cancelled, wait for everything. Returns whether the run was cancelled
        meanwhile: it finishes first."""
        plan, state = self.plan, self.state
        state.stop_launching()
        if state.streams is not None:  # streams hook: paused generators wake up and close
            state.streams.stop_all()
        for gate in plan.all_gates():
            gate.close(state)
        holds, state.gate_holds = state.gate_holds, {}
        for index, held in holds.items():
            for weighted in plan.direct_gates(state.nodes[index])[:held]:
                weighted.gate.leave(weighted.weight)
        return await state.scope.close(self._can_stop, self.on_call_done)

    def _can_stop(self, future: asyncio.Future[Any], node: Node) -> bool:
        return call.stoppable(future, self.plan.executor_for(node.lazy.task)[1])  # type: ignore[arg-type]

    # -- the loop ------------------------------------------------------------------------

    def _pump(self) -> None:
        if self.pumping or not self.budget:
            return
        self.pumping = True
        state = self.state
        try:
            ready, admitted, resolving, nodes = (
                state.ready,
                state.admitted,
                state.resolving,
                state.nodes,
            )
            start, on_call_done = call.start, self.on_call_done
            while not state.stopping:
                if admitted:
                    start(state, nodes[admitted.popleft()], on_call_done)
                elif ready:
                    self._launch(nodes[ready.popleft()])
                elif resolving:
                    growth.resolve(state, resolving.popleft())
                    continue
                else:
                    break
                self.budget -= 1
                if not self.budget:
                    self.loop.call_soon(self._refill, context=state.context)
                    break
        except Exception as exc:  # a defect here must end the run, not vanish in a callback
            state.fail(exc)
        finally:
            self.pumping = False

    def _refill(self) -> None:
        """The next event-loop pass after the pump spent its budget: launch the next batch."""
        self.budget = LAUNCH_BUDGET
        self._pump()

    def _launch(self, node: Node) -> None:
        state, plan = self.state, self.plan
        if state.any_failed:
            upstream = next((d for d in node.deps if state.failed[d]), None)
            if upstream is not None:
                state.not_run(node, upstream)
                return
        if state.any_skipped and any(state.skipped[d] for d in node.value_deps):
            state.skip(node, "UpstreamSkipped")
            return
        if plan.needs_policies(node) or (
            state.unprepared and id(node.lazy.task) in state.unprepared
        ):
            runner = self.loop.create_task(self._with_policies(node))
            state.scope.runners[runner] = node
            runner.add_done_callback(self.on_runner_done, context=state.context)
            return
        if not plan.gated:
            call.start(state, node, self.on_call_done)
            return
        gates = plan.direct_gates(node)
        entered, waiter = call.pass_gates(state, node, node.lazy.id, gates, 0, self.on_passed)
        if waiter is None:
            call.start(state, node, self.on_call_done)
        else:
            state.gate_holds[node.index] = entered

    def _passed_gate(self, index: int, next_gate: int) -> None:
        """A direct-route node waiting at a gate passed it: on to its next gate, or, past
        them all, into the admitted queue."""
        state = self.state
        if state.halted:
            return  # the run decided to stop: nothing starts (its gates are closed next)
        node = state.nodes[index]
        gates = self.plan.direct_gates(node)
        entered, waiter = call.pass_gates(
            state, node, node.lazy.id, gates, next_gate, self.on_passed
        )
        state.gate_holds[index] = entered  # until it starts
        if waiter is None:
            state.admitted.append(index)
            self._pump()

    async def _with_policies(self, node: Node) -> Any:
        state = self.state
        task = node.lazy.task
        if state.unprepared and id(task) in state.unprepared:
            await state.prepare_task(task)  # type: ignore[arg-type]
        results: Any = state.results
        if self.plan.has_references:
            results = await fetch_inputs(self.plan, node, state.results, SKIPPED)
        if state.streams is not None and node.index in state.streams.driven:
            # Streams hook: a stage reading a stream, or a map whose items stream on.
            if not condition_holds(state, node, results):
                return SKIPPED
            return await run_streamed(state, node, results)
        return await run_node(state, node, results)

    # -- completion, the one path every node finishes through ------------------------------

    def _runner_done(self, future: asyncio.Future[Any]) -> None:
        """A node's policy chain ended."""
        node = self.state.scope.runners.pop(future, None)
        if node is None:  # the run ended without it (defensive)
            retrieve(future)
            return
        try:
            value = future.result()
        except BaseException as exc:
            self._finish(node, None, exc)
            return
        self._finish(node, value, None)

    def _finish(self, node: Node, value: Any, exc: BaseException | None) -> None:
        state = self.state
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                if not state.stopping:
                    state.fail(asyncio.CancelledError(f"task '{node.name}' was cancelled"))
                return
            state.fail(exc, node)
            self._pump()
            return
        if state.stopping:
            return
        if value is SKIPPED:
            state.skipped[node.index] = 1
            state.any_skipped = True
        elif type(value) not in PLAIN_TYPES and call.is_graph(value):
            growth.expand(state, node, value)
            self._pump()
            return
        state.complete(node.index, value)
        self._pump()
