"""The work behind each ``cascade`` command (``main`` holds only their options).

Exit codes: 0 success, 1 a task failed (or a tool the command needs is missing), 2 usage
errors (``click.UsageError``: a bad target, an unknown param or executor), 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import click

from cascade_cli.target import Target, TargetError, find_params, load_target

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

GRAPHVIZ_HINT = (
    "Graphviz's `dot` program is needed for --format {fmt} but is not on PATH. Install "
    "Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`; Fedora: `sudo dnf install "
    "graphviz`; macOS: `brew install graphviz`; Windows: `winget install graphviz`; conda: "
    "`conda install graphviz`), or use --format dot or --format mermaid for text."
)


def _load(spec: str) -> Target:
    """The target, with its graph checked to be buildable: a cycle (a task that depends on
    itself through others) is a usage error like any other bad target."""
    try:
        target = load_target(spec)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    from cascade.graph import plan

    try:
        plan(target.graph)
    except (ValueError, TypeError, RecursionError) as exc:
        raise click.BadParameter(
            f"'{spec}': the graph cannot be built: {exc}", param_hint="TARGET"
        ) from None
    return target


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


# -- run ---------------------------------------------------------------------------------------


def run_command(
    spec: str,
    *,
    assignments: Sequence[str],
    params_file: str | None,
    executor: str | None,
    max_concurrency: int | None,
    log_level: str | None,
    output: str,
) -> int:
    """``cascade run``: load, check, run with the chosen output, and map the end to an exit
    code."""
    try:
        return _run(spec, assignments, params_file, executor, max_concurrency, log_level, output)
    except KeyboardInterrupt:  # while importing the target, before the run started
        click.echo("cascade: interrupted before the run started", err=True)
        return EXIT_INTERRUPTED


def _run(
    spec: str,
    assignments: Sequence[str],
    params_file: str | None,
    executor: str | None,
    max_concurrency: int | None,
    log_level: str | None,
    output: str,
) -> int:
    logging.basicConfig(
        level=log_level or "WARNING",
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from cascade_cli.params import ParamsError, build_params, read_params_file

    target = _load(spec)
    try:
        from_file = read_params_file(params_file, sys.stdin) if params_file else {}
        params = build_params(find_params(target.graph), from_file, assignments)
    except ParamsError as exc:
        raise click.UsageError(str(exc)) from None
    if executor is not None:
        _check_executor(executor)

    from cascade_cli.output import JsonOutput, LiveOutput, PlainOutput
    from cascade_cli.run import (
        CANCELLED,
        SUCCEEDED,
        Interrupts,
        SetupError,
        make_engine,
        new_record,
        run_sync,
    )
    from cascade_cli.streams import watch_closed_pipes

    watch_closed_pipes()
    try:
        engine = make_engine(target, executor, max_concurrency)
    except SetupError as exc:
        raise click.UsageError(str(exc)) from None
    limited = max_concurrency is not None or _has_task_limits(target)
    record = new_record(target, engine.bus, limited=limited)
    display: JsonOutput | LiveOutput | PlainOutput
    if output == "json":
        display = JsonOutput(record, log_level)
    elif _stdout_is_terminal():
        display = LiveOutput(record, log_level, spec, sys.stdout)
    else:
        display = PlainOutput(record, log_level, sys.stdout)
    interrupts = Interrupts(display.interrupted)
    interrupts.install()
    try:
        display.attach(engine.bus)
        display.start()
        try:
            outcome = run_sync(engine, record, target, params, interrupts)
        except SetupError as exc:
            raise click.UsageError(f"the run could not start: {exc}") from None
        finally:
            display.stop()
        display.finish(outcome, spec, params)
    finally:
        interrupts.uninstall()
    if outcome.status == SUCCEEDED:
        return EXIT_OK
    if outcome.status == CANCELLED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _has_task_limits(target: Target) -> bool:
    """Whether some task has a concurrency limit (its map items then start a few at a time)."""
    from cascade_cli.target import lazy_results

    return any(
        getattr(lazy.task, "concurrency", None) for lazy in lazy_results(target.graph).values()
    )


def _check_executor(name: str) -> None:
    from cascade.plugins import PluginError, get_plugin_manager

    try:
        registry = get_plugin_manager().executors()
    except PluginError as exc:
        raise click.UsageError(str(exc)) from None
    if name not in registry:
        available = ", ".join(sorted(registry)) or "none"
        raise click.BadParameter(
            f"unknown executor '{name}'; available executors: {available} "
            "(plugins add more; see `cascade plugins`)",
            param_hint="'--executor'",
        )


# -- graph and dry-run -------------------------------------------------------------------------


def graph_command(spec: str, fmt: str, output_file: str | None) -> int:
    """``cascade graph``: Mermaid or DOT text, or SVG/PNG drawn by Graphviz."""
    from cascade import visualize

    target = _load(spec)
    if fmt in ("dot", "mermaid"):
        _write(visualize(target.graph, format=fmt).encode(), output_file)
        return EXIT_OK
    dot = shutil.which("dot")
    if dot is None:
        click.echo(f"Error: {GRAPHVIZ_HINT.format(fmt=fmt)}", err=True)
        return EXIT_FAILED
    if fmt == "png" and output_file is None and _stdout_is_terminal():
        raise click.UsageError("PNG is binary; write it to a file with -o FILE.png")
    source = visualize(target.graph, format="dot").encode()
    done = subprocess.run([dot, f"-T{fmt}"], input=source, capture_output=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        click.echo(f"Error: Graphviz `dot -T{fmt}` failed ({done.returncode}): {detail}", err=True)
        return EXIT_FAILED
    _write(done.stdout, output_file)
    return EXIT_OK


def _write(data: bytes, output_file: str | None) -> None:
    if output_file is None or output_file == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        with open(output_file, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write '{output_file}': {exc.strerror or exc}", param_hint="'-o'"
        ) from None
    click.echo(f"wrote {output_file}", err=True)


def dry_run_command(spec: str, output: str) -> int:
    """``cascade dry-run``: the plan, as text or JSON."""
    from cascade.graph import dry_run, plan

    target = _load(spec)
    if output == "json":
        click.echo(json.dumps({"target": spec, "steps": plan(target.graph)}, indent=2))
    else:
        dry_run(target.graph, stream=sys.stdout)
    return EXIT_OK


# -- plugins -----------------------------------------------------------------------------------


def plugins_command(output: str) -> int:
    """``cascade plugins``: what is installed, including the CLI's own hook."""
    from cascade.plugins import list_plugins

    group = click.get_current_context().find_root().command
    load = getattr(group, "load_plugin_commands", None)
    if load is not None:
        load()  # adds the CLI hookspec, so plugins' command hooks are validated too
    infos = list_plugins()
    if output == "json":
        rows: list[dict[str, Any]] = [
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                "entry_point": info.entry_point,
            }
            for info in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cascade_cli.output import make_console

    console = make_console(sys.stdout, terminal=_stdout_is_terminal())
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("Plugin", "Distribution", "Version", "Hooks"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(
            Text(info.name),
            Text(info.distribution or "-"),
            Text(info.version or "-"),
            Text(", ".join(info.hooks) or "-"),
        )
    console.print(table)
    return EXIT_OK


# -- cache -------------------------------------------------------------------------------------


def _store(directory: str | None, store: str | None) -> Any:
    """What ``--dir`` / ``--store`` mean, as ``cs.cache_stats`` and ``cs.clear_cache`` take it:
    ``None`` is the default directory."""
    if directory is not None and store is not None:
        raise click.UsageError("give --dir or --store, not both")
    if directory is not None:
        from cascade.caching import DirectoryStore

        return DirectoryStore(directory)
    if store is not None:
        from cascade.plugins import PluginError, get_plugin_manager

        try:
            registry = get_plugin_manager().cache_stores()
        except PluginError as exc:
            raise click.UsageError(str(exc)) from None
        if store not in registry:
            available = ", ".join(sorted(registry)) or "none"
            raise click.BadParameter(
                f"unknown cache store '{store}'; available stores: {available}",
                param_hint="'--store'",
            )
    return store


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def cache_info_command(directory: str | None, store: str | None, output: str) -> int:
    """``cascade cache info``: ``cs.cache_stats()`` as a table or JSON."""
    import cascade as cs

    stats = cs.cache_stats(store=_store(directory, store))
    if output == "json":
        data = stats.to_dict()
        # Hit/miss counters are per process: always zero in a fresh `cascade` process.
        for counter in ("hits", "misses", "writes", "errors"):
            data.pop(counter, None)
        click.echo(json.dumps(data, indent=2))
        return EXIT_OK
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cascade_cli.output import make_console

    console = make_console(sys.stdout, terminal=_stdout_is_terminal())
    where = stats.directory or f"store '{store}'"
    console.print(Text(f"cache: {where}"))
    expired = f", {stats.expired} expired" if stats.expired else ""
    console.print(Text(f"{stats.entries} entries{expired}, {_size(stats.bytes)}"))
    if stats.tasks:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("Task")
        table.add_column("Entries", justify="right")
        table.add_column("Size", justify="right")
        for name, per_task in stats.tasks.items():
            table.add_row(Text(name), str(per_task.entries), _size(per_task.bytes))
        console.print(table)
    return EXIT_OK


def cache_clear_command(
    task: str | None, directory: str | None, store: str | None, output: str
) -> int:
    """``cascade cache clear``: ``cs.clear_cache()`` for everything or one task."""
    import cascade as cs

    chosen = _store(directory, store)
    removed = cs.clear_cache(task=task, store=chosen)
    where = cs.cache_stats(store=chosen).directory or f"store '{store}'"
    if output == "json":
        click.echo(json.dumps({"removed": removed, "task": task, "directory": where}))
    else:
        which = f" of task '{task}'" if task else ""
        click.echo(
            f"removed {removed} cached entr{'y' if removed == 1 else 'ies'}{which} from {where}"
        )
    return EXIT_OK
