"""Tasks that return graphs: the run grows by what a task returned and runs it.

When a task's value holds LazyResults, the calls it returned join the same run (same plan:
params, executors, resources, limits, caches, events) and the task's value becomes that
structure with every LazyResult replaced by its value, once they are all done. A task that
returns exactly one new call hands its own node over to it (a tail call), so a loop or a
recursion of any depth keeps one node, one result slot and one set of bookkeeping alive. A
LazyResult already in the run is not run again: its value is reused.

``GraphGrowth`` is a part of the scheduler's ``Run`` kept in its own module; it uses the
run's arrays and its ``_complete``/``_fail`` and is used by its completion path.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cascade.graph.build import KIND_PARAM, Graph, Node, direct_dependencies, resolve_nested
from cascade.graph.extend import GraphCycleError, extend_graph, lazies_in, replace_node
from cascade.runtime.markers import FAILED, SKIPPED, add_note
from cascade.runtime.plan import RunPlan, claim_param
from cascade.spec.params import ParamError
from cascade.spec.task import LazyResult, Param


@dataclass(slots=True)
class Join:
    """A node waiting for the LazyResults its task returned."""

    value: Any
    waiting: int
    children: tuple[int, ...]


class GraphGrowth:
    plan: RunPlan
    graph: Graph
    nodes: list[Node]
    results: list[Any]
    pending: list[int]
    skipped: bytearray
    failed: bytearray
    completed: bytearray
    started_at: list[float] | None
    ready: deque[int]
    resolving: deque[int]
    joins: dict[int, Join]
    waiters: dict[int, list[int]]
    extra_dependents: dict[int, list[int]]
    retired: dict[int, weakref.ref[Any]]
    any_skipped: bool
    any_failed: bool

    def _complete(self, index: int, value: Any) -> None:
        raise NotImplementedError

    def _fail(self, exc: BaseException, node: Node | None = None) -> None:
        raise NotImplementedError

    # -- a task returned a graph ------------------------------------------------------------

    def _expand(self, node: Node, value: Any) -> None:
        """Run what ``node``'s task returned; ``node`` completes when all of it has."""
        parent = node.lazy.id
        index_of = self.graph.index_of
        try:
            if (
                isinstance(value, LazyResult)
                and not isinstance(value, Param)
                and id(value) not in index_of
            ):
                self._tail_call(node, value)
                return
            roots = lazies_in(value)
            added = extend_graph(self.graph, roots, self.extra_dependents)
            self._grow(added, parent)
            children = tuple(dict.fromkeys(index_of[id(r)] for r in roots))
            self._check_no_cycle(node.index, children)
        except (GraphCycleError, ParamError, TypeError, ValueError) as exc:
            add_note(exc, f"in the graph returned by task '{node.name}'")
            self._fail(exc, node)
            return
        join = Join(value, 0, children)
        for child in children:
            if not self.completed[child]:
                join.waiting += 1
                self.waiters.setdefault(child, []).append(node.index)
        self.joins[node.index] = join
        if join.waiting == 0:
            self.resolving.append(node.index)

    def _tail_call(self, node: Node, call: LazyResult[Any]) -> None:
        """``node``'s task returned one new call: the node runs it in its place."""
        added = extend_graph(self.graph, direct_dependencies(call), self.extra_dependents)
        self._grow(added, node.lazy.id)
        index_of = self.graph.index_of
        self._check_no_cycle(node.index, tuple(index_of[id(d)] for d in direct_dependencies(call)))
        self._retire(node.lazy, node.index)
        if self.plan.succeeded_nodes:
            # Successes kept by node index are read when published: the returning task's
            # own must go out under its id before the node becomes the call it returned.
            self.plan.publish_succeeded()
        new = replace_node(self.graph, node.index, call, self.extra_dependents)
        self.nodes[node.index] = new
        self.plan.parent_of[node.index] = node.lazy.id
        self._schedule_new(new)

    def _grow(self, added: list[int], parent: str) -> None:
        count = len(self.graph.nodes)
        grow = count - len(self.results)
        if grow > 0:
            self.results.extend([None] * grow)
            self.pending.extend([0] * grow)
            self.skipped.extend(bytes(grow))
            self.failed.extend(bytes(grow))
            self.completed.extend(bytes(grow))
            if self.started_at is not None:
                self.started_at.extend([0.0] * grow)
            if self.plan.ended_at is not None:
                self.plan.ended_at.extend([0.0] * grow)
        parent_of = self.plan.parent_of
        for index in added:
            parent_of[index] = parent
        for index in added:
            self._schedule_new(self.graph.nodes[index])

    def _schedule_new(self, node: Node) -> None:
        if node.kind == KIND_PARAM:
            self._complete(node.index, self._param_value(node.lazy))  # type: ignore[arg-type]
            return
        self.plan.learn_task(node.lazy.task)  # type: ignore[arg-type]
        self.plan.attempt_gates(node)  # an unknown pool fails the task that returned this
        completed = self.completed
        waiting = sum(1 for dep in node.deps if not completed[dep])
        self.pending[node.index] = waiting
        if waiting == 0:
            self.ready.append(node.index)

    def _param_value(self, param: Param[Any]) -> Any:
        return claim_param(param, self.plan.params, self.plan.unclaimed)

    def _check_no_cycle(self, parent: int, children: tuple[int, ...]) -> None:
        """A returned graph that needs the returning task itself would wait forever."""
        completed, nodes = self.completed, self.nodes
        seen: set[int] = set()
        stack = [c for c in children if not completed[c]]
        while stack:
            index = stack.pop()
            if index == parent:
                raise GraphCycleError(
                    f"task '{nodes[parent].name}' returned a graph that depends on the task "
                    "itself, so it would wait for itself forever"
                )
            if index in seen:
                continue
            seen.add(index)
            stack.extend(d for d in nodes[index].deps if not completed[d])

    def _retire(self, lazy: LazyResult[Any], index: int) -> None:
        """Keep ``lazy`` known to the run while it is alive (so returning it again reuses
        its value), and forget its id once it is gone (ids are reused)."""
        key = id(lazy)
        index_of, retired = self.graph.index_of, self.retired

        def forget(_: Any, key: int = key) -> None:
            retired.pop(key, None)
            index_of.pop(key, None)

        retired[key] = weakref.ref(lazy, forget)

    # -- the returned graph is done ---------------------------------------------------------

    def _resolve(self, index: int) -> None:
        join = self.joins.pop(index)
        if any(self.failed[c] for c in join.children):
            self.failed[index] = 1
            self.any_failed = True
            self._complete(index, FAILED)
            return
        try:
            value = resolve_nested(join.value, _Resolved(self.results), self.graph.index_of)
        except Exception as exc:
            add_note(exc, f"while resolving the graph returned by task '{self.nodes[index].name}'")
            self._fail(exc, self.nodes[index])
            return
        self._complete(index, value)

    def _wake_parents(self, index: int) -> None:
        for parent in self.waiters.pop(index, ()):
            join = self.joins[parent]
            join.waiting -= 1
            if join.waiting == 0:
                self.resolving.append(parent)


class _Resolved(Sequence[Any]):
    """The run's results as a resolved graph shows them: a skipped task's value is None."""

    __slots__ = ("results",)

    def __init__(self, results: list[Any]) -> None:
        self.results = results

    def __getitem__(self, index: Any) -> Any:
        value = self.results[index]
        return None if value is SKIPPED else value

    def __len__(self) -> int:
        return len(self.results)
