"""Text views of a graph: Graphviz DOT, Mermaid, and the dry-run plan, and the notebook
display of a LazyResult's graph built from them. Iterative throughout."""

from __future__ import annotations

import sys
from typing import IO, Any

from cascade.graph.build import KIND_MAP, KIND_PARAM, Graph, Node, build_graph
from cascade.graph.display import MAX_DRAWN_NODES, DryRunPlan, GraphText, mermaid_markdown, svg
from cascade.graph.streams import is_generator, stream_inputs
from cascade.graph.targets import normalize_target
from cascade.spec.task import MISSING, LazyResult, Param
from cascade.spec.views import register_graph_display


def _graph_of(target: Any) -> Graph:
    targets, _ = normalize_target(target)
    return build_graph(targets)


def _label(node: Node) -> str:
    """A node's name, marked ``[map]`` for a map, ``[stream]`` for a generator task's call, and
    ``[dynamic]`` for a task declared with ``dynamic=True``
    (any task may return a graph; only declared ones are marked)."""
    if node.kind == KIND_PARAM:
        return node.lazy.name
    marks = []
    if node.kind == KIND_MAP:
        marks.append("map")
    if is_generator(node):
        marks.append(f"stream, buffer {node.lazy.task.buffer}")  # type: ignore[union-attr]
    if _is_dynamic(node):
        marks.append("dynamic")
    marks.extend(_scheduling(node))
    return f"{node.name} [{', '.join(marks)}]" if marks else node.name


def _scheduling(node: Node) -> list[str]:
    """Pools, rate limit and priority of a call, as graphs and the dry-run show them."""
    lazy = node.lazy
    found = [f"pool {name}×{slots}" for name, slots in lazy.pools]
    rate = getattr(lazy.task, "rate", None)
    if rate is not None:
        found.append(f"rate {rate}")
    if lazy.priority:
        found.append(f"priority {lazy.priority}")
    return found


def _is_dynamic(node: Node) -> bool:
    return bool(getattr(node.lazy.task, "dynamic", False))


#: What an edge carries: only the order (``.after``), a value, or items one by one (a stream).
ORDER, VALUE, ITEMS = 0, 1, 2


def _edges(graph: Graph) -> list[tuple[int, int, int]]:
    """``(upstream, downstream, what it carries)`` for every edge."""
    edges = []
    for node in graph.nodes:
        data = set(node.value_deps)
        items = {dep for dep, _ in stream_inputs(node, graph.nodes)}
        for dep in sorted(node.deps):
            edges.append(
                (dep, node.index, ITEMS if dep in items else VALUE if dep in data else ORDER)
            )
    return edges


def visualize(target: Any, format: str = "dot") -> GraphText:
    """The graph behind ``target`` as Graphviz DOT (``format="dot"``) or Mermaid
    (``format="mermaid"``) text. Ordering-only edges (``.after``) are dashed; edges that carry
    a stream's items one by one (docs/streams.md) are bold and labelled ``items``.

    The text is a ``str``; a notebook displays it drawn (DOT as SVG when Graphviz is installed,
    Mermaid by front ends that draw it)."""
    return GraphText(_text(_graph_of(target), format), format)


def _text(graph: Graph, format: str) -> str:
    if format == "dot":
        lines = ["digraph cascade {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
        for node in graph.nodes:
            shape = ", shape=ellipse" if node.kind == KIND_PARAM else ""
            label = _label(node).replace('"', '\\"')
            lines.append(f'  n{node.index} [label="{label}"{shape}];')
        styles = {ORDER: " [style=dashed]", VALUE: "", ITEMS: ' [style=bold, label="items"]'}
        for up, down, carries in _edges(graph):
            lines.append(f"  n{up} -> n{down}{styles[carries]};")
        lines.append("}")
        return "\n".join(lines) + "\n"
    if format == "mermaid":
        lines = ["graph LR"]
        for node in graph.nodes:
            label = _label(node).replace('"', "#quot;")
            if node.kind == KIND_PARAM:
                lines.append(f'  n{node.index}(["{label}"])')
            else:
                lines.append(f'  n{node.index}["{label}"]')
        arrows = {ORDER: "-.->", VALUE: "-->", ITEMS: "==>|items|"}
        for up, down, carries in _edges(graph):
            lines.append(f"  n{up} {arrows[carries]} n{down}")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown graph format {format!r}; use 'dot' or 'mermaid'")


def _show(value: Any) -> str:
    if isinstance(value, Param):
        return f"<param {value.param_name}>"
    if isinstance(value, LazyResult):
        return f"<{value.id}>"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plan(target: Any) -> list[dict[str, Any]]:
    """The order tasks would start in a sequential run, each with its inputs (literals shown
    as values, upstream results as ``<task-id>``). Params are inputs, not steps."""
    graph = _graph_of(target)
    steps = []
    for node in graph.nodes:
        if node.kind == KIND_PARAM:
            continue
        lazy = node.lazy
        inputs = [_show(v) for v in lazy.args]
        inputs += [f"{k}={_show(v)}" for k, v in lazy.kwargs.items()]
        extras = []
        if lazy.condition is not MISSING:
            extras.append(f"if {_show(lazy.condition)}")
        if lazy.after_deps:
            extras.append("after " + ", ".join(_show(d) for d in lazy.after_deps))
        extras.extend(_scheduling(node))
        streams_from = [graph.nodes[d].lazy.id for d, _ in stream_inputs(node, graph.nodes)]
        if streams_from:
            extras.append("item by item from " + ", ".join(f"<{d}>" for d in streams_from))
        if is_generator(node):
            extras.append(f"stream, buffer {lazy.task.buffer}")  # type: ignore[union-attr]
        callee = f"{node.name}.map" if node.kind == KIND_MAP else node.name
        steps.append(
            {
                "task_id": lazy.id,
                "task": node.name,
                "map": node.kind == KIND_MAP,
                "dynamic": _is_dynamic(node),
                "stream": is_generator(node),
                "streams_from": streams_from,
                "call": f"{callee}({', '.join(inputs)})",
                "notes": extras,
                "depends_on": [graph.nodes[d].lazy.id for d in sorted(node.deps)],
            }
        )
    return steps


def dry_run(target: Any, stream: IO[str] | None = None) -> DryRunPlan:
    """Print the planned execution order with literal inputs, running nothing; returns the
    plan as data (see ``plan``): a list of steps, which notebooks display as a table."""
    out = stream if stream is not None else sys.stdout
    steps = DryRunPlan(plan(target))
    print(f"{len(steps)} task(s) would run, in this order:", file=out)
    for number, step in enumerate(steps, 1):
        notes = f"   [{'; '.join(step['notes'])}]" if step["notes"] else ""
        print(f"{number:>4}. {step['call']}   -> <{step['task_id']}>{notes}", file=out)
    return steps


def graph_display(target: Any) -> dict[str, str]:
    """A LazyResult's notebook display: its graph drawn as SVG by Graphviz, else as Mermaid in
    Markdown; a graph too large to draw says so. No ``text/plain``: that stays ``repr``."""
    graph = _graph_of(target)
    if len(graph) > MAX_DRAWN_NODES:
        return {
            "text/markdown": f"A graph of {len(graph)} nodes: too large to draw here "
            "(`cs.visualize(target)` gives its DOT text, `cascade graph -o FILE.svg` draws it)."
        }
    drawn = svg(_text(graph, "dot"))
    if drawn is not None:
        return {"image/svg+xml": drawn}
    return {"text/markdown": mermaid_markdown(_text(graph, "mermaid"))}


register_graph_display(graph_display)
