"""The live progress display in a real pseudo-terminal, and plain output without control codes
when stdout is a pipe."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ESC, HERE, base_env, cascade_script, run_cascade, wait_for_marker

pexpect = pytest.importorskip("pexpect", reason="pexpect is in the test dependency group")

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX only"),
]

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def spawn(*args: str, **env: str) -> Any:
    return pexpect.spawn(
        cascade_script(),
        list(args),
        cwd=str(HERE),
        env=base_env(TERM="xterm-256color", **env),
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=45,
    )


def run_in_terminal(*args: str) -> tuple[int, str]:
    """Run ``cascade`` in a pseudo-terminal; return its exit status and everything it wrote."""
    child = spawn(*args)
    child.expect(pexpect.EOF)
    written = child.before
    child.close()
    return child.exitstatus, written


def test_live_display_shows_counts_running_tasks_and_the_summary() -> None:
    code, raw = run_in_terminal("run", "pipelines/progress.py:finished")
    assert code == 0, raw
    assert ESC + "[" in raw  # a live display: cursor movement and colour
    screen = CONTROL.sub("", raw)
    # Frames of the progress line: done / total tasks and the elapsed time.
    counts = re.findall(r"(\d+)/7 tasks (\d+:\d\d:\d\d)", screen)
    assert counts, screen
    assert ("7", counts[-1][1]) == counts[-1]  # the last frame shows everything done
    assert any(done != "7" for done, _ in counts)  # and earlier frames showed it under way
    assert "running: step" in screen
    assert "retries: 0" in screen and "failures: 0" in screen
    # The summary table and the final line.
    summary = screen[screen.rindex("Task ") :]
    assert re.search(r"Task\s+Status\s+Attempts\s+Duration", summary)
    assert len(re.findall(r"step\s+✓ Succeeded\s+1\s+0\.\d{3}s", summary)) == 6
    assert re.search(r"gather\s+✓ Succeeded\s+1", summary)
    assert "✓ Succeeded in" in summary and "7/7 tasks done" in summary
    assert "Result: 15" in summary
    # Log lines below WARNING stay out of the way of the display.
    assert "▶ step started" not in screen


def test_live_display_of_a_failure_shows_it_and_exits_1() -> None:
    code, raw = run_in_terminal("run", "pipelines/failing.py:published")
    assert code == 1
    screen = CONTROL.sub("", raw)
    assert "failures: 1" in screen
    assert "✗ validate failed: ValueError: bad row 3" in screen  # the warning log line
    assert re.search(r"validate\s+✗ Failed\s+1\s+\S+\s+ValueError: bad row 3", screen)
    assert "task 'validate' (validate-" in screen


def test_live_display_counts_retries() -> None:
    code, raw = run_in_terminal("run", "pipelines/retrying.py:result")
    assert code == 0
    screen = CONTROL.sub("", raw)
    assert "retries: 2" in screen
    assert "· 2 retries" in screen


def test_ctrl_c_in_the_terminal_tears_down_and_exits_130(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    child = spawn("run", "pipelines/slow.py:waiting", CASCADE_TEST_MARKER=str(marker))
    child.expect("wait_forever")  # the live display names it among the running tasks
    wait_for_marker(marker, "set up", "waiting")
    child.sendintr()  # Ctrl-C, through the terminal's line discipline
    child.expect(pexpect.EOF)
    screen = CONTROL.sub("", child.before)
    child.close()
    assert child.exitstatus == 130, screen
    assert marker.read_text() == "set up\nwaiting\ntorn down\n"
    assert re.search(r"wait_forever\s+■ Cancelled", screen)
    assert "interrupted: tasks stopped and resources torn down" in screen


@pytest.mark.parametrize(
    "args",
    [
        ["run", "pipelines/progress.py:finished"],
        ["run", "pipelines/failing.py:published", "--log-level", "DEBUG"],
        ["run", "pipelines/retrying.py:result"],
        ["plugins"],
        ["dry-run", "pipelines/basic.py:report"],
        ["run", "pipelines/nothing.py:x"],
    ],
)
def test_no_control_codes_when_stdout_is_a_pipe(args: list[str]) -> None:
    # Even where the environment asks for colour, a pipe gets plain text.
    result = run_cascade(*args, env=base_env(TERM="xterm-256color", FORCE_COLOR="1"))
    assert result.code in (0, 1, 2)
    assert result.stdout or result.stderr
    assert ESC not in result.stdout
    assert ESC not in result.stderr


def test_plain_output_is_log_lines_then_the_summary() -> None:
    result = run_cascade("run", "pipelines/progress.py:finished")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[cascade] run ") and lines[0].endswith("started for gather")
    assert sum(line == "[cascade] ▶ step started" for line in lines) == 6
    assert any(line.startswith("[cascade] ✓ gather succeeded in ") for line in lines)
    assert re.search(r"^Task\s+Status\s+Attempts\s+Duration\s+Details$", result.stdout, re.M)
    assert lines[-1] == "Result: 15"
