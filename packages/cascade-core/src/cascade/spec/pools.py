"""Named pools, rate limits and priorities as users declare them; checked where written.

``cs.Pool(4, rate_limit="10/second")`` is a pool of 4 slots shared by every task that asks for
it (``@cs.task(pools={"openai": 1})``), optionally with a token-bucket rate; a task may carry a
rate of its own (``rate_limit="60/minute"``) and a ``priority`` that decides which ready call
starts first when slots are scarce.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
ACCEPTED_RATES = "'N/second', 'N/minute' or 'N/hour' with N a whole number >= 1"


@dataclass(frozen=True)
class Rate:
    """``count`` calls per ``seconds``, with bursts of up to ``burst`` calls at once."""

    count: int
    seconds: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = {1.0: "second", 60.0: "minute", 3600.0: "hour"}[self.seconds]
        extra = f", burst {self.burst}" if self.burst != self.count else ""
        return f"{self.count}/{unit}{extra}"


def parse_rate(text: Any, owner: str, burst: int | None = None) -> Rate:
    """``"60/minute"`` → ``Rate(60, 60.0, burst)``; anything else is an error naming ``owner``
    and listing the accepted forms. The burst defaults to the count."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{owner}: rate_limit={text!r} is not a rate; use {ACCEPTED_RATES}")
    count = int(match.group(1))
    if burst is None:
        burst = count
    elif isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"{owner}: burst must be a whole number >= 1, got {burst!r}")
    return Rate(count, _UNITS[match.group(2)], burst)


class Pool:
    """A named pool's capacity: ``size`` slots, and optionally a rate for the calls that hold
    them (``rate_limit="10/second"``, ``burst`` defaulting to the rate's count)."""

    __slots__ = ("rate", "size")

    def __init__(self, size: int, rate_limit: str | None = None, burst: int | None = None):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a pool's size must be a whole number >= 1, got {size!r}")
        self.size = size
        self.rate = parse_rate(rate_limit, "Pool", burst) if rate_limit is not None else None

    def __repr__(self) -> str:
        rate = f", rate_limit='{self.rate}'" if self.rate else ""
        return f"Pool({self.size}{rate})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pool) and (self.size, self.rate) == (other.size, other.rate)

    def __hash__(self) -> int:
        return hash((self.size, self.rate))


def check_pools_given(pools: Mapping[str, Any] | None, owner: str) -> dict[str, Pool]:
    """Pools defined for a run or an engine: ``{"name": size or Pool}``."""
    if pools is None:
        return {}
    if not isinstance(pools, Mapping):
        raise TypeError(f"{owner}: pools= takes a dict of name → size or cs.Pool, got {pools!r}")
    checked = {}
    for name, value in pools.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{owner}: pool names must be non-empty strings, got {name!r}")
        try:
            checked[name] = value if isinstance(value, Pool) else Pool(value)
        except ValueError as exc:
            raise ValueError(f"{owner}: pool '{name}': {exc}") from None
    return checked


def merge_pools(first: dict[str, Pool], second: dict[str, Pool]) -> dict[str, Pool]:
    """Pools from two places (an engine and a run); one name given twice differently is an
    error naming it."""
    merged = dict(first)
    for name, pool in second.items():
        if name in merged and merged[name] != pool:
            raise ValueError(
                f"pool '{name}' is given twice with different sizes: {merged[name]!r} and "
                f"{pool!r}; define it once"
            )
        merged[name] = pool
    return merged


def check_pool_needs(needs: Mapping[str, Any] | None, owner: str) -> tuple[tuple[str, int], ...]:
    """What a task or call holds while an attempt runs: ``{"openai": 1}`` → sorted pairs."""
    if needs is None:
        return ()
    if not isinstance(needs, Mapping):
        raise TypeError(f"{owner}: pools= takes a dict of pool name → slots, got {needs!r}")
    pairs = []
    for name, slots in needs.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{owner}: pool names must be non-empty strings, got {name!r}")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(
                f"{owner}: pool '{name}' needs a whole number of slots >= 1, got {slots!r}"
            )
        pairs.append((name, slots))
    return tuple(sorted(pairs))


def check_priority(priority: Any, owner: str) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"{owner}: priority must be an integer, got {priority!r}")
    return priority


__all__ = [
    "ACCEPTED_RATES",
    "Pool",
    "Rate",
    "check_pool_needs",
    "check_pools_given",
    "check_priority",
    "merge_pools",
    "parse_rate",
]
