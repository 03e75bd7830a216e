"""Maps whose items are admitted a few at a time (``-j 2``): one over a literal list, one over
the list an upstream task returns. Items wait for ``<marker>.release`` once they started."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cascade as cs


@cs.task
def numbers(count: int) -> list[int]:
    return list(range(count))


@cs.task
def item(i: int) -> int:
    with Path(os.environ["CASCADE_TEST_MARKER"]).open("a") as handle:
        handle.write(f"item {i}\n")
    release = Path(os.environ["CASCADE_TEST_MARKER"] + ".release")
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return i


@cs.task
def total(values: list[int]) -> int:
    return sum(values)


from_upstream = total(item.map(numbers(12)))
from_literal = total(item.map(list(range(12))))
