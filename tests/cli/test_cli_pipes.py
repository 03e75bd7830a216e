"""Ctrl-C and closed readers when the output of `cascade run` goes through a pipe, as a shell
runs `cascade run ... | cat`: Ctrl-C signals the whole foreground process group (the reader
dies with it), and the run must still cancel, tear its resources down and exit 130, without a
traceback. A reader that stops reading early is not an error of the run either."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cli_helpers import base_env, start_piped, wait_for_marker

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.name == "nt", reason="process groups and SIGINT are POSIX"),
]


def _env(marker: Path) -> dict[str, str]:
    return base_env(CASCADE_TEST_MARKER=str(marker))


@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout-piped", "2>&1-piped"])
def test_ctrl_c_through_a_pipe_cancels_tears_down_and_exits_130(
    tmp_path: Path, stderr_too: bool
) -> None:
    marker = tmp_path / "marker.txt"
    piped = start_piped(
        ["run", "pipelines/naps.py:naps"], ["cat"], tmp_path, stderr_too=stderr_too,
        env=_env(marker),
    )  # fmt: skip
    wait_for_marker(marker, "set up", "napping 0", "napping 1", "napping 2")
    piped.interrupt()  # cat dies of it; cascade's next writes find no reader
    code, err = piped.wait()
    assert code == 130, err
    assert marker.read_text().splitlines()[-1] == "torn down"
    assert "Traceback" not in err and "BrokenPipeError" not in err
    if not stderr_too:
        assert "interrupted: stopping tasks and tearing resources down" in err


def test_ctrl_c_with_sync_tasks_through_a_pipe_waits_for_them_then_exits_130(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker.txt"
    piped = start_piped(["run", "pipelines/naps.py:holds"], ["cat"], tmp_path, env=_env(marker))
    wait_for_marker(marker, "set up", "holding 0", "holding 1")
    piped.interrupt()
    wait_for_stderr = piped.stderr_file
    assert wait_for_stderr is not None
    wait_for_marker(wait_for_stderr, "cascade: interrupted: stopping tasks and tearing resources "
                    "down (Ctrl-C twice more to quit at once)")  # fmt: skip
    os.kill(piped.cascade.pid, signal.SIGINT)  # the second Ctrl-C says what it waits for
    waiting = (
        "cascade: still waiting for 2 sync task(s) to return: hold[0], hold[1] (a call running "
        "in a thread cannot be stopped); resources are torn down after that. Ctrl-C once more "
        "quits at once, without teardown"
    )
    wait_for_marker(wait_for_stderr, waiting)
    assert "torn down" not in marker.read_text()  # still waiting for them, as it said
    Path(str(marker) + ".release").write_text("go")
    code, err = piped.wait()
    assert code == 130, err
    assert marker.read_text().splitlines()[-1] == "torn down"
    assert "Traceback" not in err


def test_a_reader_that_stops_early_is_not_an_error_of_the_run(tmp_path: Path) -> None:
    piped = start_piped(
        ["run", "pipelines/progress.py:finished", "--log-level", "DEBUG"], ["head", "-1"],
        tmp_path,
    )  # fmt: skip
    code, err = piped.wait()
    assert code == 0, err  # the run succeeded; nobody read the rest
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "Exception ignored" not in err
