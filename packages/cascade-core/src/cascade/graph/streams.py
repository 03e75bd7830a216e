"""Which edges of a graph carry items one by one (docs/streams.md).

A *producer* is a generator task's call or a ``.map``; a *stream edge* runs from a producer to
a ``.map`` that takes it as an iterated argument, or to a ``cs.fold`` that takes it as its
items, when the producer is used nowhere else in that call (a producer also passed whole,
nested in a container, as a condition or in ``.after`` is awaited whole). The runtime
pipelines exactly these edges (``cascade.runtime.streams``), and graphs and the dry-run show
them, so what is drawn is what runs.
"""

from __future__ import annotations

from cascade.graph.build import KIND_MAP, Node, direct_dependencies
from cascade.spec.fold import FOLD
from cascade.spec.task import MappedLazyResult


def is_generator(node: Node) -> bool:
    """Whether the node calls a generator task (its value is a stream)."""
    task = node.lazy.task
    return task is not None and task.is_generator


def is_fold(node: Node) -> bool:
    return node.lazy.task is FOLD


def can_stream(node: Node) -> bool:
    """Whether the node can hand its items on one by one."""
    return node.kind == KIND_MAP or is_generator(node)


def stream_inputs(node: Node, nodes: list[Node]) -> list[tuple[int, int | str]]:
    """The producers ``node`` reads item by item, each with the argument (position or
    keyword) it arrives in, in argument order; empty for most nodes."""
    lazy = node.lazy
    slots: list[tuple[int, int | str]] = []
    if node.kind == KIND_MAP:
        assert isinstance(lazy, MappedLazyResult)
        iterated_args = set(lazy.iterated_args)
        iterated_kwargs = set(lazy.iterated_kwargs)
        for pos, dep in zip(node.arg_positions, node.arg_inputs, strict=True):
            if pos in iterated_args and can_stream(nodes[dep]):
                slots.append((dep, pos))
        for key, dep in node.kwarg_slots:
            if key in iterated_kwargs and can_stream(nodes[dep]):
                slots.append((dep, key))
    elif is_fold(node):
        for pos, dep in zip(node.arg_positions, node.arg_inputs, strict=True):
            if pos == 1 and can_stream(nodes[dep]):
                slots.append((dep, pos))
        for key, dep in node.kwarg_slots:
            if key == "items" and can_stream(nodes[dep]):
                slots.append((dep, key))
    if not slots:
        return slots
    uses: dict[int, int] = {}
    for upstream in direct_dependencies(lazy):
        uses[id(upstream)] = uses.get(id(upstream), 0) + 1
    streamed: dict[int, int] = {}
    for dep, _ in slots:
        streamed[dep] = streamed.get(dep, 0) + 1
    return [(dep, key) for dep, key in slots if uses[id(nodes[dep].lazy)] == streamed[dep]]
