"""Runtime 2: context variables, plugin registration, structured failures on events, the
log subscriber on the standard logging module, and the default path asking only for what it
shows. Each test would fail on the runtime before the split."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
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
from cascade.hookspec import hookimpl
from cascade.plugins import CascadePluginWarning, PluginManager, reset_plugin_manager

pytestmark = pytest.mark.timeout(120)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


# -- context variables ------------------------------------------------------------------------


@cs.task
def seen_sync(_: Any = None) -> str:
    return request_id.get()


@cs.task
async def seen_async(_: Any = None) -> str:
    return request_id.get()


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_context_variable_set_by_a_run_scoped_resource_reaches_every_task(
    executor: str,
) -> None:
    @cs.resource(name="request_scope")
    def request_scope() -> Iterator[str]:
        token = request_id.set("from-the-resource")
        yield "ok"
        request_id.reset(token)

    @cs.task
    def uses_scope(scope: str = cs.inject("request_scope")) -> str:
        return request_id.get()

    first = uses_scope()
    # Later tasks are launched from completion callbacks, not from the run's own task.
    chain_sync = seen_sync(seen_async(seen_sync(first)))
    chain_async = seen_async(seen_sync(seen_async(first)))
    fan = [seen_sync(first) for _ in range(5)] + [seen_async(first) for _ in range(5)]
    values = cs.run([first, chain_sync, chain_async, *fan], executor=executor, log_level=None)
    assert values == ["from-the-resource"] * 13


def test_sync_tasks_in_the_thread_pool_see_the_callers_context_variables() -> None:
    async def main() -> list[str]:
        request_id.set("caller")
        return await cs.run_async(  # type: ignore[no-any-return]
            [seen_sync(), seen_sync(seen_async()), seen_async()], log_level=None
        )

    assert asyncio.run(main()) == ["caller", "caller", "caller"]


def test_a_context_variable_a_sync_task_sets_does_not_leak_to_others() -> None:
    @cs.task
    def sets_it() -> str:
        request_id.set("leaked")
        return request_id.get()

    first = sets_it()
    assert cs.run([first, seen_sync(first), seen_async(first)], log_level=None) == [
        "leaked",
        "unset",
        "unset",
    ]


# -- plugin registration ------------------------------------------------------------------------


@pytest.fixture
def manager() -> Iterator[Callable[..., PluginManager]]:
    made: list[PluginManager] = []

    def make(*plugins: tuple[object, str]) -> PluginManager:
        pm = PluginManager(load_entrypoints=False)
        for plugin, name in plugins:
            pm.register(plugin, name)
        reset_plugin_manager(pm)
        made.append(pm)
        return pm

    yield make
    reset_plugin_manager(None)


class SloppyPlugin:
    """One bad registration in each hook, then good ones."""

    @hookimpl
    def cascade_register_resources(self, register: Callable[[Any], None]) -> None:
        register("not a resource")

        @cs.resource(name="good_resource")
        def good_resource() -> Iterator[int]:
            yield 41

        register(good_resource)

    @hookimpl
    def cascade_register_executors(self, register: Callable[[str, Any], None]) -> None:
        register("", lambda: None)
        register("broken-factory", "not callable")
        from cascade.executors.local import LocalExecutor

        register("sloppy-local", LocalExecutor)


def test_one_bad_registration_is_refused_with_a_warning_and_the_rest_counts(
    manager: Callable[..., PluginManager],
) -> None:
    pm = manager((SloppyPlugin(), "sloppy"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resources = pm.resources()
        executors = pm.executors()
    messages = [str(w.message) for w in caught if issubclass(w.category, CascadePluginWarning)]
    assert set(resources) == {"good_resource"}
    assert "sloppy-local" in executors and "broken-factory" not in executors
    assert len(messages) == 3, messages
    assert all(m.startswith("Cascade plugin 'sloppy'") for m in messages)
    assert any("not a resource" in m for m in messages)
    assert any("without a name" in m for m in messages)
    assert any("'broken-factory' without a factory" in m for m in messages)

    @cs.task
    def uses(value: int = cs.inject("good_resource")) -> int:
        return value + 1

    assert cs.run(uses(), executor="sloppy-local", log_level=None) == 42


class WrapperPlugin:
    @hookimpl(wrapper=True)
    def cascade_engine_created(self, engine: Any) -> Any:
        engine.wrapped = True
        return (yield)


class OldStyleWrapperPlugin:
    @hookimpl(hookwrapper=True)
    def cascade_engine_created(self, engine: Any) -> Any:
        yield


class PlainPlugin:
    @hookimpl
    def cascade_engine_created(self, engine: Any) -> None:
        engine.plain = True


@pytest.mark.parametrize("plugin", [WrapperPlugin(), OldStyleWrapperPlugin()])
def test_hook_wrappers_are_refused_at_registration_with_a_clear_warning(
    manager: Callable[..., PluginManager], plugin: object
) -> None:
    with pytest.warns(
        CascadePluginWarning, match="'wrapping'.*cascade_engine_created.*hook wrapper"
    ):
        pm = manager((plugin, "wrapping"), (PlainPlugin(), "plain"))
    assert [info.name for info in pm.plugin_info()] == ["cascade.builtin", "plain"]
    engine = cs.Engine()
    assert engine.plain is True  # type: ignore[attr-defined]
    assert not hasattr(engine, "wrapped")


def test_a_cli_command_replacing_a_built_in_is_refused_and_later_ones_count(
    manager: Callable[..., PluginManager],
) -> None:
    click = pytest.importorskip("click")
    from click.testing import CliRunner

    from cascade_cli.main import cli

    class Commands:
        @hookimpl
        def cascade_register_commands(self, cli: Any) -> None:
            cli.add_command(click.Command("run", callback=lambda: None))
            cli.add_command(click.Command("hello-plugin", callback=lambda: print("hi")))

    manager((Commands(), "commanding"))
    cli.plugins_loaded = False
    cli.commands.pop("hello-plugin", None)
    try:
        with pytest.warns(CascadePluginWarning, match="'commanding' cannot add command 'run'"):
            names = cli.list_commands(click.Context(cli))
        assert "hello-plugin" in names
        assert cli.commands["run"].callback is not None
        assert CliRunner().invoke(cli, ["hello-plugin"]).output == "hi\n"
    finally:
        cli.commands.pop("hello-plugin", None)
        cli.plugins_loaded = False


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
