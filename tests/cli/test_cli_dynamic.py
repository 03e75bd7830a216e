"""``cascade run`` with tasks that return graphs and calls that fall back, through the
installed console script."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(120)


def test_json_output_lists_the_tasks_added_at_run_time_with_their_parent(tmp_path: Path) -> None:
    done = run_cascade("run", "pipelines/dynamic.py:pipeline", "--output", "json", env=base_env())
    assert done.code == 0, done.stderr
    document = done.json()
    assert document["result"] == 6
    rows = {(row["task"], row["parent_task_id"]) for row in document["tasks"]}
    fan_id = next(row["task_id"] for row in document["tasks"] if row["task"] == "fan")
    assert rows == {("fan", None), ("total", None), ("parse", fan_id)}
    parses = [row for row in document["tasks"] if row["task"] == "parse"]
    assert len(parses) == 3 and all(row["status"] == "Succeeded" for row in parses)


def test_the_summary_shows_added_tasks_and_a_call_that_fell_back(tmp_path: Path) -> None:
    done = run_cascade("run", "pipelines/dynamic.py:broken", env=base_env())
    assert done.code == 0, done.stderr
    assert "Result: [1, 5]" in done.stdout
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "↩ FellBack" in lines["boom"]
    assert "✓ Succeeded" in lines["parse"]


def test_a_resource_failing_in_setup_is_named(tmp_path: Path) -> None:
    done = run_cascade("run", "pipelines/failing_resource.py:pipeline", env=base_env())
    assert done.code == 1
    assert "resource 'db' failed to set up: ConnectionRefusedError: db is down" in done.stdout
    as_json = run_cascade(
        "run", "pipelines/failing_resource.py:pipeline", "--output", "json", env=base_env()
    )
    error = as_json.json()["error"]
    assert (error["type"], error["resource"], error["task"]) == (
        "ConnectionRefusedError",
        "db",
        None,
    )
