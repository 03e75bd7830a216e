"""Helpers for the command-line tests: they run the real installed ``cascade`` console script
in a subprocess, from this directory, on the small pipelines under ``pipelines/``.

Imported by the test modules beside it (pytest puts this directory on ``sys.path``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PIPELINES = HERE / "pipelines"
SCRIPT = Path(sys.executable).with_name("cascade.exe" if os.name == "nt" else "cascade")
ESC = "\x1b"


def cascade_script() -> str:
    if not SCRIPT.exists():
        pytest.fail(
            f"the `cascade` console script is not installed beside {sys.executable}; "
            "run `python dev.py test` (or pip install -e packages/cascade-cli)"
        )
    return str(SCRIPT)


def base_env(**extra: str) -> dict[str, str]:
    """The test environment without variables that would change the output (colour forcing,
    a terminal width), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "COLUMNS", "LINES", "NO_COLOR")
    }
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cascade(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = HERE,
    timeout: float = 60,
) -> Result:
    done = subprocess.run(
        [cascade_script(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env if env is not None else base_env(),
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def distribution_installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True
