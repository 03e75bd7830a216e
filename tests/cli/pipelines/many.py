"""Sixty calls of one task and a fan-in: the summary merges rows per task name."""

from __future__ import annotations

import cascade as cs


@cs.task
def square(x: int) -> int:
    if x == 59:
        raise ArithmeticError("59 is unlucky")
    return x * x


@cs.task
def add(values: list[int]) -> int:
    return sum(values)


total = add([square(i) for i in range(60)])
