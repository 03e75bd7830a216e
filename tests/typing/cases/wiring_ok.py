"""Graphs wired correctly: the plugin accepts every call here, as do mypy without it and
pyright (which see the arguments as ``Any``). The file must have no error under any of them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import cascade as cs


class Connection:
    pass


@cs.resource
def database() -> Iterator[Connection]:
    yield Connection()


@cs.task
def add(a: int, b: int = 0) -> int:
    return a + b


@cs.task
async def label(value: float, unit: str = "ms") -> str:
    return f"{value}{unit}"


@cs.task
def total(parts: list[int], weights: Mapping[str, float] | None = None) -> float:
    return float(sum(parts))


@cs.task
def pair(both: tuple[int, str], many: Sequence[int] = ()) -> str:
    return str(both)


@cs.task
def store(rows: dict[str, int], conn: Connection = cs.inject("database")) -> int:
    return len(rows)


n = cs.Param("n", type=int)
ratio = cs.Param("ratio", 0.5)

# Values, LazyResults of the declared type (a bool is an int), params, keywords, defaults.
add(1, 2)
add(add(1, 2), b=n)
add(a=n)
add(add(1, 2).with_fallback(0), 3)
label(ratio)
label(add(1, 2))  # an int is a float
label(value=1.5, unit=label(1.0))

# LazyResults inside lists, tuples and dicts; lists of LazyResults built elsewhere.
total([add(1, 2), 3, n])
parts = [add(i, i) for i in range(3)]
total(parts, {"x": ratio})
plain: list[int] = [1, 2]
total(plain)
total(add.map([1, 2]))
pair((add(1, 2), label(1.0)), many=[n, 1])
store({"a": add(1, 2), "b": 3})
store(rows={"a": 1})

# Injected resources are never passed; maps take iterables (not checked by the plugin).
add.map([1, 2, 3], b=cs.unmapped(n))
