"""The signature check of a task call, and its shortcut: a call with positional arguments
only, as many as the function surely takes, skips the full check
(``SignatureCheck.plain_counts``, for the calls of ``benchmarks/run.py``); every other call
is checked in full, with the same errors."""

from __future__ import annotations

from typing import Any

import pytest

import cascade as cs


def _defaults(a: Any, b: Any = 1) -> Any:
    return a, b


def _varargs(a: Any, *rest: Any) -> Any:
    return a, rest


def _keyword_only(a: Any, *, key: Any) -> Any:
    return a, key


def _positional_only(a: Any, /, b: Any = 2) -> Any:
    return a, b


@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "error"),
    [
        (_defaults, (1,), {}, None),
        (_defaults, (1, 2), {}, None),
        (_defaults, (), {}, "is missing the argument 'a'"),
        (_defaults, (1, 2, 3), {}, "takes 2 positional argument"),
        (_varargs, (1, 2, 3, 4, 5), {}, None),
        (_varargs, (), {}, "is missing the argument 'a'"),
        (_keyword_only, (1,), {}, "is missing the argument 'key'"),
        (_keyword_only, (1,), {"key": 2}, None),
        (_positional_only, (1,), {}, None),
        (_positional_only, (), {"a": 1}, "got an unexpected argument 'a'"),
    ],
)
def test_a_call_that_skips_the_full_signature_check_is_one_that_passes_it(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], error: str | None
) -> None:
    # Calls with positional arguments only, as many as the function surely takes, skip the
    # check (``SignatureCheck.plain_counts``); every other call is checked in full.
    task = cs.task(fn)
    if error is None:
        assert task(*args, **kwargs).args == args
    else:
        with pytest.raises(TypeError, match=f"task '{fn.__name__}' {error}"):
            task(*args, **kwargs)
