"""Turn the LazyResults reachable from the targets into a DAG in topological order.

Everything here is iterative (explicit stacks), so a 100,000-deep chain builds without touching
Python's recursion limit, in time linear in nodes plus edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cascade.spec.task import MISSING, LazyResult, MappedLazyResult, Param

KIND_TASK = 0
KIND_PARAM = 1
KIND_MAP = 2

_CONTAINERS = (list, tuple, dict)


def _contains_lazy(value: Any) -> list[LazyResult[Any]]:
    """Every LazyResult inside a list/tuple/dict at any depth (empty for plain literals)."""
    found: list[LazyResult[Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, LazyResult):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


@dataclass(slots=True)
class Node:
    """One graph node. ``arg_slots``/``kwarg_slots`` say where top-level upstream results go;
    ``nested`` lists argument positions holding containers with LazyResults inside."""

    index: int
    lazy: LazyResult[Any]
    kind: int
    deps: tuple[int, ...]
    arg_slots: tuple[tuple[int, int], ...] = ()
    kwarg_slots: tuple[tuple[str, int], ...] = ()
    nested_args: tuple[int, ...] = ()
    nested_kwargs: tuple[str, ...] = ()
    condition: int = -1
    value_deps: tuple[int, ...] = ()
    # A tuple of ints: once built, the garbage collector stops tracking it, which keeps
    # collections during a wide run short.
    dependents: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.lazy.name


@dataclass(slots=True)
class Graph:
    """Nodes in topological order (every node after its dependencies)."""

    nodes: list[Node]
    index_of: dict[int, int]
    targets: list[int]

    def __len__(self) -> int:
        return len(self.nodes)

    def index(self, lazy: LazyResult[Any]) -> int:
        return self.index_of[id(lazy)]


def direct_dependencies(lazy: LazyResult[Any]) -> list[LazyResult[Any]]:
    """Upstream LazyResults of one node: arguments (nested too), its condition, ``after``."""
    deps: list[LazyResult[Any]] = []
    for value in lazy.args:
        if isinstance(value, LazyResult):
            deps.append(value)
        elif isinstance(value, _CONTAINERS):
            deps.extend(_contains_lazy(value))
    for value in lazy.kwargs.values():
        if isinstance(value, LazyResult):
            deps.append(value)
        elif isinstance(value, _CONTAINERS):
            deps.extend(_contains_lazy(value))
    if isinstance(lazy.condition, LazyResult):
        deps.append(lazy.condition)
    deps.extend(lazy.after_deps)
    return deps


def _make_node(lazy: LazyResult[Any], index: int, index_of: dict[int, int]) -> Node:
    if isinstance(lazy, Param):
        return Node(index, lazy, KIND_PARAM, ())
    if (
        not lazy.args
        and not lazy.kwargs
        and not lazy.after_deps
        and type(lazy) is LazyResult
        and not isinstance(lazy.condition, LazyResult)
    ):
        return Node(index, lazy, KIND_TASK, ())
    arg_slots: list[tuple[int, int]] = []
    nested_args: list[int] = []
    value_deps: list[int] = []
    for pos, value in enumerate(lazy.args):
        if isinstance(value, LazyResult):
            arg_slots.append((pos, index_of[id(value)]))
        elif isinstance(value, _CONTAINERS) and (inner := _contains_lazy(value)):
            nested_args.append(pos)
            value_deps.extend(index_of[id(x)] for x in inner)
    kwarg_slots: list[tuple[str, int]] = []
    nested_kwargs: list[str] = []
    for key, value in lazy.kwargs.items():
        if isinstance(value, LazyResult):
            kwarg_slots.append((key, index_of[id(value)]))
        elif isinstance(value, _CONTAINERS) and (inner := _contains_lazy(value)):
            nested_kwargs.append(key)
            value_deps.extend(index_of[id(x)] for x in inner)
    value_deps.extend(d for _, d in arg_slots)
    value_deps.extend(d for _, d in kwarg_slots)
    condition = -1
    if isinstance(lazy.condition, LazyResult):
        condition = index_of[id(lazy.condition)]
        value_deps.append(condition)
    deps = set(value_deps)
    deps.update(index_of[id(x)] for x in lazy.after_deps)
    kind = KIND_MAP if isinstance(lazy, MappedLazyResult) else KIND_TASK
    return Node(
        index,
        lazy,
        kind,
        tuple(deps),
        tuple(arg_slots),
        tuple(kwarg_slots),
        tuple(nested_args),
        tuple(nested_kwargs),
        condition,
        tuple(set(value_deps)),
    )


def build_graph(targets: list[LazyResult[Any]]) -> Graph:
    """Collect every node reachable from ``targets`` (shared LazyResults once) in topological
    order, with each node's dependents filled in."""
    index_of: dict[int, int] = {}
    nodes: list[Node] = []
    on_path: set[int] = set()
    stack: list[tuple[LazyResult[Any], list[LazyResult[Any]] | None]] = [
        (t, None) for t in reversed(targets)
    ]
    while stack:
        lazy, deps = stack.pop()
        key = id(lazy)
        if key in index_of:
            continue
        if deps is None:
            if not (lazy.args or lazy.kwargs or lazy.after_deps) and lazy.condition is MISSING:
                # A call without inputs (the leaves of a wide fan-out): the cheapest case.
                kind = KIND_PARAM if isinstance(lazy, Param) else KIND_TASK
                index_of[key] = len(nodes)
                nodes.append(Node(len(nodes), lazy, kind, ()))
                continue
            if key in on_path:
                raise ValueError(f"the graph has a cycle through {lazy!r}")
            deps = direct_dependencies(lazy)
            if not deps:  # a leaf: no need to come back to it
                node = _make_node(lazy, len(nodes), index_of)
                index_of[key] = node.index
                nodes.append(node)
                continue
            on_path.add(key)
            stack.append((lazy, deps))
            stack.extend((d, None) for d in reversed(deps) if id(d) not in index_of)
            continue
        node = _make_node(lazy, len(nodes), index_of)
        index_of[key] = node.index
        on_path.discard(key)
        nodes.append(node)
    dependents: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for dep in node.deps:
            dependents[dep].append(node.index)
    for node, found in zip(nodes, dependents, strict=True):
        if found:
            node.dependents = tuple(found)
    return Graph(nodes, index_of, [index_of[id(t)] for t in targets])


def resolve_nested(value: Any, results: Sequence[Any], index_of: dict[int, int]) -> Any:
    """Rebuild a container, replacing each LazyResult inside it with its result. Containers
    without LazyResults inside are passed through as the same object."""
    if isinstance(value, LazyResult):
        return results[index_of[id(value)]]
    if isinstance(value, dict):
        if not _contains_lazy(value):
            return value
        return {k: resolve_nested(v, results, index_of) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if not _contains_lazy(value):
            return value
        items = [resolve_nested(v, results, index_of) for v in value]
        if isinstance(value, list):
            return items
        if hasattr(value, "_fields"):  # namedtuple
            return type(value)(*items)
        return type(value)(items)
    return value


__all__ = ["KIND_MAP", "KIND_PARAM", "KIND_TASK", "Graph", "Node", "build_graph", "resolve_nested"]
