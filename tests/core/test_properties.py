"""Property-based check: random DAGs against a plain iterative reference evaluation."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade as cs


class NodeFailed(Exception):
    pass


opened: list[int] = []
closed: list[int] = []


@cs.resource(name="counter_resource")
def counter_resource():
    token = len(opened)
    opened.append(token)
    try:
        yield token
    finally:
        closed.append(token)


@cs.task
def combine(node_id, fail, *inputs, extra=None):
    if fail:
        raise NodeFailed(f"node {node_id}")
    flat = []
    stack = [inputs, extra]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, int):
            flat.append(item)
    return node_id + sum(flat)


@cs.task
async def combine_async(node_id, fail, *inputs, extra=None, res=cs.inject("counter_resource")):
    await asyncio.sleep(0)
    return combine.fn(node_id, fail, *inputs, extra=extra)


@st.composite
def dags(draw):
    size = draw(st.integers(min_value=1, max_value=25))
    nodes = []
    for i in range(size):
        parents = draw(st.lists(st.integers(0, i - 1), max_size=4, unique=True)) if i else []
        nodes.append(
            {
                "parents": parents,
                "nested": draw(st.booleans()),
                "literal": draw(st.integers(-5, 5)),
                "fail": draw(st.integers(0, 9)) == 0,
                "async": draw(st.booleans()),
            }
        )
    targets = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=3, unique=True))
    return nodes, targets


def reference(nodes):
    """Value of every node (None if it or an ancestor fails), in index order: no recursion."""
    values, failed = [], []
    for i, spec in enumerate(nodes):
        if spec["fail"] or any(failed[p] for p in spec["parents"]):
            values.append(None)
            failed.append(True)
            continue
        values.append(i + spec["literal"] + sum(values[p] for p in spec["parents"]))
        failed.append(False)
    return values, failed


def build(nodes):
    lazies = []
    for i, spec in enumerate(nodes):
        parents = [lazies[p] for p in spec["parents"]]
        task = combine_async if spec["async"] else combine
        if spec["nested"] and parents:
            call = task(i, spec["fail"], spec["literal"], extra={"deep": [tuple(parents)]})
        else:
            call = task(i, spec["fail"], spec["literal"], *parents)
        lazies.append(call)
    return lazies


def _needed(nodes, targets):
    needed, stack = set(), list(targets)
    while stack:
        i = stack.pop()
        if i not in needed:
            needed.add(i)
            stack.extend(nodes[i]["parents"])
    return needed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_match_the_reference(case):
    nodes, targets = case
    opened.clear()
    closed.clear()
    values, failed = reference(nodes)
    needed = _needed(nodes, targets)
    first_failures = {
        f"node {i}"
        for i in needed
        if nodes[i]["fail"] and not any(failed[p] for p in nodes[i]["parents"])
    }
    lazies = build(nodes)
    engine = cs.Engine()
    engine.register(counter_resource)
    try:
        result = asyncio.run(engine.run([lazies[t] for t in targets]))
    except NodeFailed as exc:
        assert str(exc) in first_failures
    else:
        assert not first_failures
        assert result == [values[t] for t in targets]
    assert sorted(opened) == sorted(closed)
    uses_resource = any(nodes[i]["async"] for i in needed)
    assert len(opened) == (1 if uses_resource else 0)
