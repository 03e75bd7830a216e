"""Run names: ``@cs.task(run_name="fetch-{page}")`` names each call (map items by their own
item) in ``TaskNamed``, the log lines, run records and ``cascade runs show``; a bad format
field is an error naming it when the task is declared, and a callable that raises names the
call instead of failing it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.events import TaskNamed
from cascade.records import SQLiteRunStore, summarize_tasks


@cs.task(run_name="fetch-{page}")
def fetch(page: int, size: int = 10) -> int:
    return page * size


@cs.task(run_name=lambda day, region: f"{region}/{day}")
def load(day: str, region: str) -> str:
    return f"{region}:{day}"


@cs.task
def pages() -> list[int]:
    return [1, 2, 3]


def names_of(target: Any, **options: Any) -> tuple[Any, dict[str, str], str]:
    bus = cs.MessageBus()
    named: dict[str, str] = {}
    bus.subscribe(TaskNamed, lambda event: named.__setitem__(event.task_id, event.call_name))
    lines = io.StringIO()
    cs.HumanReadableLogSubscriber(bus, stream=lines)
    result = cs.run(target, bus=bus, log_level=None, **options)
    return result, named, lines.getvalue()


def test_each_call_and_each_map_item_is_named_in_events_and_log_lines() -> None:
    single = fetch(7)
    mapped = fetch.map(pages())
    result, named, lines = names_of([single, mapped, load("2026-01-31", region="eu")])
    assert result == [70, [10, 20, 30], "eu:2026-01-31"]
    assert named[single.id] == "fetch-7"
    assert sorted(v for k, v in named.items() if k.startswith(mapped.id)) == [
        "fetch-1",
        "fetch-2",
        "fetch-3",
    ]
    assert "eu/2026-01-31" in named.values()
    for name in ("fetch-7", "fetch-1", "fetch-3", "eu/2026-01-31"):
        assert f"▶ {name} started" in lines and f"✓ {name} succeeded" in lines


def test_run_records_and_runs_show_carry_the_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASCADE_HOME", str(tmp_path / "home"))
    cs.run(fetch.map([4, 5]), record=True, log_level=None)
    store = SQLiteRunStore()
    run = store.runs(limit=1)[0]
    summaries = summarize_tasks(store.attempts(run.run_id))
    assert sorted(s.call_name for s in summaries if s.call_name) == ["fetch-4", "fetch-5"]
    assert {s.task_name for s in summaries} == {"fetch"}  # the task name stays the task's


def test_a_bad_run_name_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"uses \{pgae\}, which is not a parameter.*page"):
        cs.task(run_name="fetch-{pgae}")(lambda page: page)
    with pytest.raises(ValueError, match="positional field"):
        cs.task(run_name="fetch-{0}")(lambda page: page)
    with pytest.raises(TypeError, match="run_name= takes a format string"):
        cs.task(run_name=3)(lambda page: page)


def test_a_run_name_callable_that_raises_names_the_call_and_the_task_still_runs() -> None:
    def broken(x: int) -> str:
        raise KeyError("nope")

    task = cs.task(name="calc", run_name=broken)(lambda x: x + 1)
    result, named, _ = names_of(task(1))
    assert result == 2
    assert list(named.values()) == ["calc[run_name failed: KeyError: 'nope']"]
