"""Growing a graph while it runs: the LazyResults a task returned become nodes of the same run.

``returned_lazies`` finds the LazyResults inside a task's value without paying per item for
the common case (a list of plain values); ``extend_graph`` appends the nodes the graph lacks,
in topological order, wiring their dependents; ``replace_node`` lets a task's node take over
the call it returned (tail calls), so a loop or recursion of any depth keeps one node alive.
"""

from __future__ import annotations

from typing import Any

from cascade.graph.build import Graph, Node, _contains_lazy, _make_node, direct_dependencies
from cascade.spec.task import LazyResult

#: Types whose instances hold no LazyResult: checked by exact type, in C, per item.
PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None), complex})
_PLAIN = PLAIN_TYPES
_CONTAINER_TYPES = (list, tuple, dict)


def returns_graph(value: Any) -> bool:
    """Whether ``value`` is a LazyResult or a list, tuple or dict holding one at any depth."""
    kind = type(value)
    if kind in _PLAIN:
        return False
    if isinstance(value, LazyResult):
        return True
    if not isinstance(value, _CONTAINER_TYPES):
        return False
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        items = item.values() if isinstance(item, dict) else item
        kinds = set(map(type, items))  # distinct types, found at C speed
        if kinds <= _PLAIN:
            continue
        if any(issubclass(k, LazyResult) for k in kinds):
            return True
        if any(issubclass(k, _CONTAINER_TYPES) for k in kinds):
            stack.extend(x for x in items if isinstance(x, _CONTAINER_TYPES))
    return False


def lazies_in(value: Any) -> list[LazyResult[Any]]:
    """Every LazyResult in a returned value, first to last (the value itself if it is one)."""
    if isinstance(value, LazyResult):
        return [value]
    return _contains_lazy(value)


class GraphCycleError(ValueError):
    """A task returned a graph that would wait for the task itself."""


def extend_graph(
    graph: Graph, roots: list[LazyResult[Any]], dependents: dict[int, list[int]]
) -> list[int]:
    """Append the nodes reachable from ``roots`` that ``graph`` lacks, dependencies first, and
    return their indices. Their edges go into ``dependents`` (upstream index → downstream
    indices), kept beside the nodes' own tuples so that growing never copies those."""
    index_of = graph.index_of
    added: list[int] = []
    on_path: set[int] = set()
    stack: list[tuple[LazyResult[Any], bool]] = [
        (r, False) for r in reversed(roots) if id(r) not in index_of
    ]
    while stack:
        lazy, expanded = stack.pop()
        key = id(lazy)
        if key in index_of:
            continue
        if not expanded:
            if key in on_path:
                raise GraphCycleError(f"the returned graph has a cycle through {lazy!r}")
            missing = [d for d in direct_dependencies(lazy) if id(d) not in index_of]
            if missing:
                on_path.add(key)
                stack.append((lazy, True))
                stack.extend((d, False) for d in reversed(missing))
                continue
        on_path.discard(key)
        node = _make_node(lazy, len(graph.nodes), index_of)
        index_of[key] = node.index
        graph.nodes.append(node)
        added.append(node.index)
        _wire(node, dependents)
    return added


def replace_node(
    graph: Graph, index: int, lazy: LazyResult[Any], dependents: dict[int, list[int]]
) -> Node:
    """Make node ``index`` run ``lazy`` instead of the call it ran (its dependents stay). The
    inputs of ``lazy`` must already be in the graph (``extend_graph`` them first)."""
    node = _make_node(lazy, index, graph.index_of)
    node.dependents = graph.nodes[index].dependents
    graph.nodes[index] = node
    graph.index_of[id(lazy)] = index
    _wire(node, dependents)
    return node


def _wire(node: Node, dependents: dict[int, list[int]]) -> None:
    for dep in node.deps:
        dependents.setdefault(dep, []).append(node.index)
