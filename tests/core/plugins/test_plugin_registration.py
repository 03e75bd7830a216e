"""Registering plugins: one bad registration is refused with a warning and the rest counts, hook
wrappers are refused at registration, and a CLI command replacing a built-in is refused."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cascade as cs
from cascade.hookspec import hookimpl
from cascade.plugins import CascadePluginWarning, PluginManager, reset_plugin_manager


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
