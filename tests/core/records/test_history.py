"""Run history you can debug from (issue: tracebacks, logs, why a task reran, results you
control) and a run store that fails clearly (damaged, read-only, full). Every test records
into a real SQLite file and reads it back."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import run

import cascade as cs
from cascade.records import RecordError, RecordWarning, SQLiteRunStore

log = logging.getLogger("tests.history")
STATE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _recording_home(home: Path) -> Iterator[Path]:
    STATE.clear()
    # The application's logging lets INFO through, as a pipeline's basicConfig(level=INFO)
    # does: Cascade captures what the application's levels let through.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield home
    finally:
        root.setLevel(level)
        STATE.clear()


def latest() -> Any:
    store = SQLiteRunStore()
    found = store.runs(limit=1)[0]
    return found, store.attempts(found.run_id)


@cs.task
def chatty(x: int) -> int:
    log.info("chatty got %d", x)
    log.debug("not kept at INFO")
    return x + 1


def _deep_failure(value: int) -> None:
    raise ValueError(f"bad value {value}")


@cs.task
def explode(x: int) -> int:
    log.warning("about to explode on %d", x)
    _deep_failure(x)
    return x


@cs.task(executor="processes")
def explode_in_worker(x: int) -> int:
    _deep_failure(x)
    return x


# -- failures and logs -----------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_failed_attempt_keeps_its_traceback_and_the_logs_of_every_attempt(executor: str) -> None:
    with pytest.raises(ValueError, match="bad value 2"):
        run(explode(chatty(1)), record=True, executor=executor)
    _, attempts = latest()
    by_name = {a.task_name: a for a in attempts}
    failed = by_name["explode"]
    assert failed.status == "Failed"
    assert failed.traceback is not None
    assert "in _deep_failure" in failed.traceback and "ValueError: bad value 2" in failed.traceback
    assert "cascade/runtime" not in failed.traceback  # Cascade's frames are left out
    assert [(line.level, line.logger, line.message) for line in failed.logs] == [
        ("WARNING", "tests.history", "about to explode on 2")
    ]
    ok = by_name["chatty"]
    assert ok.traceback is None
    assert [(line.level, line.message) for line in ok.logs] == [("INFO", "chatty got 1")]


def test_a_failure_in_a_worker_process_keeps_the_worker_side_frames() -> None:
    with pytest.raises(ValueError, match="bad value 7"):
        run(explode_in_worker(7), record=True)
    _, attempts = latest()
    (failed,) = [a for a in attempts if a.status == "Failed"]
    assert failed.traceback is not None
    assert "in _deep_failure" in failed.traceback  # a frame of the worker process
    assert "bad value 7" in failed.traceback


def test_logs_are_not_captured_without_recording_nor_below_the_level_and_are_capped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = logging.getLogger()
    level_before, handlers_before = root.level, list(root.handlers)

    @cs.task
    def noisy(n: int) -> int:
        for i in range(n):
            log.info("line %d", i)
        log.error("the end")
        return n

    assert run(noisy(5), record=True, record_options=cs.RecordOptions(logs="ERROR")) == 5
    _, attempts = latest()
    assert [line.message for line in attempts[-1].logs] == ["the end"]

    assert run(noisy(30), record=True, record_options=cs.RecordOptions(max_log_records=10)) == 30
    _, attempts = latest()
    lines = attempts[-1].logs
    assert [line.message for line in lines[:10]] == [f"line {i}" for i in range(10)]
    assert len(lines) == 11 and "21 more log record(s)" in lines[-1].message

    store = SQLiteRunStore()
    count = len(store.runs())
    assert run(noisy(2)) == 2  # not recorded: nothing captured, no handler left behind
    assert len(store.runs()) == count
    assert root.level == level_before and root.handlers == handlers_before


def test_the_logging_configuration_is_left_alone_unless_the_application_allows_it() -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)  # Python's default: INFO records are never made
    seen_levels: list[int] = []
    records = cs.records
    # The library's default (a `cascade` command run in this process may have allowed it).
    records.allow_capture_below_root_level(False)

    @cs.task
    def informs(n: int) -> int:
        seen_levels.append(logging.getLogger().level)
        log.info("info %d", n)
        log.warning("warning %d", n)
        return n

    assert run(informs(1), record=True) == 1
    _, attempts = latest()
    assert [line.message for line in attempts[-1].logs] == ["warning 1"]
    assert seen_levels == [logging.WARNING] and root.level == logging.WARNING

    records.allow_capture_below_root_level()  # what the `cascade` command does
    try:
        assert run(informs(2), record=True) == 2
    finally:
        records.allow_capture_below_root_level(False)
    _, attempts = latest()
    assert [line.message for line in attempts[-1].logs] == ["info 2", "warning 2"]
    assert seen_levels[-1] == logging.INFO, "lowered while the run captured"
    assert root.level == logging.WARNING, "and put back after"


# -- why a task ran --------------------------------------------------------------------------


GLOBAL_RATE = 2


@cs.task
def source(day: str) -> int:
    STATE.setdefault("ran", []).append("source")
    if STATE.get("fail_source"):
        raise ConnectionError("down")
    return len(day)


@cs.task
def scaled(value: int) -> int:
    STATE.setdefault("ran", []).append("scaled")
    return value * GLOBAL_RATE


@cs.task
def constant(n: int) -> int:
    STATE.setdefault("ran", []).append("constant")
    return n


@cs.task
def combine(a: int, b: int) -> int:
    STATE.setdefault("ran", []).append("combine")
    return a + b


def nightly(day: Any = None, n: int = 1) -> Any:
    day = cs.Param("day", default="2026-01-31") if day is None else day
    return combine(scaled(source(day)), constant(n))


def whys() -> dict[str, str | None]:
    _, attempts = latest()
    return {a.task_name: a.why_ran for a in attempts if a.status != "Skipped"}


def test_a_resume_records_why_each_task_ran_again(monkeypatch: pytest.MonkeyPatch) -> None:
    STATE["fail_source"] = True
    with pytest.raises(ConnectionError):
        run(nightly(), record=True)
    STATE["fail_source"] = False
    assert run(nightly(), resume="last") == 20 + 1
    reasons = whys()
    assert reasons["source"] is not None and reasons["source"].startswith("it failed in run")
    assert reasons["scaled"] is not None and reasons["scaled"].startswith("it did not run in run")

    # a param changed: the task reading it names the param and both values
    assert run(nightly(), resume="last", params={"day": "2026-2-1"}) == 16 + 1
    reasons = whys()
    assert reasons["source"] == (
        "param 'day' changed (\"2026-01-31\" -> \"2026-2-1\"), its input 'day'"
    )
    assert reasons["scaled"] == (
        "its input 'value' changed: task 'source', a dependency, ran again"
    )

    # a global the code reads changed
    monkeypatch.setattr(sys.modules[__name__], "GLOBAL_RATE", 3)
    assert run(nightly(), resume="last", params={"day": "2026-2-1"}) == 24 + 1
    assert whys()["scaled"] == "a global it reads changed: 'GLOBAL_RATE'"

    # an input given in the code changed
    assert run(nightly(n=5), resume="last", params={"day": "2026-2-1"}) == 24 + 5
    assert whys()["constant"] == "its input 'n' changed"


def test_a_changed_task_body_is_named_as_code_changed(tmp_path: Path) -> None:
    module = tmp_path / "flow_mod.py"

    def write(body: str) -> None:
        module.write_text(
            "import cascade as cs\n\n@cs.task\ndef step(x):\n    return " + body + "\n"
        )

    script = tmp_path / "drive.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, cascade as cs
            sys.path.insert(0, sys.argv[1])
            import flow_mod
            from cascade.records import SQLiteRunStore
            resume = sys.argv[2] if len(sys.argv) > 2 else None
            print(cs.run(flow_mod.step(1), record=True, resume=resume, log_level=None))
            store = SQLiteRunStore()
            run = store.runs(limit=1)[0]
            print([a.why_ran for a in store.attempts(run.run_id)])
            """
        )
    )
    env = dict(os.environ)
    write("x + 1")
    first = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    write("x + 10")
    second = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "last"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["11", "['its code changed']"]


def test_resume_auto_resumes_a_failed_run_and_runs_fresh_after_a_success() -> None:
    assert run(nightly(), resume="auto") == 21  # no run yet: a fresh run
    first, _ = latest()
    assert first.resumed_from is None
    STATE["fail_source"] = True
    with pytest.raises(cs.RunFailed):  # the latest succeeded: fresh again
        run(nightly(), resume="auto", on_failure="continue")
    failed, _ = latest()
    assert failed.resumed_from is None and failed.status == "Failed"
    STATE["fail_source"] = False
    STATE["ran"] = []
    assert run(nightly(), resume="auto") == 21
    resumed, _ = latest()
    assert resumed.resumed_from == failed.run_id
    assert "constant" not in STATE["ran"]  # it came from the failed run's checkpoint


def test_resume_last_without_an_earlier_run_names_the_target() -> None:
    with pytest.raises(RecordError, match="no run of 'combine' is recorded"):
        run(nightly(), resume="last")


# -- results you control ---------------------------------------------------------------------


@cs.task(checkpoint=False)
def secret(x: int) -> int:
    STATE.setdefault("ran", []).append("secret")
    return x * 100


def test_checkpoint_false_keeps_a_result_out_of_the_store_and_the_task_reruns() -> None:
    assert run(combine(secret(1), constant(2).with_checkpoint(False)), record=True) == 102
    STATE["ran"] = []
    assert run(combine(secret(1), constant(2).with_checkpoint(False)), resume="last") == 102
    # both run again; combine gets the same inputs, so its checkpoint still serves
    assert sorted(STATE["ran"]) == ["constant", "secret"]
    assert whys()["secret"] == "checkpoints are turned off for it (checkpoint=False)"
    with pytest.raises(ValueError, match="task 'x': checkpoint=: 'lots' is not a size"):
        cs.task(name="x", checkpoint="lots")(lambda: 1)


@cs.task
def big(n: int) -> bytes:
    STATE.setdefault("ran", []).append("big")
    return b"x" * n


def test_a_result_over_the_size_limit_is_not_checkpointed_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASCADE_MAX_CHECKPOINT_BYTES", "10kB")
    with pytest.warns(RecordWarning) as caught:
        run([big(20_000), big(30_000), big(100)], record=True)
    about = [str(w.message) for w in caught if "task 'big'" in str(w.message)]
    assert len(about) == 1 and "more than the run's checkpoint limit of 10.0 kB" in about[0]
    STATE["ran"] = []
    with pytest.warns(RecordWarning, match="task 'big'"):  # the resumed run warns again
        run([big(20_000), big(30_000), big(100)], resume="last")
    assert STATE["ran"] == ["big", "big"]  # the small one came from its checkpoint
    reasons = [w for w in whys().values() if w]
    assert any("more than the run's checkpoint limit" in w for w in reasons)

    # a task's own limit wins over the run's
    STATE["ran"] = []
    big_ok = big(20_000).with_checkpoint("1MB")
    run(big_ok, record=True, record_options=cs.RecordOptions(max_checkpoint_bytes=1000))
    run(big_ok, resume="last")
    assert STATE["ran"] == ["big"]


def test_retention_keeps_the_checkpoints_of_the_latest_runs_and_a_resume_still_works(
    home: Path,
) -> None:
    options = cs.RecordOptions(keep_checkpoints=2)
    for _ in range(4):
        run(big(5000), record=True, record_options=options)
    store = SQLiteRunStore()
    runs = store.runs()
    assert len(runs) == 4
    with_checkpoints = [r.run_id for r in runs if store.checkpoints(r.run_id)]
    assert with_checkpoints == [r.run_id for r in runs[:2]]
    files = [p for p in (home / "cache").rglob("*") if p.is_file()]
    STATE["ran"] = []
    run(big(5000), resume="last", record_options=options)
    assert STATE["ran"] == []  # the latest run's checkpoint is still there
    with pytest.warns(RecordWarning, match="no longer has its checkpoints"):
        run(big(5000), resume=runs[-1].run_id, record_options=options)
    assert STATE["ran"] == ["big"]
    assert "were pruned" in (whys()["big"] or "")
    assert len([p for p in (home / "cache").rglob("*") if p.is_file()]) <= len(files) + 1

    # run rows by count
    run(big(1), record=True, record_options=cs.RecordOptions(keep_runs=2))
    assert len([r for r in store.runs() if r.target == "big"]) == 2


def test_the_store_folder_gets_a_gitignore(home: Path) -> None:
    run(chatty(1), record=True)
    assert (home / ".gitignore").read_text().splitlines()[-1] == "*"


# -- a store that fails clearly ----------------------------------------------------------------


def test_a_damaged_store_is_a_record_error_naming_the_file(home: Path) -> None:
    home.mkdir()
    path = home / "runs.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(RecordError) as raised:
        run(chatty(1), resume="last")
    assert str(path) in str(raised.value) and "damaged" in str(raised.value)
    with pytest.warns(RecordWarning, match="damaged"):
        assert run(chatty(1), record=True) == 2  # recording still never fails the run


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _can_mount() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a real read-only or full filesystem needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
def test_a_store_on_read_only_media_can_be_read(tmp_path: Path, home: Path) -> None:
    assert run(chatty(1), record=True) == 2
    SQLiteRunStore().close()
    view = tmp_path / "ro-view"
    view.mkdir()
    try:
        _mount("--bind", str(home), str(view))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot bind-mount here: {exc.stderr!r}")
    try:
        _mount("-o", "remount,bind,ro", str(view))
        store = SQLiteRunStore(view / "runs.sqlite3")
        (found,) = store.runs()
        assert found.status == "Succeeded"
        assert [a.task_name for a in store.attempts(found.run_id)] == ["chatty"]
        store.close()
    finally:
        subprocess.run(["umount", str(view)], check=False)


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
def test_a_full_disk_warns_that_the_disk_is_full_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr!r}")
    try:
        monkeypatch.setenv("CASCADE_HOME", str(small / "home"))
        monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path / "cache"))
        many = [chatty(i) for i in range(400)]
        name = f"x{uuid.uuid4().hex}" * 40
        with pytest.warns(RecordWarning) as caught:
            run([cs.task(name=name)(lambda i: i)(i) for i in range(300)] + many, record=True)
        messages = " ".join(str(w.message) for w in caught)
        assert "disk is full" in messages and str(small / "home" / "runs.sqlite3") in messages
        assert "cannot rollback" not in messages
        SQLiteRunStore(small / "home" / "runs.sqlite3").close()
    finally:
        subprocess.run(["umount", str(small)], check=False)


@cs.task
async def async_chatty(x: int) -> int:
    log.info("before the first await: %d", x)  # the eager first step (3.12+)
    await asyncio.sleep(0)
    log.warning("after it: %d", x)
    return x


def test_an_async_task_on_the_fast_path_keeps_its_logs_and_none_of_its_neighbours() -> None:
    calls = [async_chatty(i) for i in range(5)]
    assert run(calls, record=True) == [0, 1, 2, 3, 4]
    _, attempts = latest()
    assert len(attempts) == 5
    for attempt in attempts:
        x = int(attempt.task_id.rpartition("-")[2]) - int(calls[0].id.rpartition("-")[2])
        assert [(line.level, line.message) for line in attempt.logs] == [
            ("INFO", f"before the first await: {x}"),
            ("WARNING", f"after it: {x}"),
        ]
