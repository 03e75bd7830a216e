"""Graph building and argument building under awkward inputs: literals that contain themselves,
sub-lists shared many times, LazyResults nested deeper than the recursion limit, tuple
subclasses, containers that cannot be rebuilt, and the order nested inputs start in."""

from __future__ import annotations

import sys
import threading
from collections import namedtuple
from typing import Any

import pytest
from core_helpers import ident, notes_of, run, size

import cascade as cs
from cascade.graph.build import build_graph, resolve_nested

pytestmark = pytest.mark.timeout(60)


@cs.task
def same_object(values: Any, expected_id: int) -> bool:
    return id(values) == expected_id


@cs.task
def unwrap(value: Any) -> Any:
    depth = 0
    while isinstance(value, list):
        (value,) = value
        depth += 1
    return depth, value


@cs.task
def describe(value: Any) -> Any:
    return type(value).__name__, tuple(value)


# -- item 5: a literal that contains itself --------------------------------------------------


def test_a_self_referencing_literal_is_passed_untouched() -> None:
    cyc: list[Any] = [1, 2]
    cyc.append(cyc)
    assert run(size(cyc)) == 3
    assert run(same_object(cyc, id(cyc))) is True


def test_a_self_referencing_dict_literal_is_passed_untouched() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    assert run(size(loop)) == 2


def test_a_cycle_holding_a_lazy_result_is_rebuilt_with_the_same_cycle() -> None:
    cyc: list[Any] = [ident(5)]
    cyc.append(cyc)

    @cs.task
    def inspect_cycle(values: Any) -> Any:
        return values[0], values[1] is values

    assert run(inspect_cycle(cyc)) == (5, True)


def test_sub_lists_shared_many_times_are_visited_once() -> None:
    # 2**60 paths through 60 levels: only one visit per distinct list keeps this instant.
    shared: Any = [ident(3)]
    literal: Any = ["leaf"]
    for _ in range(60):
        shared = [shared, shared]
        literal = [literal, literal]

    @cs.task
    def bottom(tree: Any, plain: Any) -> Any:
        levels = 0
        while len(tree) == 2:
            assert tree[0] is tree[1]  # sharing is kept in the rebuilt copy
            tree = tree[0]
            levels += 1
        return levels, tree[0], plain is literal

    graph = build_graph([bottom(shared, literal)])
    assert len(graph) == 2
    assert run(bottom(shared, literal)) == (60, 3, True)


# -- item 4 (graph part): deep nesting and tuple subclasses ----------------------------------


@pytest.mark.parametrize("depth", [500, 3 * sys.getrecursionlimit()])
def test_a_lazy_result_nested_deeper_than_the_recursion_limit(depth: int) -> None:
    value: Any = ident(7)
    for _ in range(depth):
        value = [value]
    assert run(unwrap(value)) == (depth, 7)


class _Pair(tuple):  # type: ignore[type-arg]
    """A tuple subclass whose constructor takes two values, not one iterable."""

    def __new__(cls, first: Any, second: Any) -> _Pair:
        return super().__new__(cls, (first, second))


class _Wrapped(tuple):  # type: ignore[type-arg]
    """A tuple subclass whose constructor takes any values and wraps them."""

    def __new__(cls, *items: Any) -> _Wrapped:
        return super().__new__(cls, items)


class _Plain(tuple):  # type: ignore[type-arg]
    """A tuple subclass that keeps tuple's constructor."""


Point = namedtuple("Point", "x y")


def test_a_tuple_subclass_with_its_own_new_fails_clearly_naming_type_and_task() -> None:
    with pytest.raises(TypeError, match=r"task 'describe': argument 0: .*_Pair \(a tuple subclass"):
        run(describe(_Pair(ident(1), 2)))
    with pytest.raises(TypeError, match=r"_Wrapped.*does not rebuild it"):
        run(describe(_Wrapped(ident(1), 2)))


def test_tuple_subclasses_that_can_be_rebuilt_keep_their_class() -> None:
    assert run(describe(_Plain((ident(1), 2)))) == ("_Plain", (1, 2))
    assert run(describe(Point(ident(1), [ident(2)]))) == ("Point", (1, [2]))
    # A tuple subclass without LazyResults inside is never rebuilt, whatever its constructor.
    assert run(describe([_Pair(1, 2), ident(3)])) == ("list", (_Pair(1, 2), 3))


def test_resolve_nested_keeps_literals_and_sharing() -> None:
    a, b = ident(1), ident(2)
    graph = build_graph([size([a, b])])
    results = [None] * len(graph)
    results[graph.index(a)] = "A"
    results[graph.index(b)] = "B"
    plain = ("x", [1, 2], {"k": 3})
    shared = [b]
    value = {"plain": plain, "lazy": a, "twice": (shared, shared), "deep": [[[a]]]}
    out = resolve_nested(value, results, graph.index_of)
    assert out == {"plain": plain, "lazy": "A", "twice": (["B"], ["B"]), "deep": [[["A"]]]}
    assert out["plain"] is plain
    assert out["twice"][0] is out["twice"][1]
    assert resolve_nested(plain, results, graph.index_of) is plain


# -- item 22: nested inputs start in the order they appear -----------------------------------

_started: list[int] = []
_started_lock = threading.Lock()


@cs.task
def record_start(i: int) -> int:
    with _started_lock:
        _started.append(i)
    return i


@cs.task
def collect(values: Any) -> Any:
    return values


def test_inputs_nested_in_a_container_start_in_order() -> None:
    _started.clear()
    calls = [record_start(i) for i in range(8)]
    assert run(collect({"items": calls}), max_concurrency=1) == {"items": list(range(8))}
    assert _started == list(range(8))
    graph = build_graph([collect([calls[2], (calls[0], [calls[1]])])])
    order = [node.lazy for node in graph.nodes[:-1]]
    assert order == [calls[2], calls[0], calls[1]]


def test_a_container_that_cannot_be_rebuilt_fails_the_run_naming_the_task() -> None:
    class Pair(tuple):  # type: ignore[type-arg]
        def __new__(cls, first: Any, second: Any) -> Pair:
            return super().__new__(cls, (first, second))

    with pytest.raises(Exception) as raised:
        cs.run(size(Pair(ident(1), 2)), log_level=None)
    assert "size" in str(raised.value) + notes_of(raised.value)


def test_a_lazy_result_nested_500_lists_deep_reaches_the_task() -> None:
    nested: Any = ident(7)
    for _ in range(500):
        nested = [nested]

    @cs.task
    def depth(value: Any) -> tuple[int, Any]:
        levels = 0
        while isinstance(value, list):
            value, levels = value[0], levels + 1
        return levels, value

    assert cs.run(depth(nested), log_level=None) == (500, 7)
