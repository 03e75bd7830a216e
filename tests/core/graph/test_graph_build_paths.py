"""``build_graph``'s fast paths (plain leaves, chains walked in one loop, fan-ins whose leaves
are made without a stack entry, plain multi-input calls) against the general route that
``extend_graph`` takes for every node: on graphs of every call shape, both make the same nodes
in the same order, with the same inputs and the same dependents. The fast paths exist for the
graph-build and fan-out rows of ``benchmarks/run.py``; this is what keeps them honest."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade as cs
from cascade.graph.build import Graph, Node, build_graph
from cascade.graph.extend import extend_graph
from cascade.spec.task import LazyResult


@cs.task
def one(x: Any) -> Any:
    return x


@cs.task
def many(*values: Any) -> Any:
    return values


@cs.task
def keyed(a: Any = None, b: Any = None) -> Any:
    return a, b


@cs.task
def leaf() -> int:
    return 1


SHAPES = [
    "leaf",  # no arguments
    "literal",  # plain values only
    "step",  # one input: a chain's step
    "plain",  # several inputs and literals, positionally (duplicates too)
    "fan_in",  # a list of inputs, long enough to count as a fan-in
    "nested",  # inputs inside nested containers
    "keyword",  # an input by keyword
    "condition",  # run_if on an input
    "after",  # after() an input
    "map",  # .map over a list of inputs
    "param",  # a graph parameter
]


def make_calls(plan: list[tuple[str, list[int]]]) -> list[LazyResult[Any]]:
    """Calls made one after another; each shape picks its inputs among the calls before it."""
    calls: list[LazyResult[Any]] = []
    for number, (shape, picks) in enumerate(plan):
        inputs = [calls[p % len(calls)] for p in picks] if calls else []
        if not inputs and shape not in ("leaf", "literal", "param"):
            shape = "literal"
        if shape == "leaf":
            call: LazyResult[Any] = leaf()
        elif shape == "literal":
            call = one(number)
        elif shape == "step":
            call = one(inputs[0])
        elif shape == "plain":
            call = many(inputs[0], "text", *inputs, inputs[0])
        elif shape == "fan_in":
            call = many([*inputs, *(one(i) for i in range(12)), *inputs])
        elif shape == "nested":
            call = one({"a": [inputs[0], (1, inputs[-1])], "b": 2})
        elif shape == "keyword":
            call = keyed(1, b=inputs[0])
        elif shape == "condition":
            call = one(number).run_if(inputs[0])
        elif shape == "after":
            call = one(inputs[-1]).after(inputs[0])
        elif shape == "map":
            call = one.map(inputs)
        else:
            call = cs.Param(f"p{number}", default=number)
        calls.append(call)
    return calls


def general_route(targets: list[LazyResult[Any]]) -> tuple[Graph, dict[int, list[int]]]:
    graph = Graph([], {}, [])
    dependents: dict[int, list[int]] = {}
    extend_graph(graph, targets, dependents)
    return graph, dependents


def described(node: Node) -> tuple[Any, ...]:
    # Inputs are compared as sets where the general route collects them through a set.
    return (
        node.index,
        node.lazy,
        node.kind,
        sorted(node.deps),
        node.arg_positions,
        node.arg_inputs,
        node.kwarg_slots,
        node.nested_args,
        node.nested_kwargs,
        node.condition,
        sorted(node.value_deps),
    )


plans = st.lists(
    st.tuples(st.sampled_from(SHAPES), st.lists(st.integers(0, 10_000), min_size=1, max_size=4)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans, st.lists(st.integers(0, 10_000), min_size=1, max_size=3))
def test_the_fast_paths_make_the_nodes_the_general_route_makes(
    plan: list[tuple[str, list[int]]], target_picks: list[int]
) -> None:
    calls = make_calls(plan)
    targets = [calls[p % len(calls)] for p in target_picks]
    fast = build_graph(targets)
    general, general_dependents = general_route(targets)
    assert [described(n) for n in fast.nodes] == [described(n) for n in general.nodes]
    assert [list(n.dependents) for n in fast.nodes] == [
        general_dependents.get(n.index, []) for n in general.nodes
    ]
    assert fast.targets == [general.index_of[id(t)] for t in targets]


def test_a_100k_step_chain_and_a_100k_leaf_fan_in_build_in_order() -> None:
    node = one(0)
    for _ in range(99_999):
        node = one(node)
    graph = build_graph([node])
    assert len(graph) == 100_000
    assert [n.deps for n in graph.nodes[:3]] == [(), (0,), (1,)]
    assert graph.nodes[-2].dependents == (99_999,)
    assert graph.nodes[-1].dependents == ()
    leaves = [one(i) for i in range(100_000)]
    fan = build_graph([many(leaves)])
    assert [n.lazy for n in fan.nodes[:-1]] == leaves
    # The leaves share one dependents tuple: a wide fan-in allocates one, not one each.
    assert {id(n.dependents) for n in fan.nodes[:-1]} == {id(fan.nodes[0].dependents)}
    assert fan.nodes[0].dependents == (100_000,)


@pytest.mark.parametrize("shape", ["chain", "fan_in", "plain"])
def test_a_graph_with_a_cycle_is_refused_naming_a_call_on_it(shape: str) -> None:
    # Calls cannot form a cycle as written; one edited afterwards can.
    first = one(0)
    if shape == "chain":
        last = one(one(first))
    elif shape == "fan_in":
        last = many([one(i) for i in range(10)] + [first])
    else:
        last = many(first, one(1))
    first.args = (last,)
    with pytest.raises(ValueError, match=r"the graph has a cycle through <LazyResult (one|many)-"):
        build_graph([last])
    with pytest.raises(ValueError, match="the graph has a cycle through"):
        cs.run(last, log_level=None)


@pytest.mark.parametrize(("tail", "loop"), [(0, 1), (0, 2), (3, 1), (5, 3), (1000, 1), (700, 5000)])
def test_a_cycle_inside_a_chain_below_its_first_step_is_refused(tail: int, loop: int) -> None:
    # The chain's steps below the first are not marked while it is walked down: a cycle
    # that never comes back to the first step (``loop`` steps, below ``tail`` others) is
    # found by the walk itself, naming a call on the cycle.
    bottom = one(0)
    node = bottom
    on_cycle = []
    for _ in range(loop):
        node = one(node)
        on_cycle.append(node)
    for _ in range(tail):
        node = one(node)
    top = one(node)
    on_cycle[0].args = (on_cycle[-1],)
    with pytest.raises(ValueError, match="the graph has a cycle through") as raised:
        build_graph([top])
    assert any(repr(call) in str(raised.value) for call in on_cycle)
