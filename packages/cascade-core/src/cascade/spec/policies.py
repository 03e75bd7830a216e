"""Per-task policies as plain data. The engine reads them; nothing here runs anything."""

from __future__ import annotations

import random
from dataclasses import dataclass


class TaskTimeoutError(TimeoutError):
    """An attempt ran longer than its task's ``timeout``."""

    def __init__(self, task_name: str, seconds: float) -> None:
        super().__init__(f"task '{task_name}' timed out after {seconds:g} s")
        self.task_name = task_name
        self.seconds = seconds


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``retries + 1`` attempts. The delay before retry ``k`` (1-based) is
    ``delay * backoff ** (k - 1)``, capped by ``max_delay``, then moved by up to ``± jitter``
    of itself at random. Only exceptions that are instances of ``on`` are retried."""

    retries: int = 0
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {self.retries!r}")
        for name in ("delay", "backoff", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.max_delay is not None and self.max_delay < 0:
            raise ValueError(f"max_delay must be >= 0 or None, got {self.max_delay!r}")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        for kind in on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"on= takes exception classes, got {kind!r}")
        object.__setattr__(self, "on", on)

    def delay_before(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        wait = self.delay * (self.backoff ** (retry_number - 1))
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        if self.jitter and wait:
            wait += wait * self.jitter * ((rng or random).uniform(-1.0, 1.0))
        return max(wait, 0.0)


def check_timeout(seconds: float | None) -> float | None:
    """Validate a timeout given by a user; ``None`` means no limit."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {seconds!r}")
    return float(seconds)


def check_concurrency(limit: int | None, what: str) -> int | None:
    """Validate a concurrency limit given by a user; ``None`` means unlimited."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{what} must be a whole number >= 1 or None, got {limit!r}")
    return limit
