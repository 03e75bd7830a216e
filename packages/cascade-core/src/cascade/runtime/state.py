"""The state of one run: everything that changes while it runs, in one object.

The plan (``cascade.runtime.plan``) holds what was decided before the run started; this holds
what the run found out since: each node's result and pending input count, the queues of work,
which nodes failed or were skipped, the graph's growth, the resources set up, the executors
started, the attempts reported, and whether the run is stopping. The state transitions every
route ends in are here too (``complete``, ``fail``, ``skip``, ``not_run``), so the scheduler,
the policies and the graph's growth (``cascade.runtime.growth``, functions over this object)
change a run's state one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cascade.executors import (
    Executor,
    ExecutorRun,
    PlainSubmit,
    RunInfo,
    TaskCall,
    open_run,
)
from cascade.graph.build import Node
from cascade.resources import ResourceStack
from cascade.runtime.channel import StreamTable
from cascade.runtime.markers import FAILED, SKIPPED
from cascade.runtime.outcome import MapItemsFailed
from cascade.runtime.plan import RunPlan
from cascade.runtime.report import Reporter
from cascade.runtime.scope import RunScope
from cascade.spec.cache_policy import CacheContext
from cascade.spec.task import Task


@dataclass(slots=True)
class Join:
    """A node waiting for the LazyResults its task returned (``cascade.runtime.growth``)."""

    value: Any
    waiting: int
    children: tuple[int, ...]


class RunState:
    """One run's changing state; see the module docstring."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
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
        #: Nodes whose inputs are complete, waiting for the scheduler's pump.
        self.ready: deque[int] = deque()
        #: Direct-route nodes that were given their gates' slots while waiting for them.
        self.admitted: deque[int] = deque()
        #: Direct-route nodes not started yet that hold some of their gates: node index →
        #: how many (given back if the run stops before they start).
        self.gate_holds: dict[int, int] = {}
        # The graph's growth (cascade.runtime.growth).
        self.resolving: deque[int] = deque()
        self.joins: dict[int, Join] = {}
        self.waiters: dict[int, list[int]] = {}
        self.extra_dependents: dict[int, list[int]] = {}
        self.retired: dict[int, weakref.ref[Any]] = {}
        #: For nodes added at run time: node index → id of the task that returned them.
        self.parent_of: dict[int, str] = {}
        #: Set once the run has decided to stop (the first failure of a stop-mode run, a map
        #: item's included): from then on no attempt starts, even one already past its gates.
        self.halted = False
        #: Set once the run stops launching (a failure, or its end); ``error`` is why.
        self.stopping = False
        self.error: BaseException | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.scope = RunScope()
        self.report = Reporter(plan, self.parent_of, count)
        #: Run-scoped resources set up for this run, and their teardown.
        self.resources = ResourceStack(plan.bus, plan.run_id)
        #: Executors opened for this run, in order; the run closes them in reverse.
        self.started_executors: list[Executor] = []
        #: Each opened executor's handle for this run (``cascade.executors.open_run``), by
        #: ``id(executor)``, and what closes it; every submission of the run goes to it.
        self.handles: dict[int, ExecutorRun] = {}
        self._closers: dict[int, contextlib.AbstractAsyncContextManager[ExecutorRun]] = {}
        #: Per task, its executor's handle's ``submit_plain`` when direct-route calls may use
        #: it (no call hooks), filled as handles open and tasks are met.
        self.plain_submit: dict[int, PlainSubmit | None] = {}
        #: Held while a task met at run time is prepared (see ``prepare_task``).
        self.preparing = asyncio.Lock()
        #: Executors and tasks met at run time that are not started or set up yet.
        self.unprepared_executors: list[Executor] = []
        self.unprepared: set[int] = set()
        #: Called when a node completes (the scheduler's pump): the state does not import
        #: the loop that drives it.
        self.on_progress: Callable[[], None] = _nothing
        #: Direct-route calls built as a ``TaskCall`` (call hooks), and those with a
        #: checkpoint to save: what ``cascade.runtime.call.settle`` needs of them.
        self.reported: dict[asyncio.Future[Any], tuple[TaskCall, str]] = {}
        self.checkpointing: dict[asyncio.Future[Any], CacheContext] = {}
        #: Whether a plain call needs nothing noted about it (no start to report, no log
        #: mark): the direct route then hands it straight to its executor.
        self.plain_quiet = plan.report_plain is False and not plan.tag_attempts
        #: The call the direct route is submitting, while it is (a capturing run's log
        #: records of an ``async def`` call's eager first step are its; see
        #: cascade.records.capture).
        self.submitting: Node | None = None
        #: Tasks whose executor runs an ``async def`` call as a task on this loop, by id:
        #: their direct-route calls settle themselves (``cascade.runtime.call.settles_itself``,
        #: made into ``settling`` by the scheduler).
        self.on_loop: set[int] = set()
        self.settling: Callable[..., Any] = _nothing
        #: The context completion callbacks run in: the run's as it is once run-scoped
        #: resources are set up, so every task sees context variables those set.
        self.context = contextvars.copy_context()
        #: Streams hook: the run's streams, planned by the scheduler when the graph has any
        #: (``cascade.runtime.streams.plan_streams``); ``None`` otherwise.
        self.streams: StreamTable | None = None

    @property
    def inflight(self) -> dict[asyncio.Future[Any], Node]:
        """Direct-route calls in flight, future → node (read by cascade.records.capture)."""
        return self.scope.calls

    # -- transitions every route ends in ---------------------------------------------------

    def complete(self, index: int, value: Any) -> None:
        """Record a node's result and queue the dependents whose inputs are now complete."""
        self.results[index] = value
        self.completed[index] = 1
        if self.streams is not None:  # streams hook: end its stream, close its readings
            self.streams.settle(index, value, self.nodes[index].lazy.id)
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
            for parent in self.waiters.pop(index, ()):
                join = self.joins[parent]
                join.waiting -= 1
                if join.waiting == 0:
                    self.resolving.append(parent)
        self.finished += 1
        if self.finished == len(self.nodes) and not self.done.done():
            self.done.set_result(None)

    def fail(self, exc: BaseException, node: Node | None = None) -> None:
        """A node failed (or the run itself, ``node`` None): in a keep-going run only what
        depends on the node is left out; otherwise the run stops with ``exc``."""
        if self.plan.keep_going and node is not None and isinstance(exc, Exception):
            if isinstance(exc, MapItemsFailed):
                self.failures.update(exc.failures)
            else:
                self.failures[node.lazy.id] = exc
            self.failed[node.index] = 1
            self.any_failed = True
            self.complete(node.index, FAILED)
            return
        if self.error is None and not self.stopping:
            self.error = exc
            self.stop_launching()

    def stop_launching(self) -> None:
        """Start nothing more: the run is ending (a failure, or cleanup)."""
        self.stopping = True
        self.halted = True
        self.ready.clear()
        self.admitted.clear()
        if not self.done.done():
            self.done.set_result(None)

    def skip(self, node: Node, reason: str) -> None:
        self.skipped[node.index] = 1
        self.any_skipped = True
        self.report.skipped(node, node.lazy.id, reason)
        self.complete(node.index, SKIPPED)

    def not_run(self, node: Node, upstream: int) -> None:
        """An input failed (keep-going runs): the node does not run, naming that input."""
        self.failed[node.index] = 1
        culprit = self.nodes[upstream].lazy.id
        self.report.skipped(node, node.lazy.id, "UpstreamFailed", culprit)
        self.complete(node.index, FAILED)

    # -- executors ---------------------------------------------------------------------------

    async def open_executor(self, executor: Executor) -> None:
        """Open ``executor`` for this run (``cascade.executors.open_run``): its handle takes
        the run's calls from now on."""
        plan = self.plan
        info = RunInfo(plan.run_id, self.loop, plan.remote_providers, plan.ship_logs)
        opening = open_run(executor, info)
        handle = await opening.__aenter__()
        self.handles[id(executor)] = handle
        self._closers[id(executor)] = opening
        self.started_executors.append(executor)
        for key, (_, known) in plan.executor_of_task.items():
            if known is executor:
                self.plain_submit[key] = None if plan.builds_calls else handle.submit_plain
                if getattr(handle, "async_on_loop", False):
                    self.on_loop.add(key)

    async def close_executor(self, executor: Executor) -> None:
        """Close what ``open_executor`` opened: the executor ends its part of the run."""
        opening = self._closers.pop(id(executor), None)
        if opening is not None:
            await opening.__aexit__(None, None, None)

    def learned(self, task: Task[..., Any]) -> None:
        """A task met at run time whose executor is open already takes its fast path too."""
        handle = self.handles.get(id(self.plan.executor_for(task)[1]))
        if handle is not None and not self.plan.builds_calls:
            self.plain_submit[id(task)] = handle.submit_plain
            if getattr(handle, "async_on_loop", False):
                self.on_loop.add(id(task))

    # -- tasks met at run time -------------------------------------------------------------

    async def prepare_task(self, task: Task[..., Any]) -> None:
        """Start what a task met at run time needs: its executor, its run-scoped resources.

        Many calls of a new task (a fan-out) arrive here at once; one at a time goes in, so
        an executor is started and a run-scoped resource set up once per run, and the others
        find them ready (an async setup suspends while they wait)."""
        plan = self.plan
        async with self.preparing:
            if id(task) not in self.unprepared:
                return
            while self.unprepared_executors:
                executor = self.unprepared_executors[-1]
                await self.open_executor(executor)
                self.unprepared_executors.pop()
            if not plan.executor_for(task)[1].remote_resources:
                for name in plan.run_resources_of(task):
                    if name not in self.resources.instances:
                        await self.resources.enter(plan.providers[name], self.resources.instances)
            self.unprepared.discard(id(task))


def _nothing() -> None:
    return None


__all__ = ["Join", "RunState"]
