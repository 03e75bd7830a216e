"""The live display on a captured screen: `cascade` runs in a real pseudo-terminal and what it
writes is fed to a terminal emulator (pyte), so the tests read the screen a person would see,
not the byte stream: log lines of tasks above the final frame, the known total with -j, and the
cursor shown again whichever way the command ends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import FRAME, Terminal, wait_for_marker

pexpect = pytest.importorskip("pexpect", reason="pexpect is in the test dependency group")
pyte = pytest.importorskip("pyte", reason="pyte is in the test dependency group")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX only"),
]


def test_task_logs_scroll_above_the_display_and_the_cursor_comes_back(tmp_path: Path) -> None:
    terminal = Terminal(
        "run", "pipelines/naps.py:warnings", CASCADE_TEST_MARKER=str(tmp_path / "m")
    )
    assert terminal.finish() == 0, terminal.text()
    lines = terminal.text().splitlines()
    final = max(i for i, line in enumerate(lines) if FRAME.search(line))
    assert FRAME.search(lines[final]).group(1, 2) == ("6", "6")  # type: ignore[union-attr]
    for i in range(5):
        # Whole lines, each on its own, all above the final frame: none overwritten.
        warning = lines.index(f"WARNING pipeline: warning number {i} from a task")
        printed = lines.index(f"print number {i} from a task")
        assert warning < final and printed < final
    assert "Result: 10" in terminal.text()
    assert terminal.screen.cursor.hidden is False


@pytest.mark.parametrize(("target", "total"), [("from_upstream", 14), ("from_literal", 13)])
def test_with_max_concurrency_the_display_shows_the_known_total(
    tmp_path: Path, target: str, total: int
) -> None:
    marker = tmp_path / "marker.txt"
    terminal = Terminal("run", f"pipelines/limited.py:{target}", "-j", "2",
                        CASCADE_TEST_MARKER=str(marker))  # fmt: skip
    wait_for_marker(marker, "item 0", "item 1")  # two items admitted, ten waiting for a slot
    terminal.wait_for(rf"(\d+)/{total} tasks")
    Path(str(marker) + ".release").write_text("go")
    assert terminal.finish() == 0, terminal.text()
    # Before the upstream returned, the map counted once (2 tasks), or, in a frame drawn before
    # the plan was read (a loaded machine), a lower bound marked "+"; after it, the whole map,
    # never a wrong total presented as known.
    for frame in terminal.frames:
        _, frame_total, more = frame
        assert (frame_total in {2, total} and more == "") or (
            more == "+" and frame_total < total
        ), terminal.frames
    assert terminal.frames[-1] == (total, total, "")


def test_ctrl_c_three_times_quits_and_gives_the_cursor_back(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    terminal = Terminal("run", "pipelines/naps.py:holds", CASCADE_TEST_MARKER=str(marker))
    wait_for_marker(marker, "set up", "holding 0", "holding 1")
    terminal.wait_for(r"running: hold\[0\], hold\[1\]|running: hold\[1\], hold\[0\]")
    terminal.child.sendintr()
    terminal.wait_for(r"interrupted: stopping tasks and tearing resources down")
    terminal.child.sendintr()
    found = terminal.wait_for(
        r"still waiting for 2 sync task\(s\) to return: hold\[\d\], hold\[\d\]"
    )
    assert found
    assert "(a call running in a thread cannot be stopped)" in terminal.text().replace("\n", "")
    terminal.child.sendintr()
    assert terminal.finish() == 130
    assert "quitting without teardown" in terminal.text()
    assert terminal.screen.cursor.hidden is False  # not left hidden by the display
    assert "torn down" not in marker.read_text()  # it quit without teardown, as it said
