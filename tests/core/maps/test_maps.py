"""Mapping a task over items on every executor: build-time and run-time lists, broadcast arguments,
order, policies carried by each item, and the errors that name what cannot be mapped."""

import pytest
from core_helpers import flaky, run_collecting, square, total

import cascade as cs


@cs.task
def power(x, exponent):
    return x**exponent


@cs.task
def numbers(n):
    return list(range(n))


def test_map_over_a_build_time_list_keeps_order(executor):
    assert run_collecting(square.map([1, 2, 3, 4]), executor)[0] == [1, 4, 9, 16]


def test_map_over_a_runtime_list_with_broadcast_arguments(executor):
    assert run_collecting(power.map(numbers(5), exponent=3), executor)[0] == [0, 1, 8, 27, 64]
    assert run_collecting(power.map(x=numbers(3), exponent=cs.unmapped(2)), executor)[0] == [
        0,
        1,
        4,
    ]


def test_map_feeds_downstream_and_carries_policies(executor, tmp_path):
    counter = str(tmp_path / "count")
    mapped = flaky.map([counter], [1]).with_retry(retries=1)
    assert run_collecting(total(mapped), executor)[0] == 2


def test_map_length_mismatch_names_the_arguments():
    with pytest.raises(ValueError, match=r"argument 'x' has 3, argument 'exponent' has 2"):
        run_collecting(power.map(x=[1, 2, 3], exponent=[1, 2]), "local")


def test_map_over_a_non_iterable_runtime_value_is_named():
    with pytest.raises(TypeError, match="square.map\\(\\): argument 0 must be iterable"):
        run_collecting(square.map(square(3)), "local")


def test_map_needs_something_to_iterate():
    with pytest.raises(TypeError, match="at least one iterable"):
        square.map(3)


def test_map_over_10000_items():
    @cs.task
    async def double(x):
        return 2 * x

    result, _ = run_collecting(double.map(range(10_000)), "local")
    assert result == [2 * i for i in range(10_000)]


def test_map_over_an_empty_list():
    assert run_collecting(square.map([]), "local")[0] == []
