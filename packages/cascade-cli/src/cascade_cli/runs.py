"""``cascade runs``: the run history ``cascade run`` records (``list``, ``show``, ``delete``,
``prune``, ``report``).

Only click (and ``cascade_cli.options``) is imported at module level, as in
``cascade_cli.main``: the records package, rich and the store load inside the commands. Every
command takes ``--output json`` and then prints one JSON document on stdout and nothing else;
``--db`` picks another SQLite file and ``--store`` a run store a plugin registered.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from cascade_cli.options import option_group

EXIT_OK = 0
STATUSES = ["Running", "Succeeded", "Failed", "Cancelled", "Crashed"]

output_option = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json prints one JSON document on stdout and nothing else.",
)

store_options = [
    click.option(
        "--db",
        "database",
        metavar="PATH",
        help="The SQLite file (default: $CASCADE_HOME/runs.sqlite3, else "
        ".cascade/runs.sqlite3 here).",
    ),
    click.option(
        "--store",
        metavar="NAME",
        help="A run store registered by a plugin (see `cascade plugins`) instead of a file.",
    ),
]


with_store_options = option_group(store_options)


# -- shared ------------------------------------------------------------------------------------


def open_store(database: str | None, store: str | None) -> Any:
    """The run store ``--db`` / ``--store`` mean (neither: the default SQLite file)."""
    from cascade.plugins import PluginError
    from cascade.records import SQLiteRunStore, resolve_run_store

    if database is not None and store is not None:
        raise click.UsageError("give --db or --store, not both")
    if database is not None:
        if os.path.isdir(database):
            raise click.BadParameter(
                f"'{database}' is a directory; give the SQLite file (runs.sqlite3 in it?)",
                param_hint="'--db'",
            )
        return SQLiteRunStore(database)
    try:
        return resolve_run_store(store if store is not None else True)
    except (PluginError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="'--store'") from None


def _find(store: Any, run_id: str, target: str | None = None) -> Any:
    """The run RUN names: an id, a unique prefix, or ``last``."""
    from cascade.records import RecordError, get_run

    try:
        if run_id == "last":
            latest = store.runs(target=target, limit=1)
            if not latest:
                where = f" of '{target}'" if target else ""
                raise RecordError(f"no run{where} is recorded in {store.location}")
            return latest[0]
        return get_run(store, run_id)
    except RecordError as exc:
        raise click.UsageError(str(exc)) from None


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _console() -> Any:
    from cascade_cli.output import make_console

    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return make_console(sys.stdout, terminal=terminal)


def _when(moment: float | None, seconds: bool = True) -> str:
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""), time.localtime(moment))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


_SHORT = {"Succeeded": "ok", "Failed": "failed", "Cancelled": "cancelled", "Skipped": "skipped"}


def _counts(tasks: dict[str, int]) -> str:
    """``"5 ok, 1 failed"``: a run's tasks by their last status."""
    order = ["Failed", "Cancelled", "Succeeded", "Skipped"]
    ranked = sorted(tasks.items(), key=lambda item: order.index(item[0]) if item[0] in order else 9)
    return ", ".join(f"{n} {_SHORT.get(status, status.lower())}" for status, n in ranked) or "-"


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: a duration back from now (``7d``, ``12h``) or a date or time
    (``2026-01-31``, ``2026-01-31T08:00``, local time unless it names its zone)."""
    from cascade.records import parse_duration

    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (7d, 12h, 30m) nor a date or time "
            "(2026-01-31, 2026-01-31T08:00)",
            param_hint="'--since'",
        ) from None
    return moment.timestamp()


STATUS_MARK = {
    "Succeeded": ("✓", "green"),
    "Failed": ("✗", "bold red"),
    "Cancelled": ("■", "yellow"),
    "Crashed": ("✗", "bold magenta"),
    "Running": ("▶", "blue"),
    "Skipped": ("↷", "cyan"),
}


def _status_text(status: str) -> Any:
    from rich.text import Text

    mark, style = STATUS_MARK.get(status, ("?", ""))
    return Text(f"{mark} {status}", style=style)


# -- the commands ------------------------------------------------------------------------------


@click.group()
def runs() -> None:
    """The history of recorded runs (`cascade run` records every run unless --no-record):
    list, show, delete, prune, and an HTML report of one run."""


@runs.command("list")
@click.option("--target", "-t", metavar="TARGET", help="Only runs of this target.")
@click.option(
    "--status",
    "-s",
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only runs that ended so (Crashed: killed, or its process is gone).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only runs started since WHEN: a duration back from now (7d, 12h) or a date or time.",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many runs.",
)
@with_store_options
@output_option
def list_runs(
    target: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    database: str | None,
    store: str | None,
    output: str,
) -> int:
    """List recorded runs, newest first."""
    chosen = open_store(database, store)
    wanted = next((s for s in STATUSES if status and s.lower() == status.lower()), None)
    found = chosen.runs(
        target=target,
        status=wanted,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    from cascade.records import format_size

    sizes_of = getattr(chosen, "checkpoint_bytes", None)  # the SQLite store knows them
    sizes: dict[str, int] = sizes_of([run.run_id for run in found]) if sizes_of else {}
    if output == "json":
        documents = []
        for run in found:
            document = run.to_dict()
            document["checkpoint_bytes"] = sizes.get(run.run_id, 0) if sizes_of else None
            documents.append(document)
        _echo_json({"store": chosen.location, "runs": documents})
        return EXIT_OK
    console = _console()
    if not found:
        from rich.text import Text

        console.print(Text(f"no recorded runs match in {chosen.location}"))
        return EXIT_OK
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Run", no_wrap=True)
    widest = max(len(run.label or run.target) for run in found)
    table.add_column("Target", overflow="fold", min_width=min(widest, 30))
    table.add_column("Status", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Tasks", overflow="fold", min_width=10)
    if sizes_of:
        table.add_column("Stored", justify="right", no_wrap=True)
    for run in found:
        name = run.label or run.target
        cells = [
            Text(run.run_id[:8]),
            Text(name),
            _status_text(run.status),
            _when(run.started, seconds=False),
            _seconds(run.duration),
            Text(_counts(dict(run.tasks))),
        ]
        if sizes_of:
            size = sizes.get(run.run_id, 0)
            cells.append(Text(format_size(size) if size else "-"))
        table.add_row(*cells)
    console.print(table)
    return EXIT_OK


#: Above this many rows, ``runs show`` merges the rows of one task (as the run summary does).
MERGE_ABOVE = 40


@runs.command("show")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--task",
    "task",
    metavar="ID_OR_NAME",
    help="Show this task's attempts (a task id, or a task name: every call of it) with their "
    "tracebacks and logs.",
)
@click.option(
    "--status",
    "-s",
    type=click.Choice(["Succeeded", "Failed", "Cancelled", "Skipped"], case_sensitive=False),
    help="Only tasks that ended so.",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), metavar="N", help="At most N task rows.")
@with_store_options
@output_option
def show_run(
    run_id: str,
    task: str | None,
    status: str | None,
    limit: int | None,
    database: str | None,
    store: str | None,
    output: str,
) -> int:
    """Show one run (an id, a unique prefix of one, or `last`) and what each task did:
    status, attempts, duration, error, and why it ran when the run resumed another. With
    --task, that task's attempts with their tracebacks and logs."""
    from cascade.records import AttemptTable, summarize_tasks

    chosen = open_store(database, store)
    run = _find(chosen, run_id)
    # The attempts stay as the store keeps them (successes as columns) while tasks are picked
    # and counted, so a 200,000-task run costs no object per task unless it is shown.
    table = AttemptTable.read(chosen, run.run_id)
    if task is not None:
        table = table.of_task(task)
        if not any(rows or successes for rows, successes in table.batches):
            raise click.UsageError(
                f"run {run.run_id[:8]} has no task '{task}' (give a task id or name from "
                f"`cascade runs show {run.run_id[:8]}`)"
            )
    # Each task's last attempt decides its status. Merged rows need no list of task ids
    # unless a filter picks some.
    total = table.count(status)
    shown_count = total if limit is None else min(total, limit)
    everything = status is None and shown_count == total
    console = _console() if output != "json" else None
    if console is not None and task is None and shown_count > MERGE_ABOVE:
        chosen_ids = None if everything else set(table.task_ids(status, limit))
        _print_run_head(console, run)
        _print_groups(console, table.groups(chosen_ids), total, shown_count)
        return EXIT_OK
    chosen_ids = None if everything else set(table.task_ids(status, limit))
    shown = table.attempts(chosen_ids)
    summaries = summarize_tasks(shown)
    if console is None:
        _echo_json(
            {
                "store": chosen.location,
                "run": run.to_dict(),
                "tasks": [s.to_dict() for s in summaries],
                "attempts": [a.to_dict() for a in shown],
            }
        )
        return EXIT_OK
    _print_run_head(console, run)
    if task is not None:
        _print_attempts(console, summaries)
        return EXIT_OK
    _print_task_table(console, summaries, total)
    return EXIT_OK


def _print_run_head(console: Any, run: Any) -> None:
    from rich.text import Text

    head = Text(f"run {run.run_id}  ")
    head.append_text(_status_text(run.status))
    console.print(head)
    facts = [
        ("target", run.target + (f" (as {run.label})" if run.label else "")),
        ("started", _when(run.started)),
        ("ended", _when(run.ended)),
        ("duration", _seconds(run.duration)),
        ("host", f"{run.host}, pid {run.pid}"),
        ("cascade", run.cascade_version),
    ]
    if run.params:
        shown = []
        for name, value in sorted(run.params.items()):
            text = (
                json.dumps(value["value"], ensure_ascii=False)
                if "value" in value
                else f"{value.get('repr')} ({value.get('type')})"
            )
            shown.append(f"{name}={text}")
        facts.append(("params", ", ".join(shown)))
    if run.trace_id:
        facts.append(("trace id", run.trace_id))
    if run.resumed_from:
        facts.append(("resumed from", run.resumed_from))
    if run.error:
        facts.append(("error", _cut(run.error)))
    for name, value in facts:
        console.print(Text(f"  {name}: {value}"))


def _table(*columns: str) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        right = name in ("Attempts", "Duration")
        table.add_column(
            name,
            justify="right" if right else "left",
            no_wrap=right or name == "Status",
            overflow="fold",
        )
    return table


def _print_task_table(console: Any, summaries: list[Any], total: int) -> None:
    """One row per task id: its status, attempts, duration, and details."""
    from rich.text import Text

    if not summaries:
        console.print(Text("  no task matches" if total else "  no task finished"))
        return
    table = _table("Task", "Id", "Status", "Attempts", "Duration", "Details")
    for summary in summaries:
        name = summary.call_name or summary.task_name
        if "[" in summary.task_id and not summary.call_name:  # a mapped item: name[2]
            name += summary.task_id[summary.task_id.index("[") :]
        table.add_row(
            Text(name),
            Text(summary.task_id),
            _status_text(summary.status),
            str(summary.attempts),
            _seconds(summary.duration),
            Text(_detail(summary)),
        )
    console.print(table)
    if total > len(summaries):
        console.print(Text(f"  ({total - len(summaries)} more task(s) not shown: --limit)"))


#: The order of status totals in a merged row (``8 ✓ 2 ✗``).
_STATUS_ORDER = ("Succeeded", "Failed", "Cancelled", "Skipped")


def _print_groups(console: Any, groups: list[Any], total: int, shown: int) -> None:
    """Above ``MERGE_ABOVE`` rows: one row per task name, with its status totals
    (``54 ✓ 6 ✗``), the ids of the calls that failed, and the last error."""
    from rich.text import Text

    table = _table("Task", "Ids", "Status", "Attempts", "Duration", "Details")
    for group in groups:
        counts = group.statuses
        marks = " ".join(
            f"{counts[status]} {STATUS_MARK.get(status, ('?', ''))[0]}"
            for status in sorted(
                counts, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else 9
            )
        )
        worst = next(
            (s for s in ("Failed", "Cancelled", "Skipped", "Succeeded") if s in counts), ""
        )
        failed = group.failed_ids
        ids = f"{group.calls} call{'' if group.calls == 1 else 's'}"
        if failed:
            ids += f"; failed: {', '.join(failed[:3])}" + (" ..." if len(failed) > 3 else "")
        table.add_row(
            Text(group.task_name),
            Text(ids),
            Text(marks, style=STATUS_MARK.get(worst, ("?", ""))[1]),
            str(group.attempts),
            _seconds(group.duration),
            Text(group.error or group.reason or ""),
        )
    console.print(table)
    if total > shown:
        console.print(Text(f"  ({total - shown} more task(s) not shown: --limit)"))


def _cut(text: str, limit: int = 300) -> str:
    """A run's error as its head shows it: at most ``limit`` characters (a run of 200
    failures names them all; ``--status failed`` lists them)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _detail(summary: Any) -> str:
    """A task row's details: its error or skip reason, and why it ran (a resumed run)."""
    parts = [summary.error or summary.reason or ""]
    if summary.why_ran:
        parts.append(f"ran because {summary.why_ran}")
    return "; ".join(p for p in parts if p)


def _print_attempts(console: Any, summaries: list[Any]) -> None:
    """Each attempt of the chosen task(s): status, times, why it ran, its traceback and logs."""
    from rich.text import Text

    from cascade_cli.output import print_traceback

    for summary in summaries:
        console.print(Text(""))
        named = f"{summary.call_name} ({summary.task_name})" if summary.call_name else ""
        title = Text(f"{named or summary.task_name}  {summary.task_id}  ")
        title.append_text(_status_text(summary.status))
        console.print(title)
        if summary.why_ran:
            console.print(Text(f"  ran because {summary.why_ran}"))
        for attempt in summary.history:
            line = Text(f"  attempt {attempt.attempt}: ")
            line.append_text(_status_text(attempt.status))
            line.append(
                f"  {_when(attempt.started)}  {_seconds(attempt.duration)}"
                + (f"  on {attempt.executor}" if attempt.executor else "")
            )
            if attempt.reason:
                line.append(f"  ({attempt.reason})")
            console.print(line)
            if attempt.error and not attempt.traceback:
                console.print(Text(f"    {attempt.error}"))
            for log in attempt.logs:
                when = _when(log.time) if log.time else ""
                console.print(Text(f"    {when} {log.level:<8} {log.logger}: {log.message}"))
            if attempt.traceback:
                print_traceback(console, attempt.traceback.rstrip("\n"))


@runs.command("delete")
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True)
@with_store_options
@output_option
def delete_runs(
    run_ids: Sequence[str], database: str | None, store: str | None, output: str
) -> int:
    """Delete runs (ids or unique prefixes) and the checkpoints only they refer to."""
    from cascade.records import RecordError
    from cascade.records import delete_runs as delete

    chosen = open_store(database, store)
    found, missing = [], []
    for run_id in run_ids:
        try:
            run = chosen.run(run_id)
        except RecordError as exc:
            raise click.UsageError(str(exc)) from None
        if run is None:
            missing.append(run_id)
        elif run.run_id not in found:
            found.append(run.run_id)
    if missing and output != "json":
        raise click.UsageError(
            f"no run {', '.join(repr(m) for m in missing)} in {chosen.location}; nothing "
            "deleted (see `cascade runs list`)"
        )
    removed = delete(chosen, found)
    if output == "json":
        _echo_json(
            {
                "store": chosen.location,
                "deleted": found,
                "not_found": missing,
                "checkpoint_entries_removed": removed,
            }
        )
        return EXIT_OK if not missing else 1
    for run_id in found:
        click.echo(f"deleted run {run_id}")
    click.echo(f"removed {removed} checkpoint entr{'y' if removed == 1 else 'ies'}")
    return EXIT_OK


@runs.command("prune")
@click.option(
    "--older-than",
    "older_than",
    metavar="AGE",
    help="Delete runs that started longer ago than AGE (30d, 12h, 1w2d).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    metavar="N",
    help="Delete all but the N latest runs of each target.",
)
@click.option("--target", "-t", metavar="TARGET", help="Only runs of this target.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@with_store_options
@output_option
def prune_runs(
    older_than: str | None,
    keep: int | None,
    target: str | None,
    dry_run: bool,
    database: str | None,
    store: str | None,
    output: str,
) -> int:
    """Delete old runs with their checkpoints (never a run still running): those older than
    --older-than, those beyond the --keep latest of their target, or both. (Recorded runs
    also tidy up after themselves: see RecordOptions in docs/history.md.)"""
    from cascade.records import parse_duration, prune

    if older_than is None and keep is None:
        raise click.UsageError("give --older-than AGE, --keep N, or both")
    seconds = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--older-than'") from None
    chosen = open_store(database, store)
    pruned = prune(chosen, seconds, keep=keep, target=target, dry_run=dry_run)
    ids = [run.run_id for run in pruned.runs]
    if output == "json":
        _echo_json(
            {
                "store": chosen.location,
                "older_than": seconds,
                "keep": keep,
                "dry_run": dry_run,
                "deleted": [] if dry_run else ids,
                "would_delete": ids if dry_run else [],
                "checkpoint_entries_removed": pruned.checkpoint_entries,
            }
        )
        return EXIT_OK
    verb = "would delete" if dry_run else "deleted"
    which = " or ".join(
        part
        for part in (
            f"started more than {older_than} ago" if older_than else "",
            f"beyond the {keep} latest of their target" if keep else "",
        )
        if part
    )
    click.echo(
        f"{verb} {len(ids)} run{'' if len(ids) == 1 else 's'} {which} from {chosen.location}"
        + ("" if dry_run else f", and {pruned.checkpoint_entries} checkpoint entries")
    )
    for run in pruned.runs:
        click.echo(f"  {run.run_id}  {run.status:<9}  {_when(run.started)}  {run.target}")
    return EXIT_OK


@runs.command("report")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--output-file",
    "-o",
    metavar="FILE",
    help="Where to write the HTML (default: run-<id>.html here; - for stdout).",
)
@with_store_options
@output_option
def report_run(
    run_id: str, output_file: str | None, database: str | None, store: str | None, output: str
) -> int:
    """Write an HTML report of one run: one self-contained file (no network) with the graph
    coloured by task status, a timeline of every attempt, the params and the errors."""
    from cascade.records import render_report

    chosen = open_store(database, store)
    run = _find(chosen, run_id)
    text = render_report(chosen, run.run_id)
    path = output_file or f"run-{run.run_id[:8]}.html"
    if path == "-":
        if output == "json":
            raise click.UsageError("--output json prints the document; give -o FILE")
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write '{path}': {exc.strerror or exc}", param_hint="'-o'"
        ) from None
    if output == "json":
        _echo_json({"store": chosen.location, "run_id": run.run_id, "path": os.path.abspath(path)})
    else:
        click.echo(f"wrote {path} (run {run.run_id})")
    return EXIT_OK


__all__ = ["parse_since", "runs"]
