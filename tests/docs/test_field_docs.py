"""Docs that failed as written (field report): the history page's Python reading of the latest
run works when that run was not a resume."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _block_after(markdown: Path, heading: str) -> str:
    text = markdown.read_text(encoding="utf-8")
    start = text.index(heading)
    found = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert found is not None, f"no python block after {heading!r}"
    return found.group(1)


def test_reading_the_history_works_when_the_latest_run_was_not_a_resume(tmp_path):
    snippet = _block_after(ROOT / "docs" / "history.md", "Reading the history from Python")
    script = (
        "import cascade as cs\n\n"
        "@cs.task\n"
        "def report():\n"
        "    return 'ok'\n\n"
        "cs.run(report(), record=True, log_level=None)\n\n" + snippet
    )
    path = tmp_path / "read_history.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"CASCADE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "Succeeded not a resume" in first
    assert "report" in done.stdout


def test_the_cli_page_lists_every_built_in_command():
    from cascade_cli.main import make_cli

    names = sorted(make_cli().commands)
    assert "runs" in names
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| [`cascade ")]
    listed = {re.match(r"\| \[`cascade ([\w-]+)", line).group(1) for line in table}  # type: ignore[union-attr]
    assert listed == set(names)
    rule = next(line for line in text.splitlines() if line.startswith("- Built-in command names"))
    rule += next(line for line in text.splitlines()[text.splitlines().index(rule) + 1 :] if line)
    for name in names:
        assert f"`{name}`" in rule, name
