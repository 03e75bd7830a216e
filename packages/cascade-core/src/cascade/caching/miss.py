"""Why a cache missed, in words: what ``cascade.events.TaskCacheMissed`` says and a recorded
run keeps as why the task ran (``why_ran``), worded as a resume words why a task ran again
(``cascade.records.explain``), with the graph lookups both make to name where an input
comes from (a param, a dependency, a value given in the code)."""

from __future__ import annotations

from collections.abc import Sequence

from cascade.caching.inputs import named_inputs
from cascade.graph.build import KIND_MAP, KIND_PARAM, Graph, Node
from cascade.spec.cache_policy import CacheContext, CacheMiss


def input_sources(graph: Graph, node: Node) -> dict[str, Node | None]:
    """Each input of ``node``'s call by parameter name (as ``named_inputs`` names them) and
    the graph node it comes from: a param, a task, or ``None`` for a value given in the
    code."""
    lazy = node.lazy
    given = named_inputs(CacheContext(lazy.task, lazy.id, lazy.args, lazy.kwargs))
    found: dict[str, Node | None] = {}
    for name, source in given.items():
        index = graph.index_of.get(id(source))
        found[name] = None if index is None else graph.nodes[index]
    return found


def param_name(node: Node) -> str:
    """The name a param node is given by (``cs.Param("day")`` → ``day``)."""
    return str(getattr(node.lazy, "param_name", node.lazy.name))


def global_changed(names: Sequence[str]) -> str:
    """The words for values read from outside the arguments that changed (plain names)."""
    return f"a global it reads changed: {', '.join(repr(name) for name in names)}"


def describe_miss(miss: CacheMiss, graph: Graph | None = None, node: Node | None = None) -> str:
    """``miss`` in one sentence. Given the run's ``graph`` and the call's ``node``, a changed
    input is named by where it comes from: a param (with both values when known), a
    dependency, or a value given in the code."""
    kind = miss.kind
    if kind == "code":
        return "its code changed"
    if kind == "version":
        return f"its version changed ({miss.before} -> {miss.now})"
    if kind == "global":
        return global_changed(miss.names)
    if kind == "key":
        return "its key_fn key changed"
    if kind == "expired":
        return "its cached result expired or was removed"
    if kind != "input" or not miss.names:
        return f"its cache key changed ({kind})"
    if len(miss.names) > 1:
        return f"its inputs changed: {', '.join(repr(name) for name in miss.names)}"
    (name,) = miss.names
    source = None
    if graph is not None and node is not None and node.lazy.task is not None:
        source = input_sources(graph, node).get(name)
    # A mapped call's values are its item's, not the whole input's: they are not shown.
    values = (
        f" ({miss.before} -> {miss.now})"
        if miss.before is not None
        and miss.now is not None
        and (node is None or node.kind != KIND_MAP)
        else ""
    )
    if source is None:
        return f"its input '{name}' changed{values}"
    if source.kind == KIND_PARAM:
        return f"param '{param_name(source)}' changed{values}, its input '{name}'"
    return f"its input '{name}' changed: it comes from task '{source.name}', a dependency"


__all__ = ["describe_miss", "global_changed", "input_sources", "param_name"]
