"""The one-piece encoding of ``int`` and ``str`` inputs (``hash_arguments``' fast path, for the
recorded fan-out of ``benchmarks/bench_records.py``) hashes exactly as the general route does,
so checkpoint and cache keys are the same whichever route made them."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cascade.caching import hashing
from cascade.caching.hashing import hash_arguments


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
