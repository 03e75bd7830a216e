"""Details of `cascade run`'s plain output: item indexes in log lines, retries that are not
failures, a map's wall time beside its sum, the summary on a narrow terminal, and DEBUG
tracebacks that start at the user's code and are never hard-wrapped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import base_env, run_cascade

pytestmark = pytest.mark.timeout(60)


def test_log_lines_name_the_item_of_a_map() -> None:
    result = run_cascade("run", "pipelines/basic.py:report")
    assert result.code == 0, result.stderr
    for k in range(4):
        assert f"[cascade] ▶ times[{k}] started" in result.stdout
        assert re.search(rf"\[cascade\] ✓ times\[{k}\] succeeded in ", result.stdout)


def test_an_attempt_that_will_be_retried_is_not_printed_as_a_failure() -> None:
    result = run_cascade("run", "pipelines/retrying.py:result")
    assert result.code == 0, result.stderr
    assert "✗" not in result.stdout and "failed:" not in result.stdout
    assert (
        "[cascade] ↻ flaky attempt 1 failed (ConnectionError: attempt 1 lost the connection)"
        in result.stdout
    )
    assert re.search(r"flaky\s+✓ Succeeded\s+3\s", result.stdout)


def test_a_map_row_shows_its_wall_time_and_the_sum_of_its_items() -> None:
    document = run_cascade("run", "pipelines/overlap.py:paused", "--output", "json").json()
    row = document["tasks"][0]
    assert row["map_items"] == 4
    assert 0 < row["wall_duration"] < row["duration"]  # the items overlapped
    text = run_cascade("run", "pipelines/overlap.py:paused").stdout
    found = re.search(r"pause \[map of 4\]\s+✓ Succeeded\s+4\s+([\d.]+)s\s+sum ([\d.]+)s", text)
    assert found, text
    assert float(found.group(1)) < float(found.group(2))


def test_the_summary_keeps_its_headers_at_60_columns() -> None:
    result = run_cascade("run", "pipelines/failing.py:published", env=base_env(COLUMNS="60"))
    assert result.code == 1
    assert re.search(r"^Task\s+Status\s+Attempts\s+Duration\s+Details\s*$", result.stdout, re.M)
    assert "…" not in result.stdout
    assert all(len(line) <= 60 for line in result.stdout.splitlines() if "─" in line)


def test_debug_tracebacks_start_at_the_users_code_and_are_not_wrapped(tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    (folder / "deep.py").write_text(
        "import cascade as cs\n\n"
        "def helper(n: int) -> int:\n"
        "    raise LookupError(f'no row {n} in the table of the long-named module')\n\n"
        "@cs.task\n"
        "def lookup(n: int) -> int:\n"
        "    return helper(n)\n\n"
        "found = lookup(7)\n"
    )
    result = run_cascade("run", f"{folder}/deep.py:found", "--log-level", "DEBUG", cwd=tmp_path)
    assert result.code == 1
    out = result.stdout
    trace = out[out.index("Traceback (most recent call last):") :].splitlines()
    path = str((folder / "deep.py").resolve())
    assert trace[1] == f'  File "{path}", line 8, in lookup', trace[:4]  # the user's frame first
    assert f'  File "{path}", line 4, in helper' in trace
    assert "LookupError: no row 7 in the table of the long-named module" in trace
    assert any("frame(s) of Cascade and asyncio before the task's code are not shown" in line
               for line in trace)  # fmt: skip
    assert "cascade/runtime" not in "\n".join(trace)
    document = run_cascade(
        "run", f"{folder}/deep.py:found", "--log-level", "DEBUG", "--output", "json", cwd=tmp_path
    ).json()
    assert document["error"]["traceback"].splitlines()[1] == trace[1]


def test_a_known_total_with_max_concurrency_in_plain_output(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    (tmp_path / "marker.txt.release").write_text("go")  # items return at once here
    result = run_cascade(
        "run", "pipelines/limited.py:from_upstream", "-j", "2",
        env=base_env(CASCADE_TEST_MARKER=str(marker)),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "14/14 tasks done" in result.stdout  # numbers, 12 items, total
