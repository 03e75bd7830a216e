"""`cascade run` through the installed console script: success, failure, usage errors, JSON
output, params, executors and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import (
    ESC,
    HERE,
    base_env,
    cascade_script,
    distribution_installed,
    run_cascade,
    wait_for_marker,
)

import cascade as cs

pytestmark = pytest.mark.timeout(60)


# -- the command itself ------------------------------------------------------------------------


def test_help_lists_the_commands_and_exit_codes() -> None:
    result = run_cascade("--help")
    assert result.code == 0, result.stderr
    for command in ("run", "graph", "dry-run", "plugins", "cache"):
        assert f"\n  {command} " in result.stdout
    assert "130 interrupted" in result.stdout
    assert "path/to/file.py:name" in result.stdout


def test_version_names_cli_core_and_python() -> None:
    result = run_cascade("--version")
    assert result.code == 0
    version = ".".join(map(str, sys.version_info[:2]))
    version_of_cascade = cs.__version__
    assert result.stdout.startswith(
        f"cascade {version_of_cascade} (cascade-core {version_of_cascade}, Python "
    )
    assert f"Python {version}" in result.stdout


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cascade_cli", "run", "pipelines/basic.py:report"],
        capture_output=True,
        text=True,
        cwd=HERE,
        env=base_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Result: total=10" in done.stdout


# -- success and failure -----------------------------------------------------------------------


def test_success_prints_log_lines_summary_and_result() -> None:
    result = run_cascade("run", "pipelines/basic.py:report", "--param", "scale=2")
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "[cascade] ✓ numbers succeeded" in out
    assert "[cascade] ✓ label succeeded" in out
    assert "label task printing to stdout" in out
    assert "times [map of 4]" in out  # the summary table row of the mapped task
    assert "✓ Succeeded in" in out and "7/7 tasks done" in out
    assert out.rstrip().endswith("Result: total=20")
    assert ESC not in out + result.stderr


@pytest.mark.parametrize(
    ("target", "result_text"),
    [
        ("pipelines/basic.py:both", "Result: [10, 'total=10']"),
        ("pipelines/basic.py:as_dict", "Result: {'sum': 10, 'label': 'total=10'}"),
        ("pipelines/basic.py:build", "Result: total=6"),  # a zero-argument function
    ],
)
def test_targets_can_be_lists_dicts_and_builder_functions(target: str, result_text: str) -> None:
    result = run_cascade("run", target)
    assert result.code == 0, result.stderr
    assert result_text in result.stdout


def test_module_targets_import_from_the_current_directory(tmp_path: Path) -> None:
    package = tmp_path / "mypipes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text(
        "import cascade as cs\n\n"
        "@cs.task\ndef double(x: int) -> int:\n    return 2 * x\n\n"
        "doubled = double(cs.Param('x', type=int))\n"
    )
    result = run_cascade("run", "mypipes.flow:doubled", "-p", "x=21", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "Result: 42" in result.stdout


def test_a_failed_task_exits_1_naming_the_task_and_error() -> None:
    result = run_cascade("run", "pipelines/failing.py:published")
    assert result.code == 1
    out = result.stdout
    assert "task 'validate' (validate-" in out
    assert "failed: ValueError: bad row 3" in out
    assert "--log-level DEBUG for the traceback" in out
    assert "Traceback" not in out + result.stderr
    assert "publish    · NotRun" in out  # never started: the run stopped at the failure


def test_a_big_graph_summary_is_merged_per_task_name() -> None:
    result = run_cascade("run", "pipelines/many.py:total", "--log-level", "WARNING")
    assert result.code == 1
    assert re.search(
        r"square \(60 calls\)\s+✗ Failed\s+60\s+\S+\s+1 Failed, 59 Succeeded; ArithmeticError",
        result.stdout,
    )
    assert re.search(r"add\s+· NotRun\s+0", result.stdout)
    assert "60/61 tasks done" in result.stdout
    document = run_cascade("run", "pipelines/many.py:total", "--output", "json").json()
    assert len(document["tasks"]) == 61  # JSON always lists every call


def test_debug_log_level_prints_the_traceback() -> None:
    result = run_cascade("run", "pipelines/failing.py:published", "--log-level", "debug")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.stdout
    assert 'failing.py", line' in result.stdout
    assert 'raise ValueError(f"bad row {bad[0]}")' in result.stdout


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run", "pipelines/nothing_here.py:x"],
            ["file 'pipelines/nothing_here.py' does not exist"],
        ),
        (
            ["run", "pipelines/basic.py:missing"],
            ["'basic' has no 'missing'", "Targets in 'basic': summed, report, both, as_dict"],
        ),
        (["run", "pipelines/basic.py"], ["is not a target", "Targets in 'basic'"]),
        (["run", "pipelines/basic.py:not_a_graph"], ["is int 42", "TARGET must name"]),
        (["run", "pipelines/basic.py:needs_arguments"], ["needs arguments", "count: 'int'"]),
        (["run", "pipelines/basic.py:scale"], ["is a cs.Param"]),
        (["run", "no_such_package.flows:x"], ["no module named 'no_such_package'"]),
        (
            ["run", "pipelines/basic.py:report", "-p", "scael=2"],
            ["unknown param(s) scael", "this graph takes: scale: int = 1"],
        ),
        (
            ["run", "pipelines/typed_params.py:described"],
            ["missing required param(s) count", "--param count=VALUE"],
        ),
        (
            ["run", "pipelines/typed_params.py:described", "-p", "count=many"],
            ["param 'count': cannot convert 'many' to int"],
        ),
        (
            ["run", "pipelines/typed_params.py:described", "-p", "count=1", "-p", "verbose=maybe"],
            ["param 'verbose': cannot convert 'maybe' to bool"],
        ),
        (["run", "pipelines/basic.py:report", "-p", "scale"], ["--param takes key=value"]),
        (
            ["run", "pipelines/basic.py:report", "--executor", "warp-drive"],
            ["unknown executor 'warp-drive'", "local, processes, threads"],
        ),
        (["run", "pipelines/basic.py:report", "-j", "0"], ["'--max-concurrency' / '-j'"]),
        (["run", "pipelines/basic.py:report", "--output", "yaml"], ["'yaml' is not one of"]),
        (
            ["run", "pipelines/basic.py:report", "--params", "missing.json"],
            ["cannot read --params 'missing.json'"],
        ),
        (["frobnicate"], ["No such command 'frobnicate'"]),
    ],
)
def test_usage_errors_exit_2_and_say_what_exists(args: list[str], expected: list[str]) -> None:
    result = run_cascade(*args)
    assert result.code == 2, (result.stdout, result.stderr)
    for text in expected:
        assert text in result.stderr
    assert result.stdout == ""


def test_a_target_that_raises_on_import_is_a_usage_error_with_its_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.py").write_text("import cascade as cs\n\nvalue = 1 / 0\n")
    result = run_cascade("run", "broken.py:value", cwd=tmp_path)
    assert result.code == 2
    assert "importing 'broken.py' raised ZeroDivisionError: division by zero" in result.stderr
    assert 'broken.py", line 3' in result.stderr


def test_a_missing_resource_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "needs.py").write_text(
        "import cascade as cs\n\n"
        "@cs.task\ndef use(db: str = cs.inject('database')) -> str:\n    return db\n\n"
        "used = use()\n"
    )
    result = run_cascade("run", "needs.py:used", cwd=tmp_path)
    assert result.code == 2
    assert "the run could not start" in result.stderr
    assert "needs resource 'database', which is not registered" in result.stderr
    as_json = run_cascade("run", "needs.py:used", "--output", "json", cwd=tmp_path)
    assert as_json.code == 2
    assert as_json.stdout == ""  # no document for a run that never started
    assert "needs resource 'database'" in as_json.stderr


# -- JSON output -------------------------------------------------------------------------------


def test_json_output_is_one_document_on_stdout() -> None:
    result = run_cascade("run", "pipelines/basic.py:as_dict", "--output", "json", "-p", "scale=3")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is the document
    assert document["status"] == "Succeeded"
    assert document["result"] == {"sum": 30, "label": "total=30"}
    assert document["error"] is None
    assert document["params"] == {"scale": 3}
    assert len(document["run_id"]) == 32 and int(document["run_id"], 16) >= 0
    assert document["target"] == "pipelines/basic.py:as_dict"
    tasks = {row["task"]: row for row in document["tasks"]}
    assert list(tasks) == ["numbers", "times", "total", "label"]
    assert all(row["status"] == "Succeeded" for row in tasks.values())
    assert all(row["duration"] >= 0 for row in tasks.values())
    assert tasks["times"]["map_items"] == 4 and tasks["times"]["attempts"] == 4
    assert tasks["label"]["executor"] == "local"
    # Logs, and what tasks print, go to stderr.
    assert "label task printing to stdout" in result.stderr
    assert f"run {document['run_id'][:8]} succeeded" in result.stderr


def test_json_output_of_a_failure() -> None:
    result = run_cascade("run", "pipelines/failing.py:published", "--output", "json")
    assert result.code == 1
    document = result.json()
    assert document["status"] == "Failed"
    assert document["result"] is None
    error = document["error"]
    assert error["type"] == "ValueError" and error["message"] == "bad row 3"
    assert error["task"] == "validate" and error["task_id"].startswith("validate-")
    assert "traceback" not in error
    statuses = {row["task"]: row["status"] for row in document["tasks"]}
    assert statuses == {"load": "Succeeded", "validate": "Failed", "publish": "NotRun"}
    assert [row["error"] for row in document["tasks"]] == [None, "ValueError: bad row 3", None]


def test_json_output_with_debug_carries_the_traceback() -> None:
    result = run_cascade(
        "run", "pipelines/failing.py:published", "--output", "json", "--log-level", "DEBUG"
    )
    assert result.code == 1
    assert "bad row" in result.json()["error"]["traceback"]


def test_retries_are_counted() -> None:
    result = run_cascade("run", "pipelines/retrying.py:result", "--output", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["result"] == "OK AFTER RETRIES"
    assert document["retries"] == 2
    flaky = document["tasks"][0]
    assert (flaky["task"], flaky["status"], flaky["attempts"]) == ("flaky", "Succeeded", 3)
    assert "retrying in" in result.stderr


# -- params ------------------------------------------------------------------------------------


def test_param_values_are_parsed_as_json_and_converted_by_the_param_type() -> None:
    result = run_cascade(
        "run",
        "pipelines/typed_params.py:described",
        "--output",
        "json",
        "-p",
        "count=3",
        "-p",
        "ratio=2",  # JSON 2, converted to 2.0 by type=float
        "-p",
        "name=007",  # type=str keeps the text as typed
        "-p",
        "verbose=yes",
        "-p",
        "price=1.10",  # type=Decimal gets the text, not the float 1.1
        "-p",
        'tags=["a", "b"]',
        "-p",
        'anything={"k": [1, null]}',  # no type: the JSON value as is
    )
    assert result.code == 0, result.stderr
    assert result.json()["result"] == {
        "count": ["int", "3"],
        "ratio": ["float", "2.0"],
        "name": ["str", "007"],
        "verbose": ["bool", "True"],
        "price": ["Decimal", "1.10"],
        "tags": ["list", "['a', 'b']"],
        "anything": ["dict", "{'k': [1, None]}"],
    }
    assert result.json()["params"]["price"] == "1.10"


def test_a_value_that_is_not_json_is_a_string() -> None:
    result = run_cascade(
        "run", "pipelines/typed_params.py:described", "--output", "json",
        "-p", "count=1", "-p", "anything=2024-05-01",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["result"]["anything"] == ["str", "2024-05-01"]


def test_params_from_a_file_and_stdin_with_param_overriding(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"count": 5, "name": "from file", "ratio": 0.25}))
    result = run_cascade(
        "run", "pipelines/typed_params.py:described", "--output", "json",
        "--params", str(params), "-p", "name=override",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    values = result.json()["result"]
    assert values["count"] == ["int", "5"]
    assert values["name"] == ["str", "override"]
    assert values["ratio"] == ["float", "0.25"]

    from_stdin = run_cascade(
        "run", "pipelines/basic.py:report", "--output", "json", "--params", "-",
        stdin='{"scale": 5}',
    )  # fmt: skip
    assert from_stdin.code == 0, from_stdin.stderr
    assert from_stdin.json()["result"] == "total=50"

    not_an_object = run_cascade("run", "pipelines/basic.py:report", "--params", "-", stdin="[1]")
    assert not_an_object.code == 2
    assert "must hold a JSON object" in not_an_object.stderr


# -- executors and concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("executor", ["threads", "processes", "example-inline"])
def test_executor_option_selects_any_registered_executor(executor: str) -> None:
    if executor == "example-inline" and not distribution_installed("cascade-example-plugin"):
        pytest.skip("cascade-example-plugin is not installed (python dev.py test installs it)")
    result = run_cascade(
        "run", "pipelines/basic.py:report", "--output", "json", "--executor", executor,
        "--max-concurrency", "1",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["result"] == "total=10"
    assert {row["executor"] for row in document["tasks"]} == {executor}
    # Even from a worker process, what a task prints stays off stdout in JSON mode.
    assert "label task printing to stdout" in result.stderr


# -- Ctrl-C ------------------------------------------------------------------------------------


def _start_slow(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "marker.txt"
    process = subprocess.Popen(
        [cascade_script(), "run", "pipelines/slow.py:waiting", *extra],
        cwd=HERE,
        env=base_env(CASCADE_TEST_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    return process, marker


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX only")
def test_ctrl_c_tears_resources_down_and_exits_130(tmp_path: Path) -> None:
    process, marker = _start_slow(tmp_path)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "▶ wait_forever started" in line:
            break
    else:
        pytest.fail(f"the slow task never started: {''.join(seen)} {process.stderr}")
    wait_for_marker(marker, "set up", "waiting")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    assert marker.read_text() == "set up\nwaiting\ntorn down\n"
    assert "■ wait_forever cancelled" in out
    assert "■ Cancelled in" in out
    assert "interrupted: tasks stopped and resources torn down" in out
    assert "interrupted: stopping tasks and tearing resources down" in err


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX only")
def test_ctrl_c_with_json_output_reports_the_cancelled_run(tmp_path: Path) -> None:
    process, marker = _start_slow(tmp_path, "--output", "json")
    wait_for_marker(marker, "set up", "waiting")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    document = json.loads(out)
    assert document["status"] == "Cancelled"
    assert document["error"]["type"] == "Cancelled"
    assert {row["task"]: row["status"] for row in document["tasks"]} == {
        "quick": "Succeeded",
        "wait_forever": "Cancelled",
    }
    assert marker.read_text() == "set up\nwaiting\ntorn down\n"
