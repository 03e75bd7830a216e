"""What events carry and who asks for them: failures as their error type and exception
object, result previews built only when read, the log subscriber asking only for the events
its level shows (failures still reported at WARNING), and its lines on the standard logging
module (stderr without configuration, the application's format when configured, a closed
stderr no error of the run)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import cascade as cs
from cascade.events import (
    RunFinished,
    TaskExecutionFinished,
    TaskExecutionStarted,
    TaskRetrying,
)

pytestmark = pytest.mark.timeout(120)


# -- structured failures -----------------------------------------------------------------------


class CodedError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def test_events_carry_the_error_type_and_the_exception_object() -> None:
    attempts = {"n": 0}

    @cs.task(retries=1)
    def flaky() -> None:
        attempts["n"] += 1
        raise CodedError(attempts["n"], "no luck")

    bus = cs.MessageBus()
    finished: list[TaskExecutionFinished] = []
    retrying: list[TaskRetrying] = []
    runs: list[RunFinished] = []
    bus.subscribe(TaskExecutionFinished, finished.append)
    bus.subscribe(TaskRetrying, retrying.append)
    bus.subscribe(RunFinished, runs.append)
    with pytest.raises(CodedError) as raised:
        cs.run(flaky(), bus=bus, log_level=None)
    assert [(e.status, e.error_type, e.will_retry) for e in finished] == [
        ("Failed", "CodedError", True),
        ("Failed", "CodedError", False),
    ]
    assert isinstance(finished[0].exception, CodedError) and finished[0].exception.code == 1
    assert finished[1].exception is raised.value
    assert finished[1].error == "CodedError: 2: no luck"
    assert retrying[0].error_type == "CodedError" and retrying[0].exception is finished[0].exception
    assert runs[0].error_type == "CodedError" and runs[0].exception is raised.value
    assert finished[0] == finished[0] and "exception" not in repr(finished[0])


def test_result_previews_are_built_only_when_read() -> None:
    reprs = {"n": 0}

    class Loud:
        def __repr__(self) -> str:
            reprs["n"] += 1
            return "<loud>"

    @cs.task
    def make() -> Loud:
        return Loud()

    bus = cs.MessageBus()
    finished: list[TaskExecutionFinished] = []
    bus.subscribe(TaskExecutionFinished, finished.append)

    async def main() -> tuple[Any, int]:
        value = await cs.run_async(make(), bus=bus, log_level=None)
        return value, reprs["n"]  # counted here: asyncio.run itself reprs the main task

    value, reprs_during_run = asyncio.run(main())
    assert reprs_during_run == 0
    assert finished[0].result is value
    before = reprs["n"]
    assert finished[0].result_preview == "<loud>" and finished[0].result_preview == "<loud>"
    assert reprs["n"] == before + 1, "built once, when first read"


# -- the default path -------------------------------------------------------------------------


def test_the_log_subscriber_asks_only_for_the_events_its_level_shows() -> None:
    def wants(level: str) -> dict[str, bool]:
        bus = cs.MessageBus()
        cs.HumanReadableLogSubscriber(bus, level=level)
        return {
            "started": bus.wants(TaskExecutionStarted),
            "succeeded": bus.wants(TaskExecutionFinished, status="Succeeded"),
            "failed": bus.wants(TaskExecutionFinished, status="Failed"),
            "cancelled": bus.wants(TaskExecutionFinished, status="Cancelled"),
            "retrying": bus.wants(TaskRetrying),
            "run finished": bus.wants(RunFinished),
        }

    assert all(wants("INFO").values())
    assert wants("WARNING") == {
        "started": False,
        "succeeded": False,
        "failed": True,
        "cancelled": True,
        "retrying": True,
        "run finished": True,
    }
    assert wants("ERROR") == {
        "started": False,
        "succeeded": False,
        "failed": True,
        "cancelled": False,
        "retrying": False,
        "run finished": True,
    }


def test_at_warning_failures_are_still_reported_with_their_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @cs.task
    def fine() -> int:
        return 1

    @cs.task
    def breaks(_: int) -> None:
        raise KeyError("gone")

    caplog.set_level(logging.INFO, logger="cascade")
    with pytest.raises(KeyError):
        cs.run([fine(), breaks(fine())], log_level="WARNING")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "✗ breaks failed: KeyError: 'gone'"
    assert lines[-1].startswith("run ") and "failed in" in lines[-1]
    assert not any("fine" in line for line in lines)


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )


PIPELINE = """
    import cascade as cs

    @cs.task
    def one():
        return 1

    @cs.task
    def boom(x):
        raise ValueError("bad")
"""


def test_without_logging_configured_cs_run_shows_its_lines_on_stderr(tmp_path: Path) -> None:
    result = _python(
        PIPELINE
        + """
    import logging
    print(cs.run(one()))
    print(logging.getLogger("cascade").handlers, logging.getLogger().handlers)
    """,
        tmp_path,
    )
    assert result.stdout.splitlines() == ["1", "[] []"], "the handler is removed after the run"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("[cascade] run ") and "started for one" in lines[0]
    assert "[cascade] ▶ one started" in lines and lines[-1].startswith("[cascade] run ")


def test_an_application_logging_configuration_decides_format_and_level(tmp_path: Path) -> None:
    result = _python(
        PIPELINE
        + """
    import logging, sys
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="APP %(name)s %(message)s")
    try:
        cs.run(boom(one()))
    except ValueError:
        pass
    logging.getLogger("cascade").setLevel(logging.CRITICAL)
    try:
        cs.run(boom(one()))
    except ValueError:
        pass
    """,
        tmp_path,
    )
    assert result.stderr == ""
    assert result.stdout.splitlines()[0] == "APP cascade.task ✗ boom failed: ValueError: bad"
    assert result.stdout.splitlines()[1].startswith("APP cascade.run run ")
    assert len(result.stdout.splitlines()) == 2, "INFO lines follow the app's WARNING level"


def test_a_closed_stderr_is_not_an_error_of_the_run(tmp_path: Path) -> None:
    result = _python(
        PIPELINE
        + """
    import os, sys
    sys.stderr.close()
    value = cs.run(one())
    os.write(1, f"{value}".encode())
    """,
        tmp_path,
    )
    assert result.stdout == "1"
