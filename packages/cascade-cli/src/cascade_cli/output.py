"""What ``cascade run`` shows: a live display on a terminal, plain log lines elsewhere, or one
JSON document. All three read the same ``RunRecord``.

Everything here writes through ``cascade_cli.streams.SafeStream``: a reader that went away
(``| head``, ``| tee`` killed by Ctrl-C) is not an error of the run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import IO, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.pretty import Pretty
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from cascade import HumanReadableLogSubscriber, MessageBus, __version__
from cascade.records import format_traceback
from cascade_cli.capture import TerminalCapture
from cascade_cli.run import (
    CANCELLED,
    FAILED,
    FELL_BACK,
    NOT_RUN,
    OUTSIDE_THE_RUN,
    RETRYING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Outcome,
    RunRecord,
)
from cascade_cli.streams import SafeStream, write_line

STATUS_STYLE = {
    SUCCEEDED: ("✓", "green"),
    FAILED: ("✗", "bold red"),
    CANCELLED: ("■", "yellow"),
    SKIPPED: ("↷", "cyan"),
    RUNNING: ("▶", "blue"),
    RETRYING: ("↻", "yellow"),
    NOT_RUN: ("·", "dim"),
    FELL_BACK: ("↩", "yellow"),
}


def make_console(file: IO[str] | SafeStream, terminal: bool) -> Console:
    """A console that writes control codes only when ``terminal`` is true, whatever the
    environment says (CI variables that force colour would otherwise leak escapes into logs)."""
    target: Any = file if isinstance(file, SafeStream) else SafeStream(file)
    if terminal:
        return Console(file=target, force_terminal=True, highlight=False)
    return Console(
        file=target,
        force_terminal=False,
        force_interactive=False,
        color_system=None,
        highlight=False,
        width=int(os.environ.get("COLUMNS", "0") or 0) or 100,
        emoji=False,
        soft_wrap=True,  # lines of text as they are (a log or a pager wraps them); tables fit
    )


# -- JSON --------------------------------------------------------------------------------------


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data: containers recursively, dates as ISO text, paths and
    decimals as strings, dataclasses as objects, and anything else as its ``repr``."""
    if _depth > 50:
        return repr(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        try:
            return jsonable(dump(), _depth + 1)
        except Exception:
            pass
    if type(value).__name__ == "Decimal":
        return str(value)
    return repr(value)


def error_info(record: RunRecord, outcome: Outcome, with_traceback: bool) -> dict[str, Any] | None:
    """The failure of a run: the exception, and the task that raised it when one did."""
    if outcome.status == SUCCEEDED:
        return None
    exc = outcome.error
    if outcome.status == CANCELLED:
        return {"type": "Cancelled", "message": "the run was interrupted", "task": None}
    info: dict[str, Any] = {
        "type": type(exc).__name__ if exc is not None else "Error",
        "message": str(exc) if exc is not None else (record.error or ""),
        "task": None,
        "task_id": None,
        "resource": record.failed_resource,
    }
    failures = record.failures()
    if failures:
        # The unit whose attempt raised this very exception: id, name and error always
        # belong to the same attempt (two map items may fail at once).
        culprit = next((u for u in failures if u.exception is exc), failures[0])
        info["task"] = culprit.task
        info["task_id"] = culprit.task_id
    grouped = getattr(exc, "failures", None)
    if isinstance(grouped, dict):  # a keep-going run: every failed task with its own error
        info["task"] = info["task_id"] = None  # the error is the group, not one task's
        names = {u.task_id: u.task for s in record.steps.values() for u in s.units.values()}
        info["failures"] = [
            {
                "task_id": task_id,
                "task": names.get(task_id, task_id.split("[", 1)[0].rsplit("-", 1)[0]),
                "type": type(failure).__name__,
                "message": str(failure),
            }
            for task_id, failure in grouped.items()
        ]
    if with_traceback and exc is not None:
        info["traceback"] = format_traceback(exc)
    return info


def task_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per planned task call (a ``.map`` is one row with its item count)."""
    rows = []
    with record.lock:
        for step in record.steps.values():
            row: dict[str, Any] = {
                "task_id": step.task_id,
                "task": step.task,
                "status": step.status(record.status),
                "attempts": step.attempts,
                "duration": round(step.duration, 6),
                "error": step.error,
                "skip_reason": step.reason,
                "executor": step.executor,
                "parent_task_id": step.parent_task_id,
            }
            if step.is_map:
                # Every item it has, also those that never started (a map stopped early).
                row["map_items"] = step.weight() if (step.units or step.expected) else 0
                wall = step.wall
                row["wall_duration"] = round(wall, 6) if wall is not None else None
            rows.append(row)
    return rows


def run_document(
    record: RunRecord,
    outcome: Outcome,
    target: str,
    params: Mapping[str, Any],
    with_traceback: bool,
) -> dict[str, Any]:
    """The document ``--output json`` prints."""
    return {
        "status": outcome.status,
        "run_id": record.run_id,
        "target": target,
        "params": jsonable(record.params if record.params is not None else dict(params)),
        "duration": round(record.elapsed(), 6),
        "result": jsonable(outcome.result) if outcome.status == SUCCEEDED else None,
        "error": error_info(record, outcome, with_traceback),
        "tasks": task_rows(record),
        "retries": record.retries,
        "cascade_version": __version__,
    }


# -- the summary (shared by the live and the plain output) --------------------------------------


SUMMARY_ROWS = 40
_SEVERITY = [FAILED, CANCELLED, NOT_RUN, RETRYING, RUNNING, FELL_BACK, SKIPPED, SUCCEEDED]


def _rank(status: str) -> int:
    return _SEVERITY.index(status) if status in _SEVERITY else 0


def by_task_name(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows merged per task name, for graphs too big to list call by call: the worst status,
    attempts and durations summed, and how many calls ended how."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        merged.setdefault(row["task"], []).append(row)
    result = []
    for name, group in merged.items():
        statuses: dict[str, int] = {}
        for row in group:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        worst = min(statuses, key=_rank)
        errors = [row["error"] for row in group if row["error"]]
        ordered = sorted(statuses.items(), key=lambda item: _rank(item[0]))
        tally = ", ".join(f"{n} {s}" for s, n in ordered) if len(statuses) > 1 else ""
        details = "; ".join(part for part in (tally, errors[0] if errors else "") if part)
        calls = len(group)
        result.append(
            {
                "task": f"{name} ({calls} call{'s' if calls != 1 else ''})" if calls > 1 else name,
                "status": worst,
                "attempts": sum(row["attempts"] for row in group),
                "duration": sum(row["duration"] for row in group),
                "error": details or None,
                "skip_reason": None,
            }
        )
    return result


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def summary_table(record: RunRecord) -> Table:
    """One row per task call, or per task name when there are more than ``SUMMARY_ROWS``
    calls (``--output json`` always has every call). A ``.map`` row shows its wall time (first
    item's start to last item's end) and, in Details, the sum of its items' durations."""
    rows = task_rows(record)
    if len(rows) > SUMMARY_ROWS:
        rows = by_task_name(rows)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    # Headers never shrink below their own width: on a narrow terminal the task names and the
    # details fold onto more lines instead.
    table.add_column("Task", overflow="fold", min_width=4)
    table.add_column("Status", no_wrap=True, min_width=len("✓ Succeeded"))
    table.add_column("Attempts", justify="right", no_wrap=True, min_width=len("Attempts"))
    table.add_column("Duration", justify="right", no_wrap=True, min_width=len("Duration"))
    table.add_column("Details", overflow="fold", min_width=len("Details"))
    for row in rows:
        mark, style = STATUS_STYLE.get(row["status"], ("?", ""))
        name = row["task"]
        duration = _seconds(row["duration"])
        notes = [row["error"] or row["skip_reason"] or ""]
        if "map_items" in row:
            name += f" [map of {row['map_items']}]"
            if row.get("wall_duration") is not None:
                duration = _seconds(row["wall_duration"])
                if row["map_items"] > 1:
                    notes.insert(0, f"sum {_seconds(row['duration'])}")
        table.add_row(
            Text(name),
            Text(f"{mark} {row['status']}", style=style),
            str(row["attempts"]),
            duration,
            Text("; ".join(note for note in notes if note)),
        )
    return table


def headline(record: RunRecord, outcome: Outcome) -> Text:
    done, total = record.counts()
    mark, style = STATUS_STYLE.get(outcome.status, ("?", ""))
    text = Text(f"{mark} {outcome.status}", style=style)
    run = f" · run {record.run_id[:8]}" if record.run_id else ""
    text.append(f" in {record.elapsed():.2f}s · {done}/{total} tasks done{run}")
    if record.retries:
        text.append(f" · {record.retries} retr{'y' if record.retries == 1 else 'ies'}")
    return text


def print_traceback(console: Console, text: str) -> None:
    """A traceback exactly as formatted: never wrapped by rich (paths stay whole; a terminal
    wraps long lines itself)."""
    if console.is_terminal:
        console.print(Text(text.rstrip("\n"), style="dim"), soft_wrap=True)
    else:
        console.file.write(text if text.endswith("\n") else text + "\n")
        console.file.flush()


def print_ending(
    console: Console, record: RunRecord, outcome: Outcome, log_level: str | None
) -> None:
    """The summary table, the headline, then the result or what failed."""
    console.print()
    console.print(summary_table(record))
    console.print(headline(record, outcome))
    if outcome.status == SUCCEEDED:
        result = outcome.result
        if isinstance(result, str):
            # Text results (reports, paths) read best as they are, not as a repr.
            console.print(Text("Result:", style="bold"), end="\n" if "\n" in result else " ")
            console.print(Text(result))
        else:
            console.print(Text("Result: ", style="bold"), end="")
            console.print(Pretty(result, max_length=50, max_string=2000))
    elif outcome.status == FAILED:
        info = error_info(record, outcome, with_traceback=False) or {}
        message = f"{info.get('type')}: {info.get('message')}"
        failures = info.get("failures")
        if failures:
            console.print(Text(f"{len(failures)} task(s) failed:", style="bold red"))
            for failure in failures:
                line = Text(f"  task '{failure['task']}' ({failure['task_id']}): ", style="red")
                line.append(f"{failure['type']}: {failure['message']}")
                console.print(line)
            exc = outcome.error
            if log_level == "DEBUG" and exc is not None:
                print_traceback(console, format_traceback(exc))
            else:
                console.print(Text("(run with --log-level DEBUG for the traceback)", style="dim"))
            return
        if info.get("task"):
            text = Text(f"task '{info['task']}' ({info['task_id']}) failed: ", style="bold red")
        elif info.get("resource"):
            notes = getattr(outcome.error, "__notes__", None) or ()
            phase = "tear down" if any("while tearing down" in n for n in notes) else "set up"
            text = Text(f"resource '{info['resource']}' failed to {phase}: ", style="bold red")
        else:
            text = Text("the run failed: ", style="bold red")
        text.append(message)
        console.print(text)
        exc = outcome.error
        if log_level == "DEBUG" and exc is not None:
            print_traceback(console, format_traceback(exc))
        else:
            console.print(Text("(run with --log-level DEBUG for the traceback)", style="dim"))
    else:
        console.print(Text("interrupted: tasks stopped and resources torn down", style="yellow"))


# -- what Ctrl-C says --------------------------------------------------------------------------


#: Executors that run sync tasks in threads of this process (a thread cannot be stopped).
THREAD_EXECUTORS = frozenset({"local", "threads"})


def interrupt_text(count: int, record: RunRecord) -> str:
    """What to say on the ``count``-th Ctrl-C: the second one names what the run still waits
    for (sync tasks in threads cannot be stopped, only waited for)."""
    if count == 1:
        with record.lock:
            # Sync calls in threads cannot be stopped: the run waits for them to return.
            record.waited_for = [
                name
                for name, is_async, executor in record.running_units()
                if not is_async and executor in THREAD_EXECUTORS
            ]
        return (
            "interrupted: stopping tasks and tearing resources down "
            "(Ctrl-C twice more to quit at once)"
        )
    if count == 2:
        waited = list(record.waited_for)
        if waited:
            names = ", ".join(waited[:6])
            more = f" and {len(waited) - 6} more" if len(waited) > 6 else ""
            return (
                f"still waiting for {len(waited)} sync task(s) to return: {names}{more} (a "
                "call running in a thread cannot be stopped); resources are torn down after "
                "that. Ctrl-C once more quits at once, without teardown"
            )
        return "still tearing resources down; Ctrl-C once more quits at once, without teardown"
    if count == OUTSIDE_THE_RUN:
        return "interrupted"
    return "quitting without teardown"


# -- the three outputs -------------------------------------------------------------------------


class PlainOutput:
    """Plain log lines (no control codes) for CI, cron and pipes, then the summary."""

    def __init__(self, record: RunRecord, log_level: str | None, stream: IO[str]) -> None:
        self.record = record
        self.log_level = log_level
        self.stream = SafeStream(stream)
        self.console = make_console(self.stream, terminal=False)

    def attach(self, bus: MessageBus) -> None:
        HumanReadableLogSubscriber(bus, stream=self.stream, level=self.log_level or "INFO")  # type: ignore[arg-type]

    def interrupted(self, count: int) -> None:
        write_line(sys.stderr, f"cascade: {interrupt_text(count, self.record)}")

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def finish(self, outcome: Outcome, target: str, params: Mapping[str, Any]) -> None:
        print_ending(self.console, self.record, outcome, self.log_level)


class JsonOutput:
    """Logs on stderr and, at the end, one JSON document on the real standard output (task
    code that prints is sent to stderr too, so the document stays alone on stdout)."""

    def __init__(self, record: RunRecord, log_level: str | None) -> None:
        self.record = record
        self.log_level = log_level
        self._saved_fd: int | None = None
        self._redirect: Any = None

    def attach(self, bus: MessageBus) -> None:
        HumanReadableLogSubscriber(
            bus,
            stream=SafeStream(sys.stderr),  # type: ignore[arg-type]
            level=self.log_level or "INFO",
        )

    def interrupted(self, count: int) -> None:
        write_line(sys.stderr, f"cascade: {interrupt_text(count, self.record)}")

    def start(self) -> None:
        SafeStream(sys.stdout).flush()
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        if fd == 1:
            # Point file descriptor 1 at stderr, so prints from threads and worker processes
            # cannot land in the document either.
            self._saved_fd = os.dup(1)
            os.dup2(2, 1)
        else:
            import contextlib

            self._redirect = contextlib.redirect_stdout(sys.stderr)
            self._redirect.__enter__()

    def stop(self) -> None:
        SafeStream(sys.stdout).flush()
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 1)
            os.close(self._saved_fd)
            self._saved_fd = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def finish(self, outcome: Outcome, target: str, params: Mapping[str, Any]) -> None:
        document = run_document(
            self.record, outcome, target, params, with_traceback=self.log_level == "DEBUG"
        )
        out = SafeStream(sys.stdout)
        out.write(json.dumps(document, indent=2) + "\n")
        out.flush()


class _Activity:
    """The lines under the progress bar: what is running now, retries and failures. Rendered
    by the live display's refresh thread from the record."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def __rich__(self) -> RenderableType:
        record = self.record
        with record.lock:
            running = record.running()
            waiting = record.waiting()
            failures = record.failed
            retries = record.retries
        if record.status is not None:
            # The run has ended: nothing runs or waits any more, whatever was in flight when
            # it stopped; the last frame says how it ended.
            word, style = _ENDED.get(record.status, (record.status.lower(), ""))
            text = Text(word, style=style)
            text.append("   ")
            text.append(f"retries: {retries}", style="yellow" if retries else "dim")
            text.append("   ")
            text.append(f"failures: {failures}", style="bold red" if failures else "dim")
            return text
        text = Text("running: ", style="bold")
        if running:
            shown = ", ".join(running[:8])
            more = f" (+{len(running) - 8} more)" if len(running) > 8 else ""
            text.append(shown + more, style="blue")
        else:
            text.append("-", style="dim")
        text.append("\n")
        if waiting:
            text.append("waiting for ", style="bold")
            text.append(", ".join(f"{what} ({n} queued)" for what, n in waiting.items()))
            text.append("\n")
        text.append(f"retries: {retries}", style="yellow" if retries else "dim")
        text.append("   ")
        text.append(f"failures: {failures}", style="bold red" if failures else "dim")
        return text


#: How the last frame of the live display says a run ended.
_ENDED = {
    SUCCEEDED: ("✓ succeeded", "green"),
    FAILED: ("✗ failed", "bold red"),
    CANCELLED: ("■ interrupted", "yellow"),
}


class _Outcome(ProgressColumn):
    """The mark of the last frame, in the spinner's place: the run's own outcome (✓, ✗ or ■),
    not whether every unit finished (a keep-going run can finish every unit and still have
    failed, a stopped one leaves units unfinished)."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.mark, self.style = _ENDED.get(status, ("?", ""))

    def render(self, task: Task) -> RenderableType:
        return Text(self.mark[0], style=self.style)


class _Counts(ProgressColumn):
    """``done/total`` units of work; ``+`` after the total while it may still grow."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record

    def render(self, task: Task) -> Text:
        with self.record.lock:
            done, total = self.record.counts()
            more = "+" if self.record.provisional() else ""
        return Text(f"{done}/{total}{more}", style="progress.download")


class _ConsoleLines:
    """A text stream whose complete lines are printed above the live display."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


class LiveOutput:
    """A live display on a terminal: a progress bar of tasks done / total with the elapsed
    time, the running tasks, retries and failures; it ends in the summary table. Warnings
    (retries, failures), and everything else written to the terminal meanwhile (prints,
    logging, worker processes), are printed above it as they happen, never over it."""

    def __init__(
        self, record: RunRecord, log_level: str | None, target: str, stream: IO[str]
    ) -> None:
        self.record = record
        self.log_level = log_level
        # The display draws on a duplicate of the terminal, so that fd 1 can be captured.
        try:
            fd = os.dup(stream.fileno())
            terminal: IO[str] = open(  # noqa: SIM115 - closed in stop()
                fd, "w", encoding=getattr(stream, "encoding", None) or "utf-8", closefd=True
            )
        except (AttributeError, OSError, ValueError):
            terminal = stream
        self.terminal = terminal
        self.console = make_console(terminal, terminal=True)
        self.capture = TerminalCapture(self._captured)
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            _Counts(record),
            TextColumn("tasks"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.bar: TaskID = self.progress.add_task(target, total=None, start=False)
        captured = self.capture.available()
        self.live = Live(
            Group(self.progress, _Activity(record)),
            console=self.console,
            refresh_per_second=10,
            transient=False,
            redirect_stdout=not captured,
            redirect_stderr=not captured,
        )
        self._bus: MessageBus | None = None
        record.listeners.append(lambda _event: self.update())

    def _captured(self, line: str) -> None:
        self.console.print(Text.from_ansi(line), soft_wrap=True)

    def attach(self, bus: MessageBus) -> None:
        self._bus = bus

    def interrupted(self, count: int) -> None:
        text = interrupt_text(count, self.record)
        if count >= 3 or count == OUTSIDE_THE_RUN:
            # The command quits at once (os._exit): give the terminal back as it was, with
            # its cursor, written straight to it (no lock the display may hold).
            self.capture.restore_now()
            try:
                os.write(self.terminal.fileno(), f"\x1b[?25h\n{text}\n".encode())
            except (OSError, ValueError, AttributeError):
                pass
            return
        self.console.print(Text(text, style="yellow"))

    def update(self) -> None:
        with self.record.lock:
            done, total = self.record.counts()
        if not self.progress.tasks[0].started and self.record.started:
            self.progress.start_task(self.bar)
        self.progress.update(self.bar, completed=done, total=total)

    def start(self) -> None:
        self.live.start()
        self.capture.start()
        if self._bus is not None:
            HumanReadableLogSubscriber(
                self._bus,
                stream=_ConsoleLines(self.console),  # type: ignore[arg-type]
                level=self.log_level or "WARNING",
            )

    def stop(self) -> None:
        self.capture.stop()
        if self.live.is_started:
            self.update()
            status = self.record.status
            if status is not None:  # the spinner gives way to how the run ended
                self.progress.columns = (_Outcome(status), *self.progress.columns[1:])
            self.progress.stop_task(self.bar)
            self.live.refresh()
            self.live.stop()
        self.console.show_cursor(True)

    def finish(self, outcome: Outcome, target: str, params: Mapping[str, Any]) -> None:
        print_ending(self.console, self.record, outcome, self.log_level)
        self.console.file.flush()
