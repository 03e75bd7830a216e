"""A traced run's record carries the trace id of cascade-otel's run span (issue 13), read
from OpenTelemetry's current span while the run starts; an untraced run records none."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import Traced

import cascade as cs
from cascade.records import SQLiteRunStore


@cs.task
def add(a: int, b: int) -> int:
    return a + b


def test_a_traced_run_records_the_trace_id_of_its_run_span(traced: Traced, tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    assert asyncio.run(traced.engine().run(add(1, 2), record=store)) == 3
    (recorded,) = store.runs()
    assert recorded.trace_id == f"{traced.run_span().context.trace_id:032x}"


def test_an_untraced_run_records_no_trace_id(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    assert cs.run(add(1, 2), record=store, log_level=None) == 3
    assert store.runs()[0].trace_id is None
