"""Graphs wired wrongly. With the plugin, mypy reports an error on each line marked
``# E: <part of the message>`` (and nowhere else), naming the task; a note names the
parameter. Without the plugin, mypy and pyright see task arguments as ``Any`` and report
nothing here (tests/typing/test_typing.py checks both)."""

from __future__ import annotations

import cascade as cs


@cs.task
def add(a: int, b: int) -> int:
    return a + b


@cs.task
def greet(name: str) -> str:
    return f"hello {name}"


@cs.task
async def scale(values: list[float], factor: float = 1.0) -> list[float]:
    return [v * factor for v in values]


add(1, 2, 3)  # E: Too many arguments for "add"
add(1)  # E: Missing positional argument "b" in call to "add"
add(1, c=2)  # E: Unexpected keyword argument "c" for "add"
add(greet("x"), 1)  # E: Argument 1 to "add" has incompatible type "LazyResult[str]"
add(1, b=greet("x"))  # E: Argument "b" to "add" has incompatible type "LazyResult[str]"
add("1", 2)  # E: Argument 1 to "add" has incompatible type "str"
count = cs.Param("count", type=int)
greet(count)  # E: Argument 1 to "greet" has incompatible type "Param[int]"
scale([greet("x")])  # E: List item 0 has incompatible type "LazyResult[str]"
scale([1.0], factor=greet("x"))  # E: Argument "factor" to "scale" has incompatible type
scale(add(1, 2))  # E: Argument 1 to "scale" has incompatible type "LazyResult[int]"
