"""Enough short tasks for the live display to draw several frames."""

from __future__ import annotations

import time

import cascade as cs


@cs.task
def step(index: int) -> int:
    time.sleep(0.25)
    return index


@cs.task
def gather(values: list[int]) -> int:
    time.sleep(0.25)
    return sum(values)


finished = gather([step(i) for i in range(6)])
