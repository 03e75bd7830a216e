"""Per-task policies as plain data. The engine reads them; nothing here runs anything."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any


class TaskTimeoutError(TimeoutError):
    """An attempt ran longer than its task's ``timeout``."""

    def __init__(self, task_name: str, seconds: float) -> None:
        super().__init__(f"task '{task_name}' timed out after {seconds:g} s")
        self.task_name = task_name
        self.seconds = seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after how long, a failed attempt of a task is tried again.

    A task makes at most ``retries + 1`` attempts. The delay before retry ``k`` (1-based) is
    ``delay * backoff ** (k - 1)``, capped by ``max_delay``, then moved by up to ``± jitter``
    of itself at random, so that many calls failing together do not retry in step. Only
    exceptions that are instances of ``on`` are retried; any other surfaces at once, and when
    the attempts run out the last exception surfaces unchanged. Each retry publishes
    ``cascade.events.TaskRetrying``. A timeout (``TaskTimeoutError``) counts as a failed
    attempt.

    Most code never builds one by hand: ``@cs.task(retries=3)`` makes ``RetryPolicy(3)`` for
    every call of the task, and ``call.with_retry(retries=3, delay=0.5, backoff=2, on=...)``
    sets one for a single call. Build one to share a policy between tasks:

    ```python
    flaky_network = cs.RetryPolicy(retries=4, delay=0.2, backoff=2.0, max_delay=5,
                                   jitter=0.1, on=(ConnectionError, TimeoutError))

    @cs.task(retries=flaky_network)
    def fetch(url: str) -> bytes: ...
    ```

    Invalid values (negative numbers, ``on`` that is not exception classes) raise
    ``ValueError`` or ``TypeError`` naming the field. See docs/policies.md.
    """

    retries: int = 0
    """How many times a failed attempt is tried again (0: once only)."""
    delay: float = 0.0
    """Seconds to wait before the first retry."""
    backoff: float = 1.0
    """What each later wait is multiplied by (2.0 doubles it every retry)."""
    max_delay: float | None = None
    """The longest wait, in seconds, whatever ``backoff`` makes of it (``None``: no cap)."""
    jitter: float = 0.0
    """The share of each wait, at most, that is added or taken at random (0.1: ± 10 %)."""
    on: tuple[type[BaseException], ...] = (Exception,)
    """The exceptions that are retried; a single class is taken as a one-class tuple."""

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


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?|b?)\s*$", re.IGNORECASE)


def parse_size(value: Any, what: str) -> int:
    """Bytes in ``1048576``, ``"500KB"``, ``"50MB"``, ``"1GiB"`` (KB, MB, GB, TB are powers of
    1000, KiB, MiB, GiB, TiB of 1024); a ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value}")
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{what}: {value!r} is not a size; give bytes, or 500KB, 50MB, 1GiB")
    number, unit, binary = float(match.group(1)), (match.group(2) or "").lower(), match.group(3)
    power = "kmgt".index(unit) + 1 if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


def format_size(size: int) -> str:
    """Bytes for people, in the units ``parse_size`` reads: ``812 B``, ``20.0 kB``,
    ``52.4 MB``, ``1.2 GB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


def check_checkpoint(value: Any, owner: str) -> bool | int:
    """A task's ``checkpoint=``: ``True`` (checkpoint under the run's size limit), ``False``
    (never), or the largest result in bytes to checkpoint (``50_000_000`` or ``"50MB"``)."""
    if isinstance(value, bool):
        return value
    try:
        return parse_size(value, f"{owner}: checkpoint=")
    except ValueError as exc:
        raise ValueError(
            f"{exc} (checkpoint= takes True, False, or the largest result to checkpoint)"
        ) from None
