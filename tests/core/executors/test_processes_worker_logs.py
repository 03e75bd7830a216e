"""What a task logs inside a ``processes`` worker, in a recorded run that captures logs, is
shipped back with its result (or its failure) and stored with the attempt, as for a task run
in this process: read back from the real SQLite run store and from the installed
``cascade runs show RUN --task ID``. A run that captures nothing collects nothing in the
workers."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade import records
from cascade.records import SQLiteRunStore

log = logging.getLogger("tests.worker_logs")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("CASCADE_HOME", str(home))
    monkeypatch.delenv("CASCADE_CAPTURE_LOGS", raising=False)
    # The application lets INFO through, as a pipeline's basicConfig(level=INFO) does; the
    # workers do not run that configuration, and still ship what it lets through.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield home
    finally:
        root.setLevel(level)


def _collecting() -> bool:
    """Whether this worker has the log collector on its root logger right now."""
    return any(type(h).__name__ == "_WorkerLogHandler" for h in logging.getLogger().handlers)


@cs.task(executor="processes")
def chatty_in_worker(x: int) -> dict[str, Any]:
    log.info("worker %d got %d", os.getpid(), x)
    log.debug("not kept at INFO")
    logging.getLogger("cascade.internal").warning("not the task's")
    logging.getLogger("some.library").warning("a library the task calls")
    return {"pid": os.getpid(), "collecting": _collecting()}


@cs.task(executor="processes")
def fails_in_worker(x: int) -> int:
    log.warning("about to fail on %d", x)
    try:
        raise KeyError("inner")
    except KeyError:
        log.exception("caught one")
    raise ValueError(f"bad value {x}")


@cs.task(executor="processes")
def noisy_in_worker(n: int) -> int:
    for i in range(n):
        log.info("line %d", i)
    return n


def _latest() -> tuple[Any, dict[str, Any]]:
    store = SQLiteRunStore()
    found = store.runs(limit=1)[0]
    return found, {a.task_name: a for a in store.attempts(found.run_id)}


def test_logs_of_a_task_in_a_worker_are_stored_with_its_attempt() -> None:
    result = cs.run(chatty_in_worker(1), record=True, log_level=None)
    assert result["pid"] != os.getpid() and result["collecting"]
    _, attempts = _latest()
    lines = attempts["chatty_in_worker"].logs
    assert [(line.level, line.logger, line.message) for line in lines] == [
        ("INFO", "tests.worker_logs", f"worker {result['pid']} got 1"),
        ("WARNING", "some.library", "a library the task calls"),
    ]
    assert all(line.time > 0 for line in lines)


def test_a_failure_in_a_worker_keeps_its_logs_and_its_worker_side_frames(home: Path) -> None:
    with pytest.raises(ValueError, match="bad value 3"):
        cs.run(fails_in_worker(3), record=True, log_level=None)
    run, attempts = _latest()
    failed = attempts["fails_in_worker"]
    assert failed.status == "Failed" and failed.traceback is not None
    assert "in fails_in_worker" in failed.traceback
    assert [(line.level, line.message.splitlines()[0]) for line in failed.logs] == [
        ("WARNING", "about to fail on 3"),
        ("ERROR", "caught one"),
    ]
    assert "KeyError: 'inner'" in failed.logs[1].message  # the logged exception's traceback

    script = Path(sys.executable).with_name("cascade")
    env = {**os.environ, "CASCADE_HOME": str(home)}
    shown = subprocess.run(
        [str(script), "runs", "show", run.run_id, "--task", failed.task_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"WARNING +tests\.worker_logs: about to fail on 3", shown.stdout)
    assert re.search(r"ERROR +tests\.worker_logs: caught one", shown.stdout)
    assert "ValueError: bad value 3" in shown.stdout


def test_worker_logs_follow_the_runs_level_and_cap() -> None:
    options = cs.RecordOptions(max_log_records=3)
    assert cs.run(noisy_in_worker(10), record=True, record_options=options, log_level=None) == 10
    _, attempts = _latest()
    lines = attempts["noisy_in_worker"].logs
    assert [line.message for line in lines[:3]] == ["line 0", "line 1", "line 2"]
    assert len(lines) == 4 and "7 more log record(s)" in lines[-1].message

    options = cs.RecordOptions(logs="WARNING")
    cs.run(chatty_in_worker(2), record=True, record_options=options, log_level=None)
    _, attempts = _latest()
    assert [line.message for line in attempts["chatty_in_worker"].logs] == [
        "a library the task calls"
    ]


def test_the_applications_level_bounds_what_workers_ship() -> None:
    root = logging.getLogger()
    level = root.level
    # The library's default, whatever a `cascade` command run earlier in this process allowed.
    records.allow_capture_below_root_level(False)
    root.setLevel(logging.WARNING)  # Python's default: INFO is not let through
    try:
        cs.run(chatty_in_worker(4), record=True, log_level=None)
    finally:
        root.setLevel(level)
    _, attempts = _latest()
    assert [line.level for line in attempts["chatty_in_worker"].logs] == ["WARNING"]


def test_nothing_is_collected_in_workers_when_the_run_captures_nothing() -> None:
    assert not cs.run(chatty_in_worker(5), log_level=None)["collecting"]  # not recorded
    options = cs.RecordOptions(logs=None)
    result = cs.run(chatty_in_worker(6), record=True, record_options=options, log_level=None)
    assert not result["collecting"]
    _, attempts = _latest()
    assert attempts["chatty_in_worker"].logs == ()
