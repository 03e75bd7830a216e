"""A task whose results are cached by input hash; the cache directory comes from
$CASCADE_CACHE_DIR, as for any run."""

from __future__ import annotations

import cascade as cs


@cs.task(cache=cs.InputHashCache())
def expensive(n: int) -> int:
    print(f"computing {n}")
    return n * n


@cs.task
def add(values: list[int]) -> int:
    return sum(values)


squares = add(expensive.map([1, 2, 3]))
