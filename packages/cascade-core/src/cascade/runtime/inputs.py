"""A node's inputs: its arguments built from upstream results and, for executors that keep
results elsewhere (``returns_references``), the values fetched for the inputs that need
them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade.executors import Executor
from cascade.graph.build import KIND_MAP, Node, resolve_nested
from cascade.runtime.plan import RunPlan


def arguments(
    node: Node, results: Sequence[Any], index_of: dict[int, int]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's positional and keyword arguments with upstream results in place. The
    kwargs dict may be the LazyResult's own: callers copy it before changing it."""
    lazy = node.lazy
    args = lazy.args
    if node.arg_inputs and len(node.arg_inputs) == len(args):
        # Every positional argument is an upstream result (the common shape): one C-level
        # pass, no list to patch (``benchmarks/bench_mixed.py``).
        args = tuple(map(results.__getitem__, node.arg_inputs))
    elif node.arg_inputs or node.nested_args:
        arg_list = list(args)
        for pos, dep in zip(node.arg_positions, node.arg_inputs, strict=True):
            arg_list[pos] = results[dep]
        for pos in node.nested_args:
            arg_list[pos] = resolve_nested(arg_list[pos], results, index_of)
        args = tuple(arg_list)
    kwargs = lazy.kwargs
    if not (node.kwarg_slots or node.nested_kwargs):
        return args, kwargs
    kwargs = dict(kwargs)
    for key, dep in node.kwarg_slots:
        kwargs[key] = results[dep]
    for key in node.nested_kwargs:
        kwargs[key] = resolve_nested(kwargs[key], results, index_of)
    return args, kwargs


class Overlay(Sequence[Any]):
    """The run's results with some entries replaced by fetched values, for one node."""

    __slots__ = ("base", "values")

    def __init__(self, base: list[Any], values: dict[int, Any]) -> None:
        self.base = base
        self.values = values

    def __getitem__(self, index: Any) -> Any:
        if index in self.values:
            return self.values[index]
        return self.base[index]

    def __len__(self) -> int:
        return len(self.base)


async def fetch_inputs(
    plan: RunPlan, node: Node, results: list[Any], skipped: Any
) -> Sequence[Any]:
    """``results`` with values in place of references wherever this node needs values: any
    input of a task on another executor, nested inputs, conditions, map iterables and cached
    tasks' inputs. Top-level inputs from the same executor stay references, so data stays
    remote. One ``materialize`` call per executor; the run's results keep the references."""
    task = node.lazy.task
    own = plan.executor_for(task)[1] if task is not None else None
    keep_remote: set[int] = set()
    if node.kind != KIND_MAP and node.lazy.cache is None:
        keep_remote = set(node.arg_inputs) | {d for _, d in node.kwarg_slots}
    wanted: dict[int, tuple[Executor, list[int]]] = {}
    nodes = plan.graph.nodes
    for dep in node.value_deps:
        dep_task = nodes[dep].lazy.task
        if dep_task is None or results[dep] is skipped:
            continue
        producer = plan.executor_for(dep_task)[1]
        if not producer.returns_references or (dep in keep_remote and producer is own):
            continue
        wanted.setdefault(id(producer), (producer, []))[1].append(dep)
    values: dict[int, Any] = {}
    for producer, deps in wanted.values():
        fetched = await producer.materialize([results[d] for d in deps])
        values.update(zip(deps, fetched, strict=True))
    return Overlay(results, values) if values else results


async def fetch_value(plan: RunPlan, index: int, value: Any, skipped: Any) -> Any:
    """A target's value, fetched if its executor returned a reference."""
    task = plan.graph.nodes[index].lazy.task
    if value is skipped or task is None:
        return value
    executor = plan.executor_for(task)[1]
    if not executor.returns_references:
        return value
    return (await executor.materialize([value]))[0]
