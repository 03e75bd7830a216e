"""Tasks that return graphs: the run grows by what a task returned and runs it.

When a task's value holds LazyResults, the calls it returned join the same run (same plan:
params, executors, resources, limits, caches, events) and the task's value becomes that
structure with every LazyResult replaced by its value, once they are all done. A task that
returns exactly one new call hands its own node over to it (a tail call), so a loop or a
recursion of any depth keeps one node, one result slot and one set of bookkeeping alive. A
LazyResult already in the run is not run again: its value is reused.

These are functions over the run's state (``cascade.runtime.state``): the scheduler calls
``expand`` when a task's value holds LazyResults and ``resolve`` when the calls it returned are
done; the state's ``complete`` counts the returned calls down.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from cascade.graph.build import KIND_PARAM, Node, direct_dependencies, resolve_nested
from cascade.graph.extend import GraphCycleError, extend_graph, lazies_in, replace_node
from cascade.runtime.markers import FAILED, SKIPPED, add_note
from cascade.runtime.plan import claim_param
from cascade.runtime.state import Join, RunState
from cascade.spec.params import ParamError
from cascade.spec.task import LazyResult, Param

# -- a task returned a graph ----------------------------------------------------------------


def expand(state: RunState, node: Node, value: Any) -> None:
    """Run what ``node``'s task returned; ``node`` completes when all of it has."""
    parent = node.lazy.id
    index_of = state.graph.index_of
    try:
        if (
            isinstance(value, LazyResult)
            and not isinstance(value, Param)
            and id(value) not in index_of
        ):
            _tail_call(state, node, value)
            return
        roots = lazies_in(value)
        added = extend_graph(state.graph, roots, state.extra_dependents)
        _grow(state, added, parent)
        children = tuple(dict.fromkeys(index_of[id(r)] for r in roots))
        _check_no_cycle(state, node.index, children)
    except (GraphCycleError, ParamError, TypeError, ValueError) as exc:
        add_note(exc, f"in the graph returned by task '{node.name}'")
        state.fail(exc, node)
        return
    join = Join(value, 0, children)
    for child in children:
        if not state.completed[child]:
            join.waiting += 1
            state.waiters.setdefault(child, []).append(node.index)
    state.joins[node.index] = join
    if join.waiting == 0:
        state.resolving.append(node.index)


def _tail_call(state: RunState, node: Node, call: LazyResult[Any]) -> None:
    """``node``'s task returned one new call: the node runs it in its place."""
    added = extend_graph(state.graph, direct_dependencies(call), state.extra_dependents)
    _grow(state, added, node.lazy.id)
    index_of = state.graph.index_of
    _check_no_cycle(state, node.index, tuple(index_of[id(d)] for d in direct_dependencies(call)))
    _retire(state, node.lazy)
    if state.report.succeeded_nodes:
        # Successes kept by node index are read when published: the returning task's own
        # must go out under its id before the node becomes the call it returned.
        state.report.publish_succeeded()
    new = replace_node(state.graph, node.index, call, state.extra_dependents)
    state.nodes[node.index] = new
    state.parent_of[node.index] = node.lazy.id
    _schedule_new(state, new)


def _grow(state: RunState, added: list[int], parent: str) -> None:
    count = len(state.graph.nodes)
    grow = count - len(state.results)
    if grow > 0:
        state.results.extend([None] * grow)
        state.pending.extend([0] * grow)
        state.skipped.extend(bytes(grow))
        state.failed.extend(bytes(grow))
        state.completed.extend(bytes(grow))
        state.report.grow(count)
    parent_of = state.parent_of
    for index in added:
        parent_of[index] = parent
    for index in added:
        _schedule_new(state, state.graph.nodes[index])


def _schedule_new(state: RunState, node: Node) -> None:
    plan = state.plan
    if node.kind == KIND_PARAM:
        param = node.lazy
        assert isinstance(param, Param)
        state.complete(node.index, claim_param(param, plan.params, plan.unclaimed))
        return
    task = node.lazy.task
    assert task is not None
    new_executor, run_scoped = plan.learn_task(task)
    if new_executor is not None:
        state.unprepared_executors.append(new_executor)
    else:
        state.learned(task)
    instances = state.resources.instances
    if new_executor is not None or any(name not in instances for name in run_scoped):
        state.unprepared.add(id(task))  # its first calls take the policy route, which prepares
    plan.attempt_gates(node)  # an unknown pool fails the task that returned this
    completed = state.completed
    waiting = sum(1 for dep in node.deps if not completed[dep])
    state.pending[node.index] = waiting
    if waiting == 0:
        state.ready.append(node.index)


def _check_no_cycle(state: RunState, parent: int, children: tuple[int, ...]) -> None:
    """A returned graph that needs the returning task itself would wait forever."""
    completed, nodes = state.completed, state.nodes
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


def _retire(state: RunState, lazy: LazyResult[Any]) -> None:
    """Keep ``lazy`` known to the run while it is alive (so returning it again reuses its
    value), and forget its id once it is gone (ids are reused)."""
    key = id(lazy)
    index_of, retired = state.graph.index_of, state.retired

    def forget(_: Any, key: int = key) -> None:
        retired.pop(key, None)
        index_of.pop(key, None)

    retired[key] = weakref.ref(lazy, forget)


# -- the returned graph is done ---------------------------------------------------------------


def resolve(state: RunState, index: int) -> None:
    """Every call ``index``'s task returned is done: its value is what it returned, each
    LazyResult replaced by its value (or it failed, if one of them did)."""
    join = state.joins.pop(index)
    if any(state.failed[c] for c in join.children):
        state.failed[index] = 1
        state.any_failed = True
        state.complete(index, FAILED)
        return
    try:
        value = resolve_nested(join.value, _Resolved(state.results), state.graph.index_of)
    except Exception as exc:
        add_note(exc, f"while resolving the graph returned by task '{state.nodes[index].name}'")
        state.fail(exc, state.nodes[index])
        return
    state.complete(index, value)


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
