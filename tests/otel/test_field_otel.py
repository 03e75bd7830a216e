"""Span attributes as a new user reads them (field report): a failed run's ``error.type`` is
the public name of Cascade's exception, and the run's targets are a sequence of strings (a
tuple in the SDK, an array of strings over OTLP), not one text."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import cascade as cs

pytestmark = pytest.mark.timeout(30)


@cs.task
def load() -> int:
    return 1


@cs.task
def publish() -> int:
    raise ValueError("bucket is read-only")


def test_a_keep_going_runs_error_type_is_the_public_name(traced: Any) -> None:
    engine = traced.engine()
    with pytest.raises(cs.RunFailed):
        asyncio.run(engine.run([load(), publish()], on_failure="continue"))
    run = traced.run_span()
    assert run.attributes["error.type"] == "cascade.RunFailed"
    targets = run.attributes["cascade.run.targets"]
    assert not isinstance(targets, str)
    assert list(targets) == ["load", "publish"]


def test_a_param_errors_type_is_the_public_name_too(traced: Any) -> None:
    engine = traced.engine()

    @cs.task(dynamic=True)
    def grow() -> Any:
        return load()

    with pytest.raises(cs.ParamError):
        asyncio.run(engine.run(grow(), {"nope": 1}))
    assert traced.run_span().attributes["error.type"] == "cascade.ParamError"
