"""Values only mypy with the plugin gets right: tasks made of generic functions, whose ``T``
each call solves from its arguments (LazyResults and params included). Without the plugin
mypy takes a generic function for a coroutine function, and pyright leaves ``T`` unsolved;
tests/typing/test_typing.py checks this file with the plugin only."""

from __future__ import annotations

from typing import TypeVar

from typing_extensions import assert_type

import cascade as cs

T = TypeVar("T")


@cs.task
def identity(value: T) -> T:
    return value


@cs.task(retries=1)
async def pair(first: T, second: T) -> list[T]:
    return [first, second]


@cs.task
def length(text: str) -> int:
    return len(text)


assert_type(identity(1), cs.LazyResult[int])
assert_type(identity(length("abc")), cs.LazyResult[int])
assert_type(identity(cs.Param("name", type=str)), cs.LazyResult[str])
assert_type(pair("a", "b"), cs.LazyResult[list[str]])
assert_type(cs.run(identity(length("abc"))), int)
