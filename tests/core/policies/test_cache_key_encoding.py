"""The one-piece encoding of ``int`` and ``str`` inputs (``hash_arguments``' fast path, for the
recorded fan-out of ``benchmarks/bench_records.py``), and its per-task form for positional
inputs (``PositionalScalars``, ``TaskKeys``), hash exactly as the general route does, so
checkpoint and cache keys are the same whichever route made them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cascade as cs
from cascade.caching import hashing
from cascade.caching.hashing import hash_arguments
from cascade.caching.input_hash import InputHashCache, TaskKeys


class _Streamed:
    """What the general route makes of the same arguments (the fast path switched off)."""

    def __enter__(self) -> None:
        self.saved = hashing._scalar_encoding
        hashing._scalar_encoding = lambda arguments: None  # type: ignore[assignment]

    def __exit__(self, *exc: Any) -> None:
        hashing._scalar_encoding = self.saved  # type: ignore[assignment]


names = st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
)


@given(st.dictionaries(names, scalars, max_size=6))
def test_int_and_str_inputs_hash_as_the_general_route_hashes_them(
    arguments: dict[str, Any],
) -> None:
    fast = hash_arguments(arguments)
    assert hashing._scalar_encoding(arguments) is not None
    with _Streamed():
        assert hash_arguments(arguments) == fast


@given(st.dictionaries(names, st.one_of(scalars, st.booleans(), st.none(), st.floats())))
def test_other_inputs_take_the_general_route(arguments: dict[str, Any]) -> None:
    if any(type(v) not in (int, str) for v in arguments.values()):
        assert hashing._scalar_encoding(arguments) is None
    with _Streamed():
        streamed = hash_arguments(arguments)
    assert hash_arguments(arguments) == streamed


def test_a_known_key_is_unchanged() -> None:
    # Keys written by earlier versions must still be found: pinned from the general route.
    expected = hashlib.sha256(
        b"cascade-stable-hash/1\0arguments\0" + b"2{" + b"n1:a" + b"i2a;" + b"n1:b" + b"s2:hi"
    ).hexdigest()
    assert hash_arguments({"b": "hi", "a": 42}) == expected
    with _Streamed():
        assert hash_arguments({"b": "hi", "a": 42}) == expected


# -- per task: positional int and str inputs (``PositionalScalars``, ``TaskKeys``) -------------

parameter_lists = st.lists(st.text(min_size=1, max_size=8), min_size=0, max_size=5, unique=True)


@given(parameter_lists, st.data())
def test_positional_scalars_hash_as_hash_arguments_does(names: list[str], data: Any) -> None:
    values = tuple(data.draw(scalars) for _ in names)
    digest = hashing.PositionalScalars(tuple(names)).digest(values)
    assert digest == hash_arguments(dict(zip(names, values, strict=True)))


@given(parameter_lists, st.data())
def test_positional_scalars_leave_other_values_to_the_general_route(
    names: list[str], data: Any
) -> None:
    values = tuple(
        data.draw(st.one_of(scalars, st.booleans(), st.none(), st.floats())) for _ in names
    )
    digest = hashing.PositionalScalars(tuple(names)).digest(values)
    if all(type(v) in (int, str) for v in values):
        assert digest == hash_arguments(dict(zip(names, values, strict=True)))
    else:
        assert digest is None


def test_positional_scalars_refuse_repeated_names() -> None:
    with pytest.raises(ValueError, match=r"parameter names must be distinct, got \('a', 'a'\)"):
        hashing.PositionalScalars(("a", "a"))


RATE = 3


@cs.task
def reads_a_global(b: str, a: int, *rest: int, k: int = 0) -> int:
    return a * RATE + len(b) + sum(rest) + k


@cs.task
async def noop(i: int) -> int:
    return 1


@cs.task
def with_resource(x: int, client: Any = cs.inject("client"), y: int = 0) -> int:
    return x + y


calls = st.sampled_from(
    [
        (noop, (5,), {}),
        (noop, (-(2**70),), {}),
        (noop, ("é\ud800",), {}),
        (noop, (), {"i": 3}),
        (noop, (1.5,), {}),
        (noop, (True,), {}),
        (reads_a_global, ("x", 2), {}),
        (reads_a_global, ("x",), {}),
        (reads_a_global, ("x", 2, 3, 4), {}),
        (reads_a_global, ("x", 2), {"k": 1}),
        (reads_a_global, (None, 2), {}),
        (with_resource, (1,), {}),
        (with_resource, (1,), {"y": 2}),
    ]
)


class _General:
    """Keys made with the per-task fast path switched off."""

    def __enter__(self) -> None:
        self.saved = TaskKeys.scalar_inputs
        TaskKeys.scalar_inputs = lambda self, context: None  # type: ignore[method-assign,assignment,return-value]

    def __exit__(self, *exc: Any) -> None:
        TaskKeys.scalar_inputs = self.saved  # type: ignore[method-assign]


@given(calls, st.sampled_from([None, "2"]))
def test_a_calls_key_is_the_same_whichever_route_made_it(call: Any, version: str | None) -> None:
    task, args, kwargs = call
    context = cs.CacheContext(task, "t-1", args, kwargs)
    fast = InputHashCache(version=version).compute_key(context)
    with _General():
        general = InputHashCache(version=version).compute_key(context)
    assert fast == general
    assert fast[0] is not None and len(fast[0]) == 64


def test_the_fast_route_keys_on_what_the_code_reads_from_outside() -> None:
    global RATE
    context = cs.CacheContext(reads_a_global, "t-1", ("x", 2), {})
    policy = InputHashCache()
    before = policy.compute_key(context)[0]
    RATE = 4
    try:
        after = policy.compute_key(context)[0]
    finally:
        RATE = 3
    assert before != after
    assert policy.compute_key(context)[0] == before


def test_the_fast_route_takes_positional_ints_and_strs_up_to_an_injected_parameter() -> None:
    def fast(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        keys = InputHashCache().task_keys(task)
        return keys.scalar_inputs(cs.CacheContext(task, "t-1", args, kwargs)) is not None

    assert fast(noop, (5,), {}) and fast(noop, ("x",), {}) and fast(noop, (), {})
    assert fast(reads_a_global, ("x", 2), {}) and fast(with_resource, (1,), {})
    assert not fast(noop, (), {"i": 3})  # keywords: the general route
    assert not fast(noop, (1.5,), {})
    assert not fast(reads_a_global, ("x", 2, 3), {})  # *rest
    assert not fast(with_resource, (1, object()), {})  # up to the injected parameter only
