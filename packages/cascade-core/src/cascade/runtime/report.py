"""What a run says about its tasks: the one place task events are built.

Every route a call takes reports through here: an attempt's start (``started``, or
``announce`` for a call built as a ``TaskCall``, which runs the call hooks first), its end
(``ended``), a skip, a wait at a gate, a retry. The plan decided once which events anyone
wants; an event nobody wants is never built, and building one never changes what runs.

Successes that only ``TasksSucceeded`` wants (the recorder's and tracing's path) are kept as
columns and published once per event-loop pass (``publish_succeeded``): no event and no tuple
per call (``benchmarks/bench_records.py``), and no event per call for a tracer, which ends its
spans from the columns (``benchmarks/bench_otel.py``, the sdk row). A call that has no
``TaskCall`` is reported from what is kept here by node index: when it started and, where an
attempt's end is wanted, when its own code ended (``cascade.runtime.clock``).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from operator import attrgetter, itemgetter
from typing import Any

from cascade.events import (
    SucceededAttempt,
    TaskCacheMissed,
    TaskEvent,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskSkipped,
    TasksSucceeded,
    TaskWaiting,
    describe_error,
    make_event,
)
from cascade.executors import TaskCall
from cascade.graph.build import Node
from cascade.graph.extend import PLAIN_TYPES, returns_graph
from cascade.runtime.limits import Gate
from cascade.runtime.plan import RunPlan
from cascade.spec.cache_policy import CacheMiss

#: What ``publish_succeeded`` reads of each node, task and executor entry, in C.
_LAZY = attrgetter("lazy")
_TASK = attrgetter("task")
_ID = attrgetter("id")
_NAME = attrgetter("name")
_FIRST = itemgetter(0)


class Reporter:
    """Builds and publishes one run's task events; see the module docstring."""

    def __init__(self, plan: RunPlan, parent_of: dict[int, str], count: int) -> None:
        self.plan = plan
        self.bus = plan.bus
        self.run_id = plan.run_id
        self.parent_of = parent_of
        #: Calls that waited at a gate: task id → (since, what for), read when they start.
        self.waits: dict[str, tuple[float, list[str]]] = {}
        #: Succeeded attempts not published yet in a ``TasksSucceeded``: those reported with
        #: their fields, and the direct route's by node index and end time.
        self.succeeded: list[SucceededAttempt] = []
        self.succeeded_nodes: list[int] = []
        self.succeeded_ends: list[float] = []
        #: The ids of those whose value was a graph (``TasksSucceeded.returned_graphs``).
        self.succeeded_graphs: list[str] = []
        #: When the direct route's calls without a ``TaskCall`` started and ended, by node
        #: index (a float per node: nothing for the collector to walk), for their events.
        self.started_at: list[float] | None = [0.0] * count if plan.report_plain else None
        self.ended_at: list[float] | None = [0.0] * count if plan.time_plain else None

    def grow(self, count: int) -> None:
        """The graph grew to ``count`` nodes."""
        for times in (self.started_at, self.ended_at):
            if times is not None and len(times) < count:
                times.extend([0.0] * (count - len(times)))

    # -- an attempt starts -------------------------------------------------------------------

    def announce(self, call: TaskCall, executor_name: str) -> None:
        """Just before a call built as a ``TaskCall`` is submitted: run the call hooks in the
        attempt's own context, publish its start and start its clock."""
        plan = self.plan
        if self.waits:
            wait = self.waits.pop(call.task_id, None)
            if wait is not None:
                call.waited, call.waited_for = time.monotonic() - wait[0], tuple(wait[1])
        if plan.call_hooks:
            context = contextvars.copy_context()
            for hook in plan.call_hooks:
                context.run(hook, call)
            call.context = context
        if plan.want_started:
            self.started(
                call.task_id,
                call.task_name,
                call.parent_task_id,
                call.attempt,
                executor_name,
                call.waited,
                call.waited_for,
            )
        call.start_time = time.time()

    def started(
        self,
        task_id: str,
        task_name: str,
        parent_task_id: str | None,
        attempt: int,
        executor_name: str,
        waited: float | None = None,
        waited_for: tuple[str, ...] = (),
    ) -> None:
        """Publish ``TaskExecutionStarted`` (a call without a ``TaskCall`` has its wait
        taken from ``waits``)."""
        if waited is None and self.waits:
            wait = self.waits.pop(task_id, None)
            if wait is not None:
                waited, waited_for = time.monotonic() - wait[0], tuple(wait[1])
        self.bus.publish(
            make_event(
                TaskExecutionStarted,
                run_id=self.run_id,
                task_id=task_id,
                task_name=task_name,
                parent_task_id=parent_task_id,
                attempt=attempt,
                executor=executor_name,
                waited=waited or 0.0,
                waited_for=waited_for,
            )
        )

    # -- an attempt ends ---------------------------------------------------------------------

    def call_ended(
        self,
        call: TaskCall,
        executor_name: str,
        value: Any,
        exc: BaseException | None,
        *,
        cancelled: bool = False,
        will_retry: bool = False,
        fell_back: bool = False,
    ) -> None:
        """How an attempt built as a ``TaskCall`` ended."""
        self.ended(
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

    def node_ended(
        self, node: Node, value: Any, exc: BaseException | None, cancelled: bool = False
    ) -> None:
        """How a direct-route call without a ``TaskCall`` ended, from the times kept by its
        node index. A success only ``TasksSucceeded`` wants is kept as its index and end time
        (``publish_succeeded`` makes them columns)."""
        plan = self.plan
        started_at = self.started_at
        if started_at is None:
            return
        ended_at = self.ended_at
        index = node.index
        if exc is None and not cancelled and not plan.want_succeeded:
            if plan.want_bulk_successes:
                if not self.succeeded_nodes and not self.succeeded:
                    plan.loop.call_soon(self.publish_succeeded)
                self.succeeded_nodes.append(index)
                self.succeeded_ends.append(
                    (ended_at[index] if ended_at is not None else 0.0) or time.time()
                )
                if type(value) not in PLAIN_TYPES and returns_graph(value):
                    self.succeeded_graphs.append(node.lazy.id)
            return
        task = node.lazy.task
        assert task is not None
        self.ended(
            node.lazy.id,
            task.name,
            self.parent_of.get(index) if self.parent_of else None,
            1,
            started_at[index] or None,
            (ended_at[index] if ended_at is not None else 0.0) or None,
            plan.executor_for(task)[0],
            value,
            exc,
            cancelled=cancelled,
        )

    def ended(
        self,
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
        """Publish how an attempt ended, if anyone wants its status (``end_time`` None:
        now)."""
        plan = self.plan
        if cancelled or isinstance(exc, asyncio.CancelledError):
            if not plan.want_cancelled:
                return
            status = "Cancelled"
        elif exc is None:
            if plan.want_bulk_successes:
                end_time = end_time or time.time()
                if not self.succeeded and not self.succeeded_nodes:
                    plan.loop.call_soon(self.publish_succeeded)
                self.succeeded.append(
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
                if type(value) not in PLAIN_TYPES and returns_graph(value):
                    self.succeeded_graphs.append(task_id)
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
            "run_id": self.run_id,
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
        self.bus.publish(make_event(TaskExecutionFinished, **fields))

    def publish_succeeded(self) -> None:
        """Publish the succeeded attempts kept so far (also called before ``RunFinished``,
        and before a node is replaced by the call its task returned).

        The direct route's successes become columns here, each built by one pass in C over
        the node indices (and a column that is one value over and over, as a fan-out's task
        names are, by repeating it): a wide run's successes cost two list appends each on
        the loop rather than a call and a tuple (``benchmarks/bench_records.py``)."""
        indices, rows = self.succeeded_nodes, self.succeeded
        if not indices and not rows:
            return
        ends, graphs = self.succeeded_ends, self.succeeded_graphs
        self.succeeded_nodes, self.succeeded_ends, self.succeeded = [], [], []
        if graphs:
            self.succeeded_graphs = []
        plan = self.plan
        columns: list[tuple[Any, ...]] = []
        if indices:
            count = len(indices)
            lazies = list(map(_LAZY, map(plan.graph.nodes.__getitem__, indices)))
            tasks = list(map(_TASK, lazies))
            if len(dict.fromkeys(map(id, tasks))) == 1:
                names: tuple[str, ...] = (tasks[0].name,) * count
                executors = (plan.executor_for(tasks[0])[0],) * count
            else:
                names = tuple(map(_NAME, tasks))
                executors = tuple(
                    map(_FIRST, map(plan.executor_of_task.__getitem__, map(id, tasks)))
                )
            started_at = self.started_at
            assert started_at is not None
            columns = [
                tuple(map(_ID, lazies)),
                names,
                tuple(map(self.parent_of.get, indices)) if self.parent_of else (None,) * count,
                (1,) * count,
                tuple(map(started_at.__getitem__, indices)),
                tuple(ends),
                executors,
            ]
        if rows:
            more = list(zip(*rows, strict=True))
            columns = [a + b for a, b in zip(columns, more, strict=True)] if columns else more
        ids, names, parents, numbers, starts, ended, executors = columns
        self.bus.publish(
            make_event(
                TasksSucceeded,
                run_id=self.run_id,
                task_ids=ids,
                task_names=names,
                parent_task_ids=parents,
                attempt_numbers=numbers,
                start_times=starts,
                end_times=ended,
                executors=executors,
                returned_graphs=tuple(graphs),
            )
        )

    # -- other task events -------------------------------------------------------------------

    def skipped(self, node: Node, task_id: str, reason: str, upstream: str | None = None) -> None:
        if self.plan.want_skipped:
            self.task_event(TaskSkipped, node, task_id, reason=reason, upstream=upstream)

    def cache_missed(self, node: Node, task_id: str, miss: CacheMiss) -> None:
        """A call's cache missed and said why (``TaskCacheMissed``), a changed input named by
        where it comes from in the run's graph."""
        if not self.bus.wants(TaskCacheMissed):
            return
        # Loaded here, not with the engine: only a policy that explained a miss gets here,
        # and it loaded the caching modules already (``import cascade`` loads none of them).
        from cascade.caching.miss import describe_miss

        reason = describe_miss(miss, self.plan.graph, node)
        self.task_event(TaskCacheMissed, node, task_id, reason=reason)

    def waiting(self, node: Node, task_id: str, gate: Gate) -> None:
        """A call waits at ``gate``: say so to whoever listens, and remember it for the
        call's start event."""
        plan = self.plan
        if plan.want_started or plan.builds_calls:  # read by the start event or a hook
            self.waits.setdefault(task_id, (time.monotonic(), []))[1].append(gate.name)
        if plan.want_waiting:
            self.task_event(
                TaskWaiting, node, task_id, waiting_for=gate.name, queued=gate.queued() + 1
            )

    def task_event(self, kind: type[TaskEvent], node: Node, task_id: str, **fields: Any) -> None:
        """Publish a task event of ``node`` (or one of its map items, ``task_id``) with the
        fields every task event has filled in: the run, the task and its parent."""
        self.bus.publish(
            make_event(
                kind,
                run_id=self.run_id,
                task_id=task_id,
                task_name=node.name,
                parent_task_id=self.parent_of.get(node.index),
                **fields,
            )
        )


__all__ = ["Reporter"]
