"""Tasks with policies and resources, for `cascade dry-run` and `cascade graph`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import cascade as cs


@cs.resource
def database() -> Iterator[str]:
    raise RuntimeError("dry-run and graph must never set a resource up")
    yield "db"  # pragma: no cover


@cs.resource(scope="task")
def scratch(db: str = cs.inject("database")) -> Iterator[str]:
    raise RuntimeError("dry-run and graph must never set a resource up")
    yield "scratch"  # pragma: no cover


@cs.task(retries=cs.RetryPolicy(retries=3, delay=0.5, backoff=2.0), timeout=30)
def fetch(station: str) -> list[int]:
    return [len(station)]


@cs.task(cache=cs.InputHashCache(), concurrency=2)
def square(n: int) -> int:
    return n * n


@cs.task
def store(values: list[int], rows: list[int], db: str = cs.inject("database")) -> str:
    return f"{db}: {sum(values)} {rows}"


@cs.task(executor="threads")
def tidy(text: str, tmp: str = cs.inject("scratch")) -> str:
    return text.strip()


stations = cs.Param("stations", default=["oslo"], type=list)
squares = square.map(cs.Param("numbers", default=[1, 2, 3], type=list))
report = tidy(store(squares, fetch.map(stations)))
cache_dir = os.environ.get("CASCADE_CACHE_DIR", "")
