"""A script that runs a graph on worker processes from its unguarded top level fails at once
with one line naming the missing ``if __name__ == "__main__":`` (field report), instead of a
long multiprocessing traceback ending in ``BrokenProcessPool``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

BODY = """\
import cascade as cs

@cs.task
def double(x):
    return 2 * x

"""


def _script(tmp_path: Path, tail: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.py"
    path.write_text(BODY + textwrap.dedent(tail), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=100,
        check=False,
    )


def test_an_unguarded_top_level_run_on_processes_names_the_missing_guard(tmp_path):
    done = _script(
        tmp_path, 'print(cs.run(double.map([1, 2, 3]), executor="processes", log_level=None))\n'
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cascade.executors.main_guard.MissingMainGuardError: ")
    assert "job.py again" in last and "line 7" in last
    assert 'if __name__ == "__main__":' in last
    assert "BrokenProcessPool" not in done.stderr
    assert (
        len(done.stderr.splitlines()) < 50
    )  # Python's own traceback of the call; 116 lines before


def test_a_call_made_from_a_top_level_function_call_is_caught_too(tmp_path):
    done = _script(
        tmp_path,
        """\
        def main():
            return cs.run(double.map([1, 2]), executor="processes", log_level=None)

        print(main())
        """,
    )
    assert done.returncode == 1
    assert "MissingMainGuardError" in done.stderr and "line 10" in done.stderr


def test_a_guarded_script_runs_on_processes(tmp_path):
    done = _script(
        tmp_path,
        """\
        if __name__ == "__main__":
            print(cs.run(double.map([1, 2, 3]), executor="processes", log_level=None))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 4, 6]"
