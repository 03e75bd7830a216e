"""`cascade plugins` and plugin subcommands (hook ``cascade_register_commands``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from cli_helpers import base_env, distribution_installed, run_cascade
from click.testing import CliRunner

import cascade
from cascade.plugins import PluginManager, reset_plugin_manager
from cascade_cli import hookspecs
from cascade_cli.main import make_cli

pytestmark = pytest.mark.timeout(60)

needs_example_plugin = pytest.mark.skipif(
    not distribution_installed("cascade-example-plugin"),
    reason="cascade-example-plugin is not installed in this environment yet "
    "(python dev.py test installs tests/plugins/cascade-example-plugin)",
)


def test_plugins_json_lists_the_builtins() -> None:
    result = run_cascade("plugins", "--output", "json")
    assert result.code == 0, result.stderr
    rows = {row["name"]: row for row in result.json()}
    builtin = rows["cascade.builtin"]
    assert builtin["distribution"] == "cascade-core"
    assert builtin["version"] == cascade.__version__
    assert "cascade_register_executors" in builtin["hooks"]
    assert builtin["entry_point"] is None


@needs_example_plugin
def test_plugins_lists_the_example_plugin_with_its_hooks() -> None:
    result = run_cascade("plugins", "--output", "json")
    example = {row["name"]: row for row in result.json()}["example"]
    assert example["distribution"] == "cascade-example-plugin"
    assert example["version"] == "0.1.0"
    assert example["entry_point"] == "example = cascade_example_plugin.plugin"
    assert {"cascade_register_commands", "cascade_register_executors"} <= set(example["hooks"])

    table = run_cascade("plugins")
    assert table.code == 0
    assert "Plugin" in table.stdout and "Distribution" in table.stdout
    assert "cascade-example-plugin" in table.stdout
    assert "cascade_register_commands" in table.stdout


@needs_example_plugin
def test_the_example_plugin_adds_a_subcommand_to_the_installed_cascade() -> None:
    result = run_cascade("example-hello")
    assert result.code == 0, result.stderr
    assert result.stdout == "hello from the example plugin\n"

    listed = run_cascade("--help")
    assert "example-hello" in listed.stdout

    blocked = run_cascade("example-hello", env=base_env(CASCADE_PLUGINS_BLOCK="example"))
    assert blocked.code == 2
    assert "No such command 'example-hello'" in blocked.stderr

    off = run_cascade("--help", env=base_env(CASCADE_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert off.code == 0 and "example-hello" not in off.stdout


# -- in process: exactly the plugins a test registers ------------------------------------------


class Greeter:
    @cascade.hookimpl
    def cascade_register_commands(self, cli: click.Group) -> None:
        @cli.command("greet")
        @click.argument("name")
        def greet(name: str) -> None:
            """Greet NAME."""
            click.echo(f"hello {name}")


class Hijacker:
    @cascade.hookimpl
    def cascade_register_commands(self, cli: click.Group) -> None:
        @cli.command("run")
        def run() -> None:
            click.echo("hijacked")


class Broken:
    @cascade.hookimpl
    def cascade_register_commands(self, cli: click.Group) -> None:
        raise RuntimeError("no commands today")


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    manager = PluginManager(load_entrypoints=False)
    reset_plugin_manager(manager)
    yield manager
    reset_plugin_manager(None)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(make_cli(), list(args), prog_name="cascade")


def test_a_registered_plugin_command_runs(manager: PluginManager) -> None:
    manager.register(Greeter(), "greeter")
    result = invoke("greet", "world")
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"
    assert "greet" in invoke("--help").output


def test_plugins_cannot_replace_builtin_commands_and_a_raising_plugin_is_a_warning(
    manager: PluginManager,
) -> None:
    manager.register(Hijacker(), "hijacker")
    manager.register(Broken(), "broken")
    manager.register(Greeter(), "greeter")
    manager.register(Greeter(), "copycat")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("greet", "you")
    assert result.output == "hello you\n"
    messages = sorted(str(w.message) for w in caught)
    assert any(
        "'broken' raised in cascade_register_commands" in m and "no commands today" in m
        for m in messages
    ), messages
    assert (
        "Cascade plugin 'hijacker' cannot add command 'run': it is a built-in cascade command"
        in " ".join(messages)
    ), messages
    copies = [m for m in messages if "'copycat' cannot" in m or "'greeter' cannot" in m]
    assert len(copies) == 1 and "command 'greet': it is another plugin's" in copies[0], messages
    help_text = invoke("run", "--help").output
    assert "Run the graph behind TARGET" in help_text


def test_the_hookspec_is_in_the_cli_package() -> None:
    assert hookspecs.cascade_register_commands.__doc__
    assert "click.Group" in hookspecs.cascade_register_commands.__doc__


# -- options of `cascade run` from plugins (hook cascade_register_run_options) -----------------


class SpeedOptions:
    """Options for the built-in executor 'threads' (any registered executor will do)."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    @cascade.hookimpl
    def cascade_register_run_options(self, register: Any) -> None:
        register(
            "threads",
            [
                click.Option(["--threads-speed"], type=int, default=1, help="How fast."),
                click.Option(["--executor"], help="A clash with a built-in option."),
            ],
            self.applied.append,
        )


def test_plugin_run_options_apply_only_to_runs_of_their_executor(
    manager: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a run leaves in the working directory goes here
    speed = SpeedOptions()
    manager.register(speed, "speed")
    basic = str(Path(__file__).parent / "pipelines" / "basic.py") + ":report"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        help_text = invoke("run", "--help").output
    assert "Options of executor 'threads':" in help_text and "--threads-speed" in help_text
    assert any(
        "Cascade plugin 'speed' cannot add option --executor to `cascade run`" in str(w.message)
        for w in caught
    )
    used = invoke("run", basic, "--executor", "threads", "--threads-speed", "3")
    assert used.exit_code == 0, used.output
    assert speed.applied == [{"threads_speed": 3}]
    unused = invoke("run", basic, "--threads-speed", "3")
    assert unused.exit_code == 2
    assert "--threads-speed is an option of executor 'threads', which this run does not use" in (
        unused.output
    )
    assert speed.applied == [{"threads_speed": 3}]  # not applied to a run without threads
