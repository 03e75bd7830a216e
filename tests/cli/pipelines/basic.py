"""A small successful pipeline: a param, a fan-out with .map and a fan-in."""

from __future__ import annotations

import cascade as cs

scale = cs.Param("scale", default=1, type=int, description="multiply every number by this")


@cs.task
def numbers(count: int) -> list[int]:
    return list(range(1, count + 1))


@cs.task
def times(value: int, factor: int) -> int:
    return value * factor


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


@cs.task
def label(value: int) -> str:
    print("label task printing to stdout")
    return f"total={value}"


summed = total(times.map(numbers(4), factor=cs.unmapped(scale)))
report = label(summed)
both = [summed, report]
as_dict = {"sum": summed, "label": report}


def build() -> cs.LazyResult[str]:
    """A zero-argument function that builds the graph."""
    return label(total(times.map(numbers(3), factor=cs.unmapped(scale))))


def needs_arguments(count: int) -> cs.LazyResult[int]:
    return total(numbers(count))


not_a_graph = 42
