"""``AttemptTable``: a recorded run's attempts read as the SQLite store keeps them (successes
as columns), which ``cascade runs show`` picks, counts and groups without an object per
succeeded call. Every answer is checked against the same run read attempt by attempt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.records import AttemptTable, SQLiteRunStore, group_tasks

FLAKY: dict[int, int] = {}


@pytest.fixture(autouse=True)
def recording(home: Path) -> Iterator[Path]:
    """Every test records into its own store (``home``, from conftest.py)."""
    FLAKY.clear()
    yield home


@cs.task(retries=1, retry_delay=0)
def item(i: int) -> int:
    if i % 10 == 3:
        raise ValueError(f"item {i} is bad")
    if i % 10 == 5 and FLAKY.setdefault(i, 0) == 0:  # fails once, then succeeds on its retry
        FLAKY[i] = 1
        raise ConnectionError(f"item {i} flaked")
    return i


@cs.task
def total(values: list) -> int:
    return sum(values)


@cs.task
def side() -> str:
    return "ok"


def _recorded() -> tuple[Any, AttemptTable, list[Any]]:
    with pytest.raises(cs.RunFailed):
        cs.run(
            [total(item.map(list(range(60)))), side()],
            record=True,
            on_failure="continue",
            log_level=None,
        )
    store = SQLiteRunStore()
    run = store.runs(limit=1)[0]
    return run, AttemptTable.read(store, run.run_id), store.attempts(run.run_id)


def _last(attempts: list[Any]) -> dict[str, Any]:
    return {a.task_id: a for a in attempts}


def test_the_table_picks_the_same_tasks_as_the_attempts_do() -> None:
    _, table, attempts = _recorded()
    last = _last(attempts)
    assert table.task_ids() == list(last)
    for status in ("Succeeded", "failed", "SKIPPED", "Cancelled"):
        assert table.task_ids(status) == [
            i for i, a in last.items() if a.status.lower() == status.lower()
        ]
    failed = table.task_ids("Failed")
    assert sorted(int(i.split("[")[1][:-1]) for i in failed) == [3, 13, 23, 33, 43, 53]
    # a call that failed once and succeeded on its retry counts as succeeded
    retried = [i for i in last if i.endswith("[5]")]
    assert retried and retried[0] in table.task_ids("Succeeded")
    assert table.task_ids("Skipped") == [i for i in last if i.startswith("total")]


def test_the_table_groups_as_group_tasks_does_with_and_without_a_selection() -> None:
    _, table, attempts = _recorded()

    def plain(groups: list[Any]) -> list[tuple[Any, ...]]:
        return [
            (g.task_name, g.calls, g.statuses, g.attempts, round(g.duration, 6), g.failed_ids)
            for g in groups
        ]

    groups = {g.task_name: g for g in table.groups()}
    assert groups["item"].calls == 60
    assert groups["item"].statuses == {"Succeeded": 54, "Failed": 6}
    assert groups["item"].attempts == 60 + 6 + 6  # every failed call and every flaky one retried
    assert groups["item"].error is not None and "is bad" in groups["item"].error
    assert groups["total"].statuses == {"Skipped": 1} and groups["total"].reason == "UpstreamFailed"
    assert groups["side"].statuses == {"Succeeded": 1}
    assert plain(table.groups()) == plain(group_tasks(attempts))
    chosen = set(table.task_ids("Failed")[:4])
    assert plain(table.groups(chosen)) == plain(group_tasks(attempts, chosen))
    assert [g.calls for g in table.groups(chosen)] == [4]


def test_the_table_makes_attempts_of_the_chosen_tasks_only_with_their_details() -> None:
    _, table, attempts = _recorded()
    assert table.attempts() == attempts
    chosen = set(table.task_ids("Failed")[:2]) | {table.task_ids("Succeeded")[0]}
    shown = table.attempts(chosen)
    assert shown == [a for a in attempts if a.task_id in chosen]
    failures = [a for a in shown if a.status == "Failed"]
    assert len(failures) >= 4  # two failed calls, each with its retry
    assert all(a.traceback and a.error in a.traceback for a in failures)


def test_the_table_of_one_task_by_name_or_id() -> None:
    _, table, attempts = _recorded()
    by_name = table.of_task("item")
    assert by_name.attempts() == [a for a in attempts if a.task_name == "item"]
    one = next(a.task_id for a in attempts if a.task_id.endswith("[7]"))
    assert [a.task_id for a in table.of_task(one).attempts()] == [one]
    assert table.of_task("side").task_ids("Succeeded") == [
        a.task_id for a in attempts if a.task_name == "side"
    ]
    assert table.of_task("nope").task_ids() == []


def test_counts_and_limits_agree_with_the_attempts_also_for_a_store_of_rows_only() -> None:
    run, table, attempts = _recorded()
    rows_only = AttemptTable(run.run_id, [(attempts, ())])  # a store without columns
    last = _last(attempts)
    for read in (table, rows_only):
        for status in (None, "Succeeded", "Failed", "Skipped", "Cancelled"):
            expected = [i for i, a in last.items() if status is None or a.status == status]
            assert read.count(status) == len(expected)
            assert read.task_ids(status) == expected
            for limit in (1, 7, 100):
                assert read.task_ids(status, limit) == expected[:limit]
        assert read.count() == 62 and read.count("Succeeded") == 55
