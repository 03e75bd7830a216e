"""What ``cascade ui`` computes from a record (``cascade_ui.views``, ``cascade_ui.reader``),
without a server: grouping by task, the states of a running run, the task table's pages and
the timeline's columns, and a running run's view following a real SQLite store as a recorder
writes into it."""

from __future__ import annotations

import time
from pathlib import Path

from cascade.records import (
    RUNNING,
    GraphNode,
    RecordBatch,
    RecordedAttempt,
    RecordedRun,
    RunEnd,
    SQLiteRunStore,
)
from cascade_ui.reader import Reader
from cascade_ui.views import DRAWN, STATES, TIMELINE_FIELDS, build_view

T0 = 1_700_000_000.0


def attempt(
    task_id: str, name: str, status: str = "Succeeded", at: float = 0.0, **more: object
) -> RecordedAttempt:
    return RecordedAttempt(
        task_id, name, status, started=T0 + at, ended=T0 + at + 0.5, duration=0.5, **more
    )  # type: ignore[arg-type]


GRAPH = [
    GraphNode("param:n", "param:n", "param"),
    GraphNode("load-1", "load", "map", ("param:n",)),
    GraphNode("check-2", "check", "task", ("load-1",)),
    GraphNode("fan-3", "fan", "task", ("check-2",)),
    GraphNode("total-4", "total", "task", ("fan-3",)),
]


def run(status: str = "Succeeded") -> RecordedRun:
    return RecordedRun("r" * 32, "total", status, started=T0, host="elsewhere")


def states(view: object) -> dict[str, str]:
    return {g.name: g.status for g in view.groups}  # type: ignore[attr-defined]


def test_a_finished_run_is_grouped_by_task_with_counts() -> None:
    attempts = [
        attempt("load-1[0]", "load"),
        attempt("load-1[1]", "load", at=0.1),
        attempt("check-2", "check", "Failed", at=1, will_retry=True, error="ValueError: x"),
        attempt("check-2", "check", at=2, attempt=2),
        attempt("parse-9", "parse", at=3, parent_task_id="fan-3"),
        attempt("parse-10", "parse", at=3.1, parent_task_id="fan-3"),
        attempt("fan-3", "fan", at=4),
    ]
    view = build_view(run(), GRAPH, attempts)
    groups = {g.name: g for g in view.groups}
    assert groups["load"].units == 2 and groups["load"].states == {"Succeeded": 2}
    assert groups["check"].attempts == 2 and groups["check"].status == "Succeeded"
    dynamic = groups["parse"]
    assert (dynamic.kind, dynamic.units, dynamic.deps, dynamic.group_id) == (
        "dynamic",
        2,
        ("fan-3",),
        "fan-3/parse",
    )
    assert groups["total"].status == "NotRun"
    assert groups["param:n"].status == "Param"
    document = view.document()
    assert document["unit_total"] == 6 and document["attempt_total"] == 7
    assert [f["state"] for f in document["failures"]] == ["Retried"]

    # The table: units in the order they started, then what did not run; filters and pages.
    table = view.tasks(limit=3)
    assert table["total"] == 7
    assert [t["task_id"] for t in table["tasks"]] == ["load-1[0]", "load-1[1]", "check-2"]
    assert table["tasks"][2]["attempts"] == 2
    assert view.tasks(offset=6)["tasks"][0]["task_id"] == "total-4"
    assert view.tasks(status="NotRun")["total"] == 1
    assert [t["task_id"] for t in view.tasks(group="fan-3/parse")["tasks"]] == [
        "parse-9",
        "parse-10",
    ]
    assert view.tasks(name="PARSE")["total"] == 2

    timeline = view.timeline(fields=TIMELINE_FIELDS)
    assert timeline["total"] == 7 and timeline["start_us"][0] == 0
    assert timeline["duration_us"][0] == 500_000
    assert [timeline["states"][s] for s in timeline["state"][2:4]] == ["Retried", "Succeeded"]
    assert timeline["suffix"][:2] == ["[0]", "[1]"] and timeline["suffix"][2] == ""
    # A dynamic group's attempts carry their whole task id; fan-3 is its own group's id.
    assert view.timeline(after=5, fields=["suffix"]) == {
        "after": 5,
        "total": 7,
        "states": STATES,
        "suffix": ["parse-10", ""],
    }
    assert set(view.timeline()) == {"after", "total", "states", *DRAWN}


def test_a_running_run_shows_what_runs_and_what_waits() -> None:
    live = run(RUNNING)
    view = build_view(live, GRAPH, [attempt("load-1[0]", "load")])
    # The map may get more items until something downstream ran; what waits on it is pending.
    assert states(view) == {
        "param:n": "Param",
        "load": "Running",
        "check": "Pending",
        "fan": "Pending",
        "total": "Pending",
    }
    view = build_view(
        live, GRAPH, [attempt("load-1[0]", "load"), attempt("check-2", "check", at=1)]
    )
    assert states(view)["load"] == "Succeeded" and states(view)["check"] == "Succeeded"
    assert states(view)["fan"] == "Running" and states(view)["total"] == "Pending"
    failed = build_view(live, GRAPH, [attempt("load-1[0]", "load", "Failed", error="x")])
    assert states(failed)["load"] == "Failed"


def test_a_running_runs_view_follows_the_store(tmp_path: Path) -> None:
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    reader = Reader(store)
    assert reader.runs() == [] and not reader.exists()
    assert not (tmp_path / "runs.sqlite3").exists()
    now = time.time()
    started = RecordedRun("a" * 32, "total", RUNNING, started=now, host="elsewhere", heartbeat=now)
    store.write(RecordBatch(started.run_id, seq=1, start=started))
    store.write(RecordBatch(started.run_id, seq=2, attempts=[attempt("load-1", "load")]))
    first = reader.view(started.run_id)
    assert first is not None and first.run.status == RUNNING
    assert first.unit_ids == ["load-1"]
    assert reader.view(started.run_id) is first  # nothing changed: the same view

    store.write(
        RecordBatch(
            started.run_id,
            seq=3,
            attempts=[attempt("total-2", "total", at=1)],
            tasks={"Succeeded": 2},
            end=RunEnd("Succeeded", now + 2, 2.0),
        )
    )
    deadline = time.monotonic() + 30
    latest = reader.view(started.run_id)
    while latest is not None and latest.run.status == RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)  # the view is remade at most every MIN_REFRESH seconds
        latest = reader.view(started.run_id)
    assert latest is not None and latest.run.status == "Succeeded"
    assert latest.unit_ids == ["load-1", "total-2"]
    assert reader.view(started.run_id) is latest  # a finished run's view is kept
    (listed,) = reader.runs(prefix="aaaa")
    assert listed["short_id"] == "aaaaaaaa" and listed["tasks"] == {"Succeeded": 2}
    assert reader.runs(prefix="b") == []


def test_tracebacks_logs_and_run_names_are_shown_when_the_store_keeps_them() -> None:
    """Newer stores add fields to an attempt; older ones have none of them."""
    from collections import namedtuple

    # (RecordedAttempt has these fields now; a store may still give an attempt without them)
    fields = list(
        dict.fromkeys([*RecordedAttempt._fields, "traceback", "logs", "why_ran", "call_name"])
    )
    Rich = namedtuple("Rich", fields, defaults=[None] * len(fields))  # type: ignore[misc]
    Line = namedtuple("Line", ["time", "level", "logger", "message"])
    failed = Rich(
        "fetch-1",
        "fetch",
        "Failed",
        1,
        T0,
        T0 + 1,
        1.0,
        "local",
        error="KeyError: 'page'",
        traceback="Traceback (most recent call last):\n  ...\nKeyError: 'page'",
        logs=(Line(T0 + 0.5, "WARNING", "fetch", "<i>slow</i> page"),),
        why_ran="its input 'page' changed",
        call_name="fetch-3",
    )
    view = build_view(run("Failed"), [GraphNode("fetch-1", "fetch")], [failed])  # type: ignore[list-item]
    (failure,) = view.document()["failures"]
    assert failure["traceback"].endswith("KeyError: 'page'")
    assert failure["logs"] == [[T0 + 0.5, "WARNING", "fetch", "<i>slow</i> page"]]
    assert failure["why_ran"] == "its input 'page' changed" and failure["call_name"] == "fetch-3"
    (row,) = view.tasks()["tasks"]
    assert row["call_name"] == "fetch-3" and row["why_ran"] == "its input 'page' changed"
    plain = build_view(run("Failed"), [], [attempt("fetch-1", "fetch", "Failed", error="x")])
    assert "traceback" not in plain.document()["failures"][0]


STREAM_GRAPH = [
    GraphNode("pages-1", "pages", "stream"),
    GraphNode("parse-2", "parse", "map", ("pages-1",)),
    GraphNode("store-3", "store", "map", ("parse-2",)),
    GraphNode("fold-4", "fold", "task", ("store-3",)),
]


def test_a_running_stream_shows_every_stage_running_until_the_fold_has_all_items() -> None:
    live = run(RUNNING)
    # Items flow through the stages while the generator still runs (docs/streams.md): a
    # stage with items done is still running until the stage after it has all of them.
    view = build_view(
        live,
        STREAM_GRAPH,
        [attempt("parse-2[0]", "parse"), attempt("store-3[0]", "store", at=0.1)],
    )
    assert [g.kind for g in view.groups] == ["stream", "map", "map", "task"]
    assert states(view) == {
        "pages": "Running",
        "parse": "Running",
        "store": "Running",
        "fold": "Pending",
    }
    done = build_view(
        live,
        STREAM_GRAPH,
        [
            attempt("parse-2[0]", "parse"),
            attempt("store-3[0]", "store", at=0.1),
            attempt("pages-1", "pages", at=0.2),
            attempt("fold-4", "fold", at=0.3),
        ],
    )
    assert set(states(done).values()) == {"Succeeded"}
