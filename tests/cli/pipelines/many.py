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


# The unlucky call starts after the others ended, so the summary is the same on any machine.
lucky = [square(i) for i in range(59)]
total = add([*lucky, square(59).after(*lucky)])
