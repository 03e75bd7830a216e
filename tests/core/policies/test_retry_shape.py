"""The readable task-level retry form (field report): ``@cs.task(retries=3, retry_delay=...,
backoff=...)`` gives a task default a delay and a backoff, as ``cs.RetryPolicy`` does."""

from __future__ import annotations

import pytest

import cascade as cs
from cascade.events import TaskRetrying

pytestmark = pytest.mark.timeout(60)

_attempts: list[int] = []


@cs.task(retries=3, retry_delay=0.01, backoff=2.0, max_retry_delay=0.03, retry_on=ConnectionError)
def flaky_http() -> str:
    _attempts.append(1)
    if len(_attempts) < 4:
        raise ConnectionError(f"HTTP 503 (attempt {len(_attempts)})")
    return "ok"


def test_task_level_retry_delay_and_backoff_shape_the_waits():
    _attempts.clear()
    bus = cs.MessageBus()
    retrying: list[TaskRetrying] = []
    bus.subscribe(TaskRetrying, retrying.append)
    assert cs.run(flaky_http(), bus=bus, log_level=None) == "ok"
    assert [event.delay for event in retrying] == [0.01, 0.02, 0.03]
    assert flaky_http.retry == cs.RetryPolicy(
        retries=3, delay=0.01, backoff=2.0, max_delay=0.03, on=(ConnectionError,)
    )


def test_retry_on_leaves_other_exceptions_alone():
    calls: list[int] = []

    @cs.task(retries=2, retry_delay=0.01, retry_on=(ConnectionError, TimeoutError))
    def broken() -> None:
        calls.append(1)
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        cs.run(broken(), log_level=None)
    assert calls == [1]


def test_retry_shape_without_retries_or_with_a_policy_is_refused():
    with pytest.raises(TypeError, match=r"task 'f': retry_delay= shape retries, but retries="):

        @cs.task(retry_delay=1.0)
        def f() -> None: ...

    with pytest.raises(TypeError, match="cannot be combined with retries=RetryPolicy"):

        @cs.task(retries=cs.RetryPolicy(retries=1), backoff=2.0)
        def g() -> None: ...

    with pytest.raises(ValueError, match=r"task 'h': delay must be a number >= 0"):

        @cs.task(retries=1, retry_delay=-1)
        def h() -> None: ...
