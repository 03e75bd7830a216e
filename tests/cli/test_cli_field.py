"""The command line as a new user meets it (field report): params that join at run time, typed
defaults and maps over params, through the installed ``cascade`` and real pipes."""

from __future__ import annotations

import pytest
from cli_helpers import run_cascade

pytestmark = pytest.mark.timeout(120)


def test_a_param_used_only_in_a_returned_graph_can_be_set_on_the_command_line():
    done = run_cascade("run", "pipelines/field.py:job", "-p", "threshold=12", "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["result"] == [20]
    # The default applies when it is not given.
    done = run_cascade("run", "pipelines/field.py:job", "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["result"] == [8, 12, 20]


def test_a_misspelt_param_of_a_growing_graph_warns_first_and_fails_the_run():
    done = run_cascade("run", "pipelines/field.py:job", "-p", "treshold=12")
    assert done.code == 2
    assert "param(s) treshold are not declared by the graph as built" in done.stderr
    assert "unknown param(s) treshold: nothing in this run declared them" in done.stdout


def test_a_misspelt_param_of_a_graph_that_cannot_grow_is_a_usage_error():
    done = run_cascade("run", "pipelines/field.py:dated", "-p", "dya=2026-01-01")
    assert done.code == 2
    assert "unknown param(s) dya; this graph takes: day" in done.stderr


def test_a_default_goes_through_the_params_type_on_the_command_line():
    done = run_cascade("run", "pipelines/field.py:dated", "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["result"] == "date 2026-01-31"
    done = run_cascade(
        "run", "pipelines/field.py:dated", "-p", "day=2026-02-01", "--output", "json"
    )
    assert done.json()["result"] == "date 2026-02-01"


def test_a_string_param_is_passed_whole_to_every_map_item():
    done = run_cascade("run", "pipelines/field.py:regions", "-p", "region=west", "--output", "json")
    assert done.code == 0, done.stderr
    assert done.json()["result"] == ["west:1", "west:2", "west:3"]


def test_a_failed_map_item_is_reported_with_its_own_error():
    done = run_cascade("run", "pipelines/field.py:pages", "--pool", "api=4", "--output", "json")
    assert done.code == 1, done.stderr
    error = done.json()["error"]
    index = error["task_id"].rsplit("[", 1)[1].rstrip("]")
    assert error["task"] == "fetch_page"
    assert error["message"] == f"page {index}: HTTP 503"
    done = run_cascade("run", "pipelines/field.py:pages", "--pool", "api=4")
    last = [line for line in done.stdout.splitlines() if "failed:" in line][-1]
    index = last.split("[", 1)[1].split("]", 1)[0]
    assert "task 'fetch_page' (" in last and last.endswith(f"page {index}: HTTP 503")


# -- item 8: dry-run makes the run's checks ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipelines/field.py:needs_pool"], "task 'pooled' needs pool 'api'"),
        (["pipelines/field.py:misspelt_resource"], "needs resource 'databse'"),
        (["pipelines/field.py:needs_pool", "--pool", "api=1", "-e", "warp"], "unknown executor"),
        (["pipelines/field.py:unpicklable"], "task 'inner' runs on executor 'processes'"),
        (["pipelines/field.py:dated", "-p", "day=31/01"], "param 'day'"),
    ],
)
def test_dry_run_refuses_what_run_refuses(args, message):
    dry = run_cascade("dry-run", *args)
    assert dry.code == 2, dry.stdout + dry.stderr
    assert message in dry.stderr
    assert "would run" not in dry.stdout
    if "unpicklable" not in args[0]:  # the run finds that one out when it submits the task
        run = run_cascade("run", "--no-record", *args)
        assert run.code == 2 and message in run.stderr


def test_dry_run_takes_runs_options_and_says_its_own_exit_codes():
    done = run_cascade("dry-run", "pipelines/field.py:needs_pool", "--pool", "api=2", "-j", "2")
    assert done.code == 0, done.stderr
    assert "1 task(s) would run" in done.stdout
    shown = run_cascade("dry-run", "--help")
    assert "--pool" in shown.stdout and "--executor" in shown.stdout
    assert "0 the run would start, 2 it would be refused" in shown.stdout
    assert "1 a task failed" not in shown.stdout


# -- item 10: a resource whose teardown raises is named ------------------------------------


def test_a_failed_teardown_names_the_resource():
    done = run_cascade("run", "--no-record", "pipelines/field.py:teardown_fails")
    assert done.code == 1
    assert (
        "resource 'flaky_connection' failed to tear down: RuntimeError: error while closing"
        in done.stdout
    )
    done = run_cascade(
        "run", "--no-record", "pipelines/field.py:teardown_fails", "--output", "json"
    )
    error = done.json()["error"]
    assert error["resource"] == "flaky_connection"
    assert error["type"] == "RuntimeError" and error["message"] == "error while closing"


# -- item 12: keep-going failures list each task with its own error -----------------------


def test_keep_going_failures_list_each_task_with_its_own_error():
    done = run_cascade(
        "run", "--no-record", "--keep-going", "pipelines/field.py:two_failures", "--output", "json"
    )
    assert done.code == 1
    error = done.json()["error"]
    assert error["type"] == "RunFailed"
    assert "sub-exceptions" not in error["message"]
    assert "(ValueError: bad row 3)" in error["message"]
    assert "(ConnectionError: page 3: HTTP 503)" in error["message"]
    assert [(f["task"], f["type"], f["message"]) for f in error["failures"]] == [
        ("early_fail", "ValueError", "bad row 3"),
        ("flaky", "ConnectionError", "page 3: HTTP 503"),
    ]
    text = run_cascade("run", "--no-record", "--keep-going", "pipelines/field.py:two_failures")
    lines = text.stdout.splitlines()
    at = lines.index("2 task(s) failed:")
    assert lines[at + 1].startswith("  task 'early_fail' (early_fail-")
    assert lines[at + 1].endswith("): ValueError: bad row 3")
    assert lines[at + 2].endswith("): ConnectionError: page 3: HTTP 503")


# -- item 14: a restored task has one name everywhere -------------------------------------

RESUMABLE = """
import os
import cascade as cs

@cs.task
def load() -> int:
    return 10

@cs.task
def check(value: int) -> int:
    if os.environ.get("FIELD_FAIL") == "1":
        raise ValueError("check failed")
    return value + 1

flow = check(load())
"""


def test_a_task_restored_by_resume_is_a_checkpoint_in_run_and_in_the_history(tmp_path):
    from cli_helpers import base_env

    (tmp_path / "flow.py").write_text(RESUMABLE, encoding="utf-8")
    env = base_env(CASCADE_HOME=str(tmp_path / "home"))
    failed = run_cascade("run", "flow.py:flow", cwd=tmp_path, env={**env, "FIELD_FAIL": "1"})
    assert failed.code == 1
    resumed = run_cascade(
        "run", "flow.py:flow", "--resume", "last", "--output", "json", cwd=tmp_path, env=env
    )
    assert resumed.code == 0, resumed.stderr
    rows = {row["task"]: row for row in resumed.json()["tasks"]}
    assert (rows["load"]["status"], rows["load"]["skip_reason"]) == ("Skipped", "Checkpoint")
    shown = run_cascade("runs", "show", "last", "--output", "json", cwd=tmp_path, env=env)
    history = {row["task"]: row for row in shown.json()["tasks"]}
    assert history["load"]["skip_reason"] == "Checkpoint"
    plain = run_cascade("run", "flow.py:flow", "--resume", "last", cwd=tmp_path, env=env)
    assert "load skipped (Checkpoint)" in plain.stdout
    assert "CacheHit" not in plain.stdout


# -- item 11: the DEBUG traceback starts at the task's own code ---------------------------


def test_the_debug_traceback_starts_at_the_task_even_with_a_run_scoped_resource():
    done = run_cascade(
        "run", "--no-record", "pipelines/field.py:fails_with_resource", "--log-level", "DEBUG"
    )
    assert done.code == 1
    lines = done.stdout.splitlines()
    at = lines.index("Traceback (most recent call last):")
    assert lines[at + 1].endswith("in load_rows"), lines[at : at + 4]
    frames = [line for line in lines[at:] if line.startswith('  File "')]
    assert [line.rsplit(" in ", 1)[1] for line in frames] == ["load_rows", "parse_rows"]
    assert "cascade/runtime" not in "\n".join(lines[at:])


# -- item 13: the live display's last frame shows the real outcome and counts ---------------


def _progress_line(text: str) -> str:
    return next(line for line in text.splitlines() if " tasks " in line and "/" in line)


def test_a_failed_keep_going_run_ends_on_a_failed_frame():
    from cli_helpers import Terminal

    terminal = Terminal("run", "--no-record", "--keep-going", "pipelines/field.py:two_failures")
    code = terminal.finish()
    assert code == 1
    screen = terminal.text()
    line = _progress_line(screen)
    assert line.lstrip().startswith("✗") and "3/3" in line, screen
    assert "✓" not in line
    assert "✗ failed" in screen and "failures: 2" in screen


def test_a_stopped_run_leaves_no_spinner_nor_stale_queue_and_counts_every_item(tmp_path):
    from cli_helpers import Terminal

    release = tmp_path / "release"
    terminal = Terminal(
        "run", "--no-record", "--pool", "api=1", "pipelines/field.py:queued",
        FIELD_RELEASE=str(release),
    )  # fmt: skip
    terminal.wait_for(r"waiting for pool 'api' \(\d+ queued\)")
    release.write_text("go")
    code = terminal.finish()
    assert code == 1
    screen = terminal.text()
    assert "waiting for pool" not in screen, screen
    assert "running:" not in screen
    line = _progress_line(screen)
    assert line.lstrip().startswith("✗"), screen
    assert "✗ failed" in screen
    assert "[map of 15]" in screen, screen


def test_an_interrupted_run_ends_on_an_interrupted_frame(tmp_path):
    from cli_helpers import Terminal, wait_for_marker

    marker = tmp_path / "marker.txt"
    terminal = Terminal(
        "run", "--no-record", "pipelines/naps.py:holds", CASCADE_TEST_MARKER=str(marker)
    )
    wait_for_marker(marker, "set up", "holding 0", "holding 1")
    terminal.wait_for(r"running: hold\[")
    terminal.child.sendintr()
    terminal.wait_for(r"interrupted: stopping tasks and tearing resources down")
    (tmp_path / "marker.txt.release").write_text("go")  # the threads return; the run ends
    assert terminal.finish() == 130
    screen = terminal.text()
    line = _progress_line(screen)
    assert line.lstrip().startswith("■"), screen
    assert "■ interrupted" in screen and "running:" not in screen
