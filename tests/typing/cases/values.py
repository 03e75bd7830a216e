"""What a graph's values are, for every checker: mypy --strict with and without the plugin,
and pyright (strict). Each ``assert_type`` is a check; the file must have no error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from typing_extensions import assert_type

import cascade as cs


class Connection:
    def fetch(self, query: str) -> list[int]:
        return [len(query)]


@cs.resource
def warehouse() -> Iterator[Connection]:
    yield Connection()


@cs.task
def add(a: int, b: int) -> int:
    return a + b


@cs.task(retries=2, timeout=10)
async def fetch(url: str) -> bytes:
    return url.encode()


@cs.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@cs.task
async def stream(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def plus(total: int, x: int) -> int:
    return total + x


@cs.task
def query(sql: str, conn: Connection = cs.inject("warehouse")) -> list[int]:
    assert_type(conn, Connection)  # an injected resource is its declared type
    return conn.fetch(sql)


# Sync, async and generator tasks: a call is a LazyResult of what the function gives back
# (for an async def, what it awaits to; for a generator, the list of what it yields: its
# stream, as a task that is not mapped over it takes it, docs/streams.md).
typed_add: cs.Task[[int, int], int] = add
assert_type(add(1, 2), cs.LazyResult[int])
typed_fetch: cs.Task[[str], bytes] = fetch
assert_type(fetch("https://example.org"), cs.LazyResult[bytes])
assert_type(numbers(3), cs.LazyResult[list[int]])
assert_type(stream(3), cs.LazyResult[list[int]])
assert_type(add.map(numbers(3), 1), cs.LazyResult[list[int]])
assert_type(cs.fold(plus, add.map(stream(3), 1), 0), cs.LazyResult[int])
assert_type(query("select 1"), cs.LazyResult[list[int]])
add.fn(1, 2)  # the plain function, for unit tests

# Maps fan out to lists; policies keep the value's type; a fallback adds its own.
assert_type(add.map([1, 2], 3), cs.LazyResult[list[int]])
assert_type(fetch.map(["a", "b"]), cs.LazyResult[list[bytes]])
assert_type(add(1, 2).with_retry(3).with_timeout(5.0), cs.LazyResult[int])
assert_type(add(1, 2).run_if(True).after(fetch("x")), cs.LazyResult[int])
assert_type(add(1, 2).with_fallback(0), cs.LazyResult[int])
assert_type(add(1, 2).with_fallback(None), cs.LazyResult[int | None])
assert_type(fetch("x").with_fallback(b""), cs.LazyResult[bytes])

# Params are LazyResults of their type (or of their default's type).
assert_type(cs.Param("n", type=int), cs.Param[int])
assert_type(cs.Param("n", 3, int), cs.Param[int])
assert_type(cs.Param("ratio", 0.5), cs.Param[float])
assert_type(cs.Param("anything"), cs.Param[Any])
param: cs.LazyResult[int] = cs.Param("n", type=int)

# cs.run gives the target's value: a LazyResult's, a list for a list or tuple, a dict for a dict.
assert_type(cs.run(add(1, 2)), int)
assert_type(cs.run(add(1, 2), {"n": 1}, log_level=None, on_failure="continue"), int)
assert_type(cs.run(add.map([1, 2], 3)), list[int])
assert_type(cs.run([add(1, 2), add(3, 4)]), list[int])
assert_type(cs.run((add(1, 2), add(3, 4))), list[int])
assert_type(cs.run({"a": add(1, 2), "b": add(3, 4)}), dict[str, int])
assert_type(cs.run(add(1, 2).with_fallback(None)), int | None)
mixed: dict[str, object] = cs.run({"sum": add(1, 2), "page": fetch("x")})
both: list[object] = cs.run([add(1, 2), fetch("x")])


async def main() -> None:
    assert_type(await cs.run_async(fetch("x")), bytes)
    assert_type(await cs.run_async([fetch("x")]), list[bytes])
    assert_type(await cs.run_async({1: fetch("x")}), dict[int, bytes])
