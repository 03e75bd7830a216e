"""The typing suite: the files in ``cases/`` checked by the real type checkers, each run in a
subprocess as a user would run it: ``mypy --strict`` without and with the plugin
``cascade.mypy``, and pyright in strict mode.

- ``values.py``: ``assert_type`` of tasks, calls, maps, fallbacks, params and run results;
  no checker reports anything.
- ``wiring_ok.py``: correctly wired calls; no checker reports anything.
- ``wiring_errors.py``: wrongly wired calls, each marked ``# E: <part of the message>``;
  mypy with the plugin reports exactly those lines (a note names the parameter of each
  wrongly typed argument), while mypy without it and pyright, which see a task's arguments
  as ``Any``, report nothing.
- ``plugin_values.py``: generic tasks, whose values only mypy with the plugin solves.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CASES = Path(__file__).parent / "cases"
VALUES = CASES / "values.py"
WIRING_OK = CASES / "wiring_ok.py"
WIRING_ERRORS = CASES / "wiring_errors.py"
PLUGIN_VALUES = CASES / "plugin_values.py"
ALL = [VALUES, WIRING_OK, WIRING_ERRORS]
PYRIGHT = Path(sys.executable).parent / "pyright"
MYPY_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<message>.*)$")


def _expected_errors() -> dict[int, str]:
    """``{line: part of the message}`` for every line of wiring_errors.py marked ``# E:``."""
    found = {}
    for number, text in enumerate(WIRING_ERRORS.read_text().splitlines(), 1):
        marked = re.search(r"\S  # E: (.+)$", text)
        if marked:
            found[number] = marked[1].strip()
    return found


def _mypy(tmp_path: Path, files: list[Path], plugin: bool) -> list[tuple[str, int, str, str]]:
    """(file name, line, "error" or "note", message) for everything mypy reports."""
    config = tmp_path / ("with-plugin.ini" if plugin else "without-plugin.ini")
    lines = ["[mypy]", "strict = True", "warn_unused_ignores = True"]
    if plugin:
        lines.append("plugins = cascade.mypy")
    config.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / f"mypy-cache-{plugin}"),
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            *map(str, files),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2: mypy itself failed
    assert "INTERNAL ERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
    reports = []
    for text in done.stdout.splitlines():
        match = MYPY_LINE.match(text)
        assert match, f"unexpected mypy output: {text}"
        name = Path(match["file"]).name
        reports.append((name, int(match["line"]), match["kind"], match["message"]))
    return reports


def test_mypy_without_the_plugin_sees_every_value_and_no_argument(tmp_path: Path) -> None:
    assert _mypy(tmp_path, ALL, plugin=False) == []


def test_mypy_with_the_plugin_sees_the_values_and_accepts_good_wiring(tmp_path: Path) -> None:
    assert _mypy(tmp_path, [VALUES, WIRING_OK, PLUGIN_VALUES], plugin=True) == []


def test_mypy_with_the_plugin_reports_wrong_wiring_naming_task_and_parameter(
    tmp_path: Path,
) -> None:
    reports = _mypy(tmp_path, [WIRING_ERRORS], plugin=True)
    errors = {line: message for _, line, kind, message in reports if kind == "error"}
    notes = {line: message for _, line, kind, message in reports if kind == "note"}
    expected = _expected_errors()
    assert len(expected) >= 10
    assert sorted(errors) == sorted(expected), reports
    for line, part in expected.items():
        assert part in errors[line], (line, errors[line])
    # A wrongly typed argument is followed by a note naming the task's parameter.
    assert notes[29] == (
        'Parameter "a" of task "add" is declared "int": it takes that type or a '
        "LazyResult (or cs.Param) of it"
    )
    assert notes[30].startswith('Parameter "b" of task "add" is declared "int"')
    assert notes[35].startswith('Parameter "factor" of task "scale" is declared "float"')


def test_pyright_sees_every_value_and_no_argument(tmp_path: Path) -> None:
    assert PYRIGHT.exists(), "pyright is in the test dependency group"
    config = tmp_path / "pyrightconfig.json"
    config.write_text(json.dumps({"typeCheckingMode": "strict"}))
    done = subprocess.run(
        [
            str(PYRIGHT),
            "--project",
            str(config),
            "--pythonpath",
            sys.executable,
            "--outputjson",
            *map(str, ALL),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["summary"]["filesAnalyzed"] == len(ALL), report
    problems = [
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
    ]
    assert problems == []
    assert done.returncode == 0, done.stderr


def test_import_cascade_never_imports_mypy() -> None:
    code = (
        "import sys; sys.modules['mypy'] = None; import cascade; "
        "assert 'cascade.mypy' not in sys.modules; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
