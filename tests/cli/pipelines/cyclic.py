"""A graph with a cycle: a task whose input list ends up holding the task's own call."""

from __future__ import annotations

import cascade as cs


@cs.task
def step(values: list[int]) -> int:
    return len(values)


inputs: list[object] = []
looped = step(inputs)
inputs.append(step([looped]))
