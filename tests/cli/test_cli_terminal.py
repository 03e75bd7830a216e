"""The items of issue 17 as a person at a terminal meets them: `cascade` in a real
pseudo-terminal, its output read from an emulated screen (see ``cli_helpers.Terminal``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cli_helpers import FRAME, Terminal, wait_for_marker

pytest.importorskip("pexpect", reason="pexpect is in the test dependency group")
pytest.importorskip("pyte", reason="pyte is in the test dependency group")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX only"),
]


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("stations=oslo", "param 'stations': cannot convert 'oslo' to list: text is not a list"),
        ("days=2.5", "param 'days': cannot convert '2.5' to int: 2.5 has a fractional part"),
        ("ratio=true", "param 'ratio': cannot convert 'true' to float: the boolean True is not"),
        ("days=null", "param 'days': cannot convert 'null' to int: null (None) is not an int"),
        ("home=oslo", "param 'home': cannot convert 'oslo' to Station: text is not a mapping"),
    ],
)
def test_a_refused_param_is_a_usage_error(param: str, message: str) -> None:
    terminal = Terminal("run", "pipelines/strict_params.py:described", "-p", param, columns=200)
    assert terminal.finish() == 2
    screen = terminal.text()
    assert f"Error: {message}" in screen
    assert "Traceback" not in screen and not terminal.frames  # nothing ran


def test_a_model_param_is_validated_from_a_json_object() -> None:
    terminal = Terminal(
        "run", "pipelines/strict_params.py:described", "-p", 'home={"name": "oslo", "lat": 59.9}',
        "-p", 'stations=["oslo"]', "-p", "days=3", columns=160,
    )  # fmt: skip
    assert terminal.finish() == 0, terminal.text()
    screen = terminal.text()
    assert "'home': \"Station('oslo', 59.9)\"" in screen
    assert "'stations': \"['oslo']\"" in screen and "'days': '3'" in screen


def test_a_cyclic_graph_is_an_error_line_in_the_terminal() -> None:
    terminal = Terminal("run", "pipelines/cyclic.py:looped", columns=200)
    assert terminal.finish() == 2
    assert "the graph cannot be built: the graph has a cycle through" in terminal.text()
    assert "Traceback" not in terminal.text()


def test_the_summary_at_60_columns_keeps_its_headers() -> None:
    terminal = Terminal("run", "pipelines/basic.py:report", columns=60)
    assert terminal.finish() == 0
    assert re.search(r"^Task\s+Status\s+Attempts\s+Duration\s+Details$", terminal.text(), re.M)
    assert "…" not in terminal.text()


def test_retries_and_map_items_on_the_live_display() -> None:
    terminal = Terminal("run", "pipelines/retrying.py:result", "--log-level", "INFO")
    assert terminal.finish() == 0
    screen = terminal.text()
    assert "↻ flaky attempt 1 failed (ConnectionError: attempt 1 lost the connection)" in screen
    assert "✗" not in screen and "failures: 0" in screen
    items = Terminal("run", "pipelines/basic.py:report", "--log-level", "INFO")
    assert items.finish() == 0
    assert all(f"▶ times[{k}] started" in items.text() for k in range(4))
    assert re.search(r"times \[map of 4\]\s+✓ Succeeded\s+4\s+[\d.]+s\s+sum [\d.]+s", items.text())


def test_dask_in_a_terminal_ctrl_c_stops_without_worker_tracebacks(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    marker = tmp_path / "marker.txt"
    terminal = Terminal(
        "run", "pipelines/dask_work.py:waiting", "-e", "dask", CASCADE_TEST_MARKER=str(marker)
    )
    wait_for_marker(marker, "set up", "waiting 0", "waiting 1")
    terminal.child.sendintr()  # the terminal signals its whole foreground group: workers too
    assert terminal.finish() == 130, terminal.text()
    screen = terminal.text()
    assert "interrupted: tasks stopped and resources torn down" in screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen
    assert "torn down" in marker.read_text().splitlines()
    assert terminal.screen.cursor.hidden is False
    assert FRAME.search(screen)
