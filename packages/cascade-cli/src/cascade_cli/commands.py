"""The work behind each ``cascade`` command (``main`` holds only their options).

Exit codes: 0 success, 1 a task failed (or a tool the command needs is missing), 2 usage
errors (``click.UsageError``: a bad target, an unknown param or executor), 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
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
    executor_options: Mapping[str, Any] | None = None,
    keep_record: bool = True,
    resume: str | None = None,
    explain: bool = False,
    pools: Sequence[str] = (),
    keep_going: bool = False,
) -> int:
    """``cascade run``: load, check, run with the chosen output, and map the end to an exit
    code. The run is recorded in the run history unless ``keep_record`` is false."""
    if resume is not None and not keep_record:
        raise click.UsageError("--resume records the new run too; leave out --no-record")
    if explain and resume is None:
        raise click.UsageError("--explain says why tasks of a resume run again: give --resume")
    run_options: dict[str, Any] = {"record": True, "resume": resume} if keep_record else {}
    if pools:
        run_options["pools"] = parse_pools(pools)
    if keep_going:
        run_options["on_failure"] = "continue"
    try:
        return _run(
            spec,
            assignments,
            params_file,
            executor,
            max_concurrency,
            log_level,
            output,
            executor_options or {},
            run_options,
            explain,
        )
    except KeyboardInterrupt:  # while importing the target, before the run started
        click.echo("cascade: interrupted before the run started", err=True)
        return EXIT_INTERRUPTED


def parse_pools(given: Sequence[str]) -> dict[str, int]:
    """``--pool openai=4 --pool db=2`` → ``{"openai": 4, "db": 2}``; a malformed one, or one
    name given twice with different sizes, is a usage error naming it."""
    pools: dict[str, int] = {}
    for text in given:
        name, sep, size = text.partition("=")
        name = name.strip()
        if not sep or not name or not size.strip().isdigit() or int(size) < 1:
            raise click.UsageError(
                f"--pool {text!r}: use NAME=SIZE with SIZE a whole number >= 1 (--pool openai=4)"
            )
        if name in pools and pools[name] != int(size):
            raise click.UsageError(
                f"--pool: pool '{name}' is given twice with different sizes ({pools[name]} and "
                f"{int(size)}); give it once"
            )
        pools[name] = int(size)
    return pools


def _params(target: Target, assignments: Sequence[str], params_file: str | None) -> dict[str, Any]:
    from cascade_cli.params import ParamsError, build_params, check_unknown, read_params_file
    from cascade_cli.target import lazy_results

    declared = find_params(target.graph)
    grows = any(
        getattr(lazy.task, "dynamic", False) for lazy in lazy_results(target.graph).values()
    )
    try:
        from_file = read_params_file(params_file, sys.stdin) if params_file else {}
        values = build_params(declared, from_file, assignments)
        warning = check_unknown(declared, values, grows)
    except ParamsError as exc:
        raise click.UsageError(str(exc)) from None
    if warning is not None:
        click.echo(f"Warning: {warning}", err=True)
    return values


def _executors_used(target: Target, executor: str | None) -> set[str]:
    """The executor names a run of ``target`` uses: the default and those tasks choose."""
    from cascade_cli.target import lazy_results

    used = {executor or "local"}
    for lazy in lazy_results(target.graph).values():
        chosen = getattr(lazy.task, "executor", None)
        if isinstance(chosen, str):
            used.add(chosen)
    return used


def _apply_executor_options(
    target: Target, executor: str | None, values: Mapping[str, Any]
) -> None:
    ctx = click.get_current_context(silent=True)
    options = getattr(ctx.command, "run_options", None) if ctx is not None else None
    if ctx is None or options is None:
        return
    options.apply(ctx, values, _executors_used(target, executor))


def _run(
    spec: str,
    assignments: Sequence[str],
    params_file: str | None,
    executor: str | None,
    max_concurrency: int | None,
    log_level: str | None,
    output: str,
    executor_options: Mapping[str, Any],
    recording: Mapping[str, Any],
    explain: bool = False,
) -> int:
    logging.basicConfig(
        level=log_level or "WARNING",
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    target = _load(spec)
    params = _params(target, assignments, params_file)
    if executor is not None:
        _check_executor(executor)
    _apply_executor_options(target, executor, executor_options)
    if explain:
        _explain(target, params, recording["resume"], output, spec)

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
            outcome = run_sync(engine, record, target, params, interrupts, recording, spec)
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
    from cascade import ParamError

    if isinstance(outcome.error, ParamError):
        return EXIT_USAGE  # a param nothing in the run declared (known once it had grown)
    return EXIT_FAILED


def _explain(
    target: Target, params: Mapping[str, Any], resume: str, output: str, spec: str
) -> None:
    """``--explain``: which tasks the resume will run again and why, before it runs (on
    stderr under --output json, which keeps stdout for its one document)."""
    from cascade.records import RecordError, explain_resume

    try:
        resumed, explained = explain_resume(target.graph, params, resume)
    except RecordError as exc:
        raise click.UsageError(str(exc)) from None
    stream = sys.stderr if output == "json" else sys.stdout
    if resumed is None:
        click.echo(
            f"--resume {resume}: the latest run of {spec} succeeded (or there is "
            "none): a fresh run, nothing to explain",
            file=stream,
        )
        return
    click.echo(
        f"resuming run {resumed.run_id[:8]} ({resumed.status}); before anything runs:",
        file=stream,
    )
    width = max((len(e.task_name) for e in explained), default=0)
    id_width = max((len(e.task_id) for e in explained), default=0)
    for item in explained:
        if item.reason:
            what = f"runs again: {item.reason}"
        elif item.cached:
            what = "its own cache decides: a hit unless its code or an input changed"
        else:
            what = "takes its checkpoint, unless one of its inputs changes"
        click.echo(f"  {item.task_name:<{width}}  {item.task_id:<{id_width}}  {what}", file=stream)


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
    from cascade.graph import GraphvizError, graphviz
    from cascade_cli.inspect_plan import with_resources

    target = _load(spec)
    if fmt in ("dot", "mermaid"):
        text = with_resources(visualize(target.graph, format=fmt), fmt, target)
        _write(text.encode(), output_file)
        return EXIT_OK
    dot = shutil.which("dot")
    if dot is None:
        click.echo(f"Error: {GRAPHVIZ_HINT.format(fmt=fmt)}", err=True)
        return EXIT_FAILED
    if fmt == "png" and output_file is None and _stdout_is_terminal():
        raise click.UsageError("PNG is binary; write it to a file with -o FILE.png")
    source = with_resources(visualize(target.graph, format="dot"), "dot", target)
    try:
        drawn = graphviz(source, fmt)
    except GraphvizError as error:
        click.echo(f"Error: {error}", err=True)
        return EXIT_FAILED
    _write(drawn, output_file)
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


def dry_run_command(
    spec: str,
    output: str,
    assignments: Sequence[str] = (),
    params_file: str | None = None,
    *,
    executor: str | None = None,
    max_concurrency: int | None = None,
    pools: Sequence[str] = (),
    keep_going: bool = False,
    executor_options: Mapping[str, Any] | None = None,
) -> int:
    """``cascade dry-run``: the plan with params filled in, policies, resources and which
    cached tasks would hit, as text or JSON, after every check ``cascade run`` makes before
    it starts (a refusal is the same usage error, exit code 2)."""
    from cascade_cli.inspect_plan import dry_run_lines, dry_run_steps

    target = _load(spec)
    given = _params(target, assignments, params_file)
    if executor is not None:
        _check_executor(executor)
    _apply_executor_options(target, executor, executor_options or {})
    _check_run(target, given, executor, max_concurrency, pools, keep_going)
    params = _resolved_params(target, given)
    steps = dry_run_steps(target, params)
    if output == "json":
        from cascade_cli.output import jsonable

        document = {"target": spec, "params": jsonable(params), "steps": jsonable(steps)}
        click.echo(json.dumps(document, indent=2))
    else:
        for line in dry_run_lines(steps, params):
            click.echo(line)
    return EXIT_OK


def _check_run(
    target: Target,
    params: Mapping[str, Any],
    executor: str | None,
    max_concurrency: int | None,
    pools: Sequence[str],
    keep_going: bool,
) -> None:
    """The checks ``Engine.run`` makes before it starts, with nothing started: a refusal is a
    usage error with the run's own message."""
    import asyncio

    from cascade_cli.run import SetupError, make_engine

    try:
        engine = make_engine(target, executor, max_concurrency)
        check = engine.check(
            target.graph,
            params,
            on_failure="continue" if keep_going else "stop",
            pools=parse_pools(pools),
        )
        asyncio.run(check)
    except SetupError as exc:
        raise click.UsageError(str(exc)) from None
    except Exception as exc:
        raise click.UsageError(f"the run could not start: {exc}") from None


def _resolved_params(target: Target, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every param's value as a run would see it: given ones converted, the rest defaults
    (required ones not given are left out)."""
    values: dict[str, Any] = {}
    for name, param in sorted(find_params(target.graph).items()):
        if name in given:
            try:
                values[name] = param.convert(given[name])
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
        elif not param.required:
            try:
                values[name] = param.default_value()
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
    return values


def params_help(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """The "Params of TARGET" section of ``cascade run TARGET --help``."""
    from cascade_cli.inspect_plan import params_rows

    try:
        target = load_target(spec)
    except TargetError as exc:
        first = str(exc).splitlines()[0]
        return f"Params of {spec}", [("(cannot load it)", first)]
    declared = find_params(target.graph)
    if not declared:
        return f"Params of {spec}", [("(none)", "this graph takes no params")]
    return f"Params of {spec} (--param NAME=VALUE)", params_rows(declared)


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
    ``None`` is the default directory. A ``--dir`` that does not exist is a usage error (a
    typo would otherwise read as an empty cache)."""
    if directory is not None and store is not None:
        raise click.UsageError("give --dir or --store, not both")
    if directory is not None:
        from cascade.caching import DirectoryStore

        if not os.path.isdir(directory):
            what = "is not a directory" if os.path.exists(directory) else "does not exist"
            raise click.BadParameter(
                f"the cache directory '{directory}' {what}", param_hint="'--dir'"
            )
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


def cache_info_command(directory: str | None, store: str | None, output: str) -> int:
    """``cascade cache info``: ``cs.cache_stats()`` as a table or JSON."""
    import cascade as cs

    stats = cs.cache_stats(store=_store(directory, store))
    exists = stats.directory is None or os.path.isdir(stats.directory)
    from cascade.records import CHECKPOINT_TASK
    from cascade.records import format_size as _size

    # Checkpoints of recorded runs share the directory with cache entries: shown apart.
    checkpoints = stats.tasks.get(CHECKPOINT_TASK)
    saved_entries = checkpoints.entries if checkpoints is not None else 0
    saved_bytes = checkpoints.bytes if checkpoints is not None else 0
    if output == "json":
        data = stats.to_dict()
        # Hit/miss counters are per process: always zero in a fresh `cascade` process.
        for counter in ("hits", "misses", "writes", "errors"):
            data.pop(counter, None)
        data["exists"] = exists
        data["checkpoints"] = {"entries": saved_entries, "bytes": saved_bytes}
        data["cache"] = {
            "entries": stats.entries - saved_entries,
            "bytes": stats.bytes - saved_bytes,
        }
        click.echo(json.dumps(data, indent=2))
        return EXIT_OK
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from cascade_cli.output import make_console

    console = make_console(sys.stdout, terminal=_stdout_is_terminal())
    where = stats.directory or f"store '{store}'"
    if not exists:
        console.print(Text(f"cache: {where} (does not exist yet: nothing was cached here)"))
    else:
        console.print(Text(f"cache: {where}"))
    expired = f", {stats.expired} expired" if stats.expired else ""
    console.print(Text(f"{stats.entries} entries{expired}, {_size(stats.bytes)}"))
    console.print(
        Text(
            f"  cache entries: {stats.entries - saved_entries}, "
            f"{_size(stats.bytes - saved_bytes)}\n"
            f"  checkpoints of recorded runs: {saved_entries}, {_size(saved_bytes)} "
            "(kept for the latest runs of each target; see `cascade runs list`)"
        )
    )
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
    """``cascade cache clear``: ``cs.clear_cache()`` for everything or one task. A task with
    no entries is said so, with the tasks that have some; a directory store is left without
    empty shard folders."""
    import cascade as cs

    chosen = _store(directory, store)
    before = cs.cache_stats(store=chosen)
    where = before.directory or f"store '{store}'"
    known = sorted(before.tasks)
    found = task is None or task in before.tasks
    removed = cs.clear_cache(task=task, store=chosen) if found else 0
    if before.directory is not None:
        _remove_empty_shards(before.directory)
    if output == "json":
        document: dict[str, Any] = {"removed": removed, "task": task, "directory": where}
        if task is not None:
            document["task_found"] = found
        click.echo(json.dumps(document))
        return EXIT_OK
    if not found:
        tasks = ", ".join(known) if known else "none"
        click.echo(
            f"no task '{task}' in the cache at {where} (tasks with entries: {tasks}); "
            "nothing removed"
        )
        return EXIT_OK
    which = f" of task '{task}'" if task else ""
    click.echo(f"removed {removed} cached entr{'y' if removed == 1 else 'ies'}{which} from {where}")
    return EXIT_OK


def _remove_empty_shards(directory: str) -> None:
    """The store keeps entries in two-letter shard folders; once cleared, empty ones go."""
    try:
        shards = [entry for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for shard in shards:
        if len(shard.name) == 2 and all(c in "0123456789abcdef" for c in shard.name):
            try:
                os.rmdir(shard.path)  # only succeeds when empty
            except OSError:
                pass
