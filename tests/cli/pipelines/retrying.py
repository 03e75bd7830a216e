"""A task that fails twice and then succeeds, with retries=2."""

from __future__ import annotations

import cascade as cs

attempts = {"flaky": 0}


@cs.task(retries=2)
def flaky() -> str:
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise ConnectionError(f"attempt {attempts['flaky']} lost the connection")
    return "ok after retries"


@cs.task
def wrap(value: str) -> str:
    return value.upper()


result = wrap(flaky())
