"""The ``cascade`` command group and its options.

Only click is imported at module level: Cascade, rich and the plugins load inside the commands
that use them, so ``cascade --help`` and ``cascade --version`` start fast. The work of each
command lives in ``cascade_cli.commands``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from cascade_cli._version import __version__
from cascade_cli.options import option_group
from cascade_cli.runs import runs

if TYPE_CHECKING:
    from cascade.plugins import PluginManager

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

EPILOG = """\b
TARGET is path/to/file.py:name or package.module:name (split on the last colon); name is a
LazyResult, a list or dict of them, or a zero-argument function returning one.

\b
Exit codes: 0 success, 1 a task failed, 2 usage error, 130 interrupted (Ctrl-C).
"""


class CascadeGroup(click.Group):
    """The root group. Plugin commands (hook ``cascade_register_commands``) are loaded only
    when the command list is shown or a name that is not built in is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugins_loaded = False
        self.protected: frozenset[str] = frozenset()
        self.manager: PluginManager | None = None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self.plugins_loaded and name in self.commands:
            # Refused, not raised: the plugin's other commands still count.
            from cascade.plugins import CascadePluginWarning  # loaded once plugins are

            owner = "a built-in cascade command" if name in self.protected else "another plugin's"
            plugin = self.manager.current_plugin if self.manager is not None else "a plugin"
            warnings.warn(
                f"Cascade plugin '{plugin}' cannot add command '{name}': it is {owner}; give "
                "the plugin's command another name (prefix it with the plugin's name)",
                CascadePluginWarning,
                stacklevel=2,
            )
            return
        super().add_command(cmd, name)

    def load_plugin_commands(self) -> None:
        """Ask every plugin to add its commands (once). A plugin that raises is reported as a
        warning naming it and the rest carry on."""
        if self.plugins_loaded:
            return
        self.plugins_loaded = True
        self.protected = frozenset(self.commands)
        if "cascade.plugins.manager" not in sys.modules and not third_party_plugins_installed():
            return  # nothing could add commands: skip importing Cascade at all
        from cascade.plugins import get_plugin_manager

        manager = self.manager = get_plugin_manager()
        if add_cli_hookspecs(manager):
            manager.call_each("cascade_register_commands", cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self.plugins_loaded:
            self.load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command


def add_cli_hookspecs(manager: Any) -> bool:
    """Add the command line's hook specs (``cascade_cli.hookspecs``) to Cascade's plugin
    manager, once; ``False``, with a warning, when a plugin implements them wrongly."""
    from cascade_cli import hookspecs

    if getattr(manager, "_cascade_cli_hookspecs", False):
        return True
    try:
        manager.add_hookspecs(hookspecs)
    except ValueError:
        pass  # already added in this process (the CLI run twice in one interpreter)
    except Exception as exc:  # a plugin implements a hook with a wrong signature
        warnings.warn(f"the command line's plugin hooks are unavailable: {exc}", stacklevel=1)
        return False
    manager._cascade_cli_hookspecs = True
    return True


class RunCommand(click.Command):
    """``cascade run``: its options include those plugins add for their executors (hook
    ``cascade_register_run_options``), and ``cascade run TARGET --help`` also lists the params
    TARGET takes, with their types, defaults and descriptions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_options: Any = None
        self._options_from: Any = None  # the plugin manager they came from

    def load_run_options(self) -> Any:
        """Ask the plugins for their options, once per plugin manager (tests swap managers)."""
        from cascade.plugins import get_plugin_manager

        manager = get_plugin_manager()
        if self.run_options is None or self._options_from is not manager:
            from cascade_cli.run_options import RunOptions

            if self.run_options is not None:
                stale = {id(option) for option in self.run_options.params}
                self.params = [p for p in self.params if id(p) not in stale]
            taken = {name for p in self.params for name in (p.name or "", *p.opts)}
            taken |= {opt for p in self.params for opt in getattr(p, "secondary_opts", ())}
            self.run_options = RunOptions.load(taken)
            self._options_from = manager
            self.params.extend(self.run_options.params)
        return self.run_options

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self.load_run_options()
        help_names = set(ctx.help_option_names)
        if any(arg in help_names for arg in args):
            rest = [arg for arg in args if arg not in help_names]
            try:
                peek = super().make_context(
                    ctx.info_name, rest, parent=ctx.parent, resilient_parsing=True
                )
                ctx.meta["cascade.help_target"] = peek.params.get("target")
            except Exception:
                pass
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        options = self.load_run_options()
        plugin_params = {id(option) for option in options.params}
        rows = [
            record
            for param in self.get_params(ctx)
            if id(param) not in plugin_params and (record := param.get_help_record(ctx))
        ]
        if rows:
            with formatter.section("Options"):
                formatter.write_dl(rows)
        for group in options.groups:
            rows = [r for option in group.options if (r := option.get_help_record(ctx))]
            if rows:
                with formatter.section(f"Options of executor '{group.executor}'"):
                    formatter.write_dl(rows)
        target = ctx.meta.get("cascade.help_target")
        if target:
            from cascade_cli.commands import params_help

            title, rows = params_help(target)
            with formatter.section(title):
                if rows:
                    formatter.write_dl(rows)


def core_version() -> str:
    """cascade-core's version, read from its ``_version.py`` without importing ``cascade``
    (which loads asyncio and the engine) or ``importlib.metadata`` (which loads email): both
    would cost ``cascade --version`` more than everything else it does."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("cascade")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            with open(os.path.join(folder, "_version.py"), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "__version__":
                return value.strip().strip("\"'")
    return "not installed"


def third_party_plugins_installed() -> bool:
    """Whether any distribution declares a ``cascade`` entry point that autoload would load
    (the built-ins never add commands)."""
    if os.environ.get("CASCADE_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    ):
        return False
    from importlib.metadata import entry_points

    return bool(entry_points(group="cascade"))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import platform

    click.echo(
        f"cascade {__version__} (cascade-core {core_version()}, Python {platform.python_version()})"
    )
    ctx.exit(0)


def make_cli() -> CascadeGroup:
    """A fresh ``cascade`` group with the built-in commands (tests build their own, so plugin
    commands added in one test do not leak into another)."""

    @click.group(
        cls=CascadeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
    )
    @click.option(
        "--version",
        "-V",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Show the versions of cascade-cli, cascade-core and Python, and exit.",
    )
    def cascade() -> None:
        """Run, inspect and visualise Cascade task graphs."""

    group: CascadeGroup = cascade  # type: ignore[assignment]
    for command in (run, graph, dry_run, plugins, cache, runs):
        group.add_command(command)
    return group


output_option = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json prints one JSON document on stdout and nothing else.",
)


param_options = [
    click.option(
        "--param",
        "-p",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a cs.Param (repeatable). VALUE is parsed as JSON, falling back to a string, "
        "then converted by the param's type.",
    ),
    click.option(
        "--params",
        "params_file",
        metavar="FILE.json",
        help="Read params from a JSON object in FILE ('-' for stdin); --param values win.",
    ),
]


with_param_options = option_group(param_options)


#: The options of `cascade run`, which `cascade dry-run` takes too (a dry run of a command
#: line checks what that run would).
run_option_list = [
    *param_options,
    click.option(
        "--executor",
        "-e",
        metavar="NAME",
        help="Executor for tasks that do not choose one: local (default), threads, processes, "
        "or any a plugin registers (see `cascade plugins`).",
    ),
    click.option(
        "--max-concurrency",
        "-j",
        type=click.IntRange(min=1),
        metavar="N",
        help="Run at most N task attempts at once.",
    ),
    click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Log lines to show (default INFO; WARNING under the live display). DEBUG also "
        "prints the traceback of a failed task.",
    ),
    click.option(
        "--record/--no-record",
        "keep_record",
        default=True,
        show_default=True,
        help="Record the run in the run history ($CASCADE_HOME/runs.sqlite3, else "
        ".cascade/runs.sqlite3 here) and checkpoint its results; see `cascade runs`.",
    ),
    click.option(
        "--resume",
        metavar="last|auto|RUN_ID",
        help="Run again after a recorded run of TARGET: tasks that succeeded there with "
        "unchanged code and inputs take their checkpointed value; the rest run. auto: resume "
        "the latest run of TARGET if it did not succeed, else run afresh (for cron jobs).",
    ),
    click.option(
        "--explain",
        is_flag=True,
        help="With --resume: before running, print which tasks will run again and why "
        "(failed, did not run, no checkpoint, code, a global or a param changed).",
    ),
    click.option(
        "--pool",
        "pools",
        multiple=True,
        metavar="NAME=SIZE",
        help="Define a named pool of SIZE slots for the tasks that ask for it "
        "(@cs.task(pools={NAME: 1})); repeatable.",
    ),
    click.option(
        "--keep-going",
        is_flag=True,
        help="When a task fails, go on with everything that does not depend on it, and report "
        "every failure at the end (on_failure='continue').",
    ),
]


@click.command(cls=RunCommand, epilog=EPILOG)
@click.argument("target")
@option_group(run_option_list)
@output_option
def run(
    target: str,
    assignments: tuple[str, ...],
    params_file: str | None,
    executor: str | None,
    max_concurrency: int | None,
    log_level: str | None,
    keep_record: bool,
    resume: str | None,
    explain: bool,
    pools: tuple[str, ...],
    keep_going: bool,
    output: str,
    **executor_options: Any,
) -> int:
    """Run the graph behind TARGET.

    On a terminal a live display shows tasks done / total, the running tasks, retries,
    failures and the elapsed time, ending in a summary table; elsewhere (CI, cron, pipes)
    plain log lines are printed instead. `cascade run TARGET --help` lists TARGET's params.
    """
    from cascade_cli.commands import run_command

    return run_command(
        target,
        assignments=assignments,
        params_file=params_file,
        executor=executor,
        max_concurrency=max_concurrency,
        log_level=log_level.upper() if log_level else None,
        output=output,
        executor_options=executor_options,
        keep_record=keep_record,
        resume=resume,
        explain=explain,
        pools=pools,
        keep_going=keep_going,
    )


@click.command(epilog=EPILOG)
@click.argument("target")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    default="mermaid",
    show_default=True,
    help="mermaid and dot are text; svg and png are drawn by Graphviz's `dot` program.",
)
@click.option(
    "--output-file",
    "-o",
    metavar="FILE",
    help="Write to FILE instead of standard output.",
)
def graph(target: str, fmt: str, output_file: str | None) -> int:
    """Draw the graph behind TARGET (tasks as boxes, params as ovals; dashed edges only
    order, they carry no data)."""
    from cascade_cli.commands import graph_command

    return graph_command(target, fmt, output_file)


DRY_RUN_EPILOG = """\b
TARGET is path/to/file.py:name or package.module:name (split on the last colon); name is a
LazyResult, a list or dict of them, or a zero-argument function returning one.

\b
Exit codes: 0 the run would start, 2 it would be refused (a usage error: the same checks and
messages as `cascade run`).
"""


@click.command("dry-run", cls=RunCommand, epilog=DRY_RUN_EPILOG)
@click.argument("target")
@option_group(run_option_list)
@output_option
def dry_run(
    target: str,
    assignments: tuple[str, ...],
    params_file: str | None,
    executor: str | None,
    max_concurrency: int | None,
    log_level: str | None,
    keep_record: bool,
    resume: str | None,
    explain: bool,
    pools: tuple[str, ...],
    keep_going: bool,
    output: str,
    **executor_options: Any,
) -> int:
    """Show the order tasks would start in, with their inputs (params filled in), each task's
    policies (retries, timeout, cache, concurrency) and injected resources, and which cached
    tasks would be skipped because their result is stored. Takes `cascade run`'s options and
    makes every check that run makes before it starts (params, executors, resources, pools,
    tasks an executor must pickle), refusing what it would refuse. Runs nothing, sets up
    nothing, records nothing."""
    from cascade_cli.commands import dry_run_command

    return dry_run_command(
        target,
        output,
        assignments,
        params_file,
        executor=executor,
        max_concurrency=max_concurrency,
        pools=pools,
        keep_going=keep_going,
        executor_options=executor_options,
    )


@click.command()
@output_option
def plugins(output: str) -> int:
    """List installed plugins: name, distribution, version and the hooks they implement."""
    from cascade_cli.commands import plugins_command

    return plugins_command(output)


store_options = [
    click.option(
        "--dir",
        "directory",
        metavar="PATH",
        help="The cache directory (default: $CASCADE_CACHE_DIR, else .cascade/cache here).",
    ),
    click.option(
        "--store",
        metavar="NAME",
        help="A cache store registered by name (see `cascade plugins`) instead of a directory.",
    ),
]


with_store_options = option_group(store_options)


@click.group()
def cache() -> None:
    """Inspect and clear the results cache (cs.InputHashCache entries)."""


@cache.command()
@with_store_options
@output_option
def info(directory: str | None, store: str | None, output: str) -> int:
    """Show what the cache holds: entries, size, expired entries and entries per task."""
    from cascade_cli.commands import cache_info_command

    return cache_info_command(directory, store, output)


@cache.command()
@click.option("--task", "-t", "task", metavar="NAME", help="Clear only this task's entries.")
@with_store_options
@output_option
def clear(task: str | None, directory: str | None, store: str | None, output: str) -> int:
    """Remove cached results (all of them, or one task's). Files written by tasks with
    cs.FileExistenceCache are theirs and are not touched."""
    from cascade_cli.commands import cache_clear_command

    return cache_clear_command(task, directory, store, output)


cli = make_cli()


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: run the command line and exit with its code."""
    previous = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        # A broken plugin is the user's environment, not a line of our code: say it plainly.
        if category.__name__ in ("CascadePluginWarning", "RecordWarning") or filename == __file__:
            print(f"cascade: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="cascade",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except BrokenPipeError:
        # Output piped into `head` or similar that stopped reading: not an error of ours.
        from cascade_cli.streams import silence

        silence(1)
        code = 1
    finally:
        warnings.showwarning = previous
        from cascade_cli.streams import finish

        finish()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
