"""Graph building, visualisation and dry runs, including 100,000-deep chains."""

import sys

import cascade as cs
from cascade.graph.build import build_graph


@cs.task
def inc(x):
    return x + 1


@cs.task
async def ainc(x):
    return x + 1


@cs.task
def combine(a, b):
    return a + b


def _chain(task, depth, start=0):
    node = task(start)
    for _ in range(depth - 1):
        node = task(node)
    return node


def test_graph_is_topologically_ordered_and_deduplicated():
    a = inc(1)
    target = combine(inc(a), inc(a))
    graph = build_graph([target])
    assert len(graph) == 4
    position = {node.lazy.id: node.index for node in graph.nodes}
    for node in graph.nodes:
        assert all(position[graph.nodes[d].lazy.id] < node.index for d in node.deps)


def test_visualize_dot_and_mermaid():
    target = combine(inc(cs.Param("n")), inc(2).after(inc(5)))
    dot = cs.visualize(target)
    assert dot.startswith("digraph cascade {")
    assert dot.count("->") == 4
    assert "style=dashed" in dot
    assert 'label="combine"' in dot and 'label="param:n"' in dot
    mermaid = cs.visualize(target, format="mermaid")
    assert mermaid.startswith("graph LR")
    assert mermaid.count("-->") == 3 and mermaid.count("-.->") == 1


def test_visualize_rejects_unknown_format():
    import pytest

    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        cs.visualize(inc(1), format="svg")


def test_dry_run_prints_order_with_literals_and_runs_nothing(capsys):
    ran = []

    @cs.task
    def load(path, limit=10):
        ran.append(path)
        return path

    target = combine(load("a.csv"), load("b.csv", limit=5))
    steps = cs.dry_run(target)
    out = capsys.readouterr().out
    assert ran == []
    assert "3 task(s) would run" in out
    assert "load('a.csv')" in out and "load('b.csv', limit=5)" in out
    assert [s["task"] for s in steps] == ["load", "load", "combine"]
    assert steps[-1]["call"].startswith("combine(<load-")


def test_100k_deep_chain_everywhere_without_recursion():
    depth = 100_000
    limit = sys.getrecursionlimit()
    target = _chain(ainc, depth)
    assert cs.run(target, log_level=None) == depth
    assert cs.visualize(target).count("->") == depth - 1
    assert len(cs.visualize(target, format="mermaid").splitlines()) == 2 * depth
    steps = cs.dry_run(target, stream=open("/dev/null", "w"))  # noqa: SIM115
    assert len(steps) == depth
    assert sys.getrecursionlimit() == limit


def test_deep_chain_failure_at_the_bottom_reports_cleanly():
    import pytest

    @cs.task
    def explode(x):
        raise RuntimeError("deep failure")

    target = _chain(inc, 20_000)
    node = explode(target)
    for _ in range(20_000):
        node = inc(node)
    with pytest.raises(RuntimeError, match="deep failure"):
        cs.run(node, log_level=None)


def test_deep_chain_of_skips_propagates_without_recursion():
    node = inc(1).run_if(False)
    for _ in range(50_000):
        node = inc(node)
    assert cs.run(node, log_level=None) is None
