"""The HTML report of one recorded run: a single self-contained file (inline CSS and SVG, no
script, no network) with the run's facts and params, its graph coloured by task status, a
timeline with one row per task and one bar per attempt (retries and failures visible), the
errors with their tracebacks and logs, and every task (those that did not run too).

Every bar is an SVG ``rect`` of class ``bar`` carrying ``data-task-id`` and ``data-attempt``;
graph nodes are ``g`` elements of class ``node`` with ``data-status`` (a map's node shows its
items' counts, ``fetch [map] 8/10 ✓ 2 ✗``; the calls one task returned while the run ran
are one node with their count, ``data-count``); each error is a ``details`` element of class
``error`` whose summary is the error and whose body is the traceback and what the attempt
logged. A call skipped because of its upstream is marked with a circle, one that took its
value from a cache or a checkpoint with a diamond; the time an attempt waited for a pool, a
rate or a limit before it started is a hatched ``rect`` of class ``wait`` before its bar.
Big runs are cut to the first ``MAX_GRAPH_NODES`` nodes and ``MAX_TIMELINE_ROWS`` rows, and
the page says so.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cascade.records.history import TaskSummary, get_run, summarize_tasks
from cascade.records.model import (
    CHECKPOINT,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    GraphNode,
    RecordedAttempt,
    RecordedRun,
    RunStore,
    iso_time,
)

MAX_GRAPH_NODES = 400
MAX_TIMELINE_ROWS = 600
NOT_RUN = "NotRun"
RETRIED = "Retried"

COLOURS = {
    SUCCEEDED: "#2e9d5b",
    FAILED: "#d64545",
    "Cancelled": "#9a6fb0",
    "Running": "#e0a800",
    "Crashed": "#8b1a1a",
    RETRIED: "#f0a030",
    SKIPPED: "#8fa3b8",
    CHECKPOINT: "#3a86c8",
    "CacheHit": "#5fa8d3",
    NOT_RUN: "#cfd4da",
    "Param": "#ffffff",
}

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 24px; color: #1d2430; background: #fafbfc; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.status { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff;
          font-weight: 600; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #dde2e8; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f1f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.facts td:first-child { color: #5b6675; }
.scroll { overflow-x: auto; background: #fff; border: 1px solid #dde2e8; padding: 8px; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: -1px; border: 1px solid #9aa4b1; }
.note { color: #5b6675; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0;
      font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
td { overflow-wrap: anywhere; max-width: 48em; }
details.error { background: #fff; border: 1px solid #dde2e8; border-left: 4px solid #d64545;
                margin: 6px 0; padding: 4px 10px; }
details.error.retried { border-left-color: #f0a030; }
details.error summary { cursor: pointer; white-space: pre-wrap; overflow-wrap: anywhere; }
details.error pre { margin: 6px 0; padding: 6px; background: #f6f8fa; }
.logs td { font: 12px ui-monospace, Menlo, Consolas, monospace; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
"""

#: How a node's kind shows in its label: a map, a generator task's stream (docs/streams.md).
_MARKS = {"map": " [map]", "stream": " [stream]"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def _param_text(record: Mapping[str, Any]) -> str:
    if "value" in record:
        return json.dumps(record["value"], ensure_ascii=False)
    return f"{record.get('repr', '?')}  ({record.get('type', '?')}, not JSON)"


def _attempt_state(attempt: RecordedAttempt) -> str:
    if attempt.status == FAILED and attempt.will_retry:
        return RETRIED
    if attempt.status == SKIPPED:
        return attempt.reason if attempt.reason in (CHECKPOINT, "CacheHit") else SKIPPED
    return attempt.status


def _node_status(summaries: Sequence[TaskSummary]) -> str:
    """A graph node's colour from its units (a map's items): the worst one wins."""
    if not summaries:
        return NOT_RUN
    states = {_summary_state(s) for s in summaries}
    for state in (FAILED, "Cancelled", "Running", RETRIED, NOT_RUN):
        if state in states:
            return state
    if states <= {CHECKPOINT}:
        return CHECKPOINT
    if states <= {"CacheHit", CHECKPOINT}:
        return "CacheHit"
    if states == {SKIPPED}:
        return SKIPPED
    return SUCCEEDED


def _summary_state(summary: TaskSummary) -> str:
    if summary.status == SKIPPED:
        return summary.reason if summary.reason in (CHECKPOINT, "CacheHit") else SKIPPED
    return summary.status


# -- the graph -----------------------------------------------------------------------------------


def _graph_svg(nodes: list[GraphNode], summaries: list[TaskSummary]) -> tuple[str, str]:
    units: dict[str, list[TaskSummary]] = {}
    for summary in summaries:
        units.setdefault(summary.task_id.split("[", 1)[0], []).append(summary)
    known = {node.task_id for node in nodes}
    extra: list[GraphNode] = []
    dashed: set[tuple[str, str]] = set()
    # Tasks a task's returned graph added while the run ran: the calls of one task that one
    # parent returned are one node (a fan-out of 500 is one box saying 500, not 500 boxes).
    grouped: dict[tuple[str | None, str], str] = {}
    for summary in summaries:
        base = summary.task_id.split("[", 1)[0]
        if base in known:
            continue
        parent = summary.parent_task_id
        parent_base = parent.split("[", 1)[0] if parent else None
        group = grouped.get((parent_base, summary.task_name))
        if group is not None:
            if base != group:
                units.setdefault(group, []).extend(units.pop(base, []))
            continue
        known.add(base)
        grouped[(parent_base, summary.task_name)] = base
        deps = (parent_base,) if parent_base else ()
        extra.append(GraphNode(base, summary.task_name, "calls", deps))
        for dep in deps:
            dashed.add((dep, base))
    every = nodes + extra
    note = ""
    if len(every) > MAX_GRAPH_NODES:
        note = f"The graph has {len(every)} nodes; the first {MAX_GRAPH_NODES} are drawn."
        every = every[:MAX_GRAPH_NODES]
    ids = {node.task_id for node in every}
    depth: dict[str, int] = {}
    for node in every:  # recorded in topological order; added tasks follow their parents
        depth[node.task_id] = 1 + max((depth.get(d, -1) for d in node.deps if d in ids), default=-1)
    columns: dict[int, list[GraphNode]] = {}
    for node in every:
        columns.setdefault(depth[node.task_id], []).append(node)
    width, height, gap_x, gap_y = 190, 40, 60, 16
    position: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        for row, node in enumerate(members):
            position[node.task_id] = (
                12 + column * (width + gap_x),
                12 + row * (height + gap_y),
            )
    svg_width = 24 + (max(columns, default=0) + 1) * (width + gap_x) - gap_x
    svg_height = 24 + max((len(m) for m in columns.values()), default=1) * (height + gap_y)
    parts = [
        f'<svg class="graph" width="{svg_width}" height="{svg_height}" '
        f'viewBox="0 0 {svg_width} {svg_height}" role="img" aria-label="task graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7b8794"/>'
        "</marker></defs>",
    ]
    for node in every:
        x2, y2 = position[node.task_id]
        for dep in node.deps:
            if dep not in position:
                continue
            x1, y1 = position[dep]
            sx, sy, ex, ey = x1 + width, y1 + height // 2, x2, y2 + height // 2
            mid = (sx + ex) // 2
            dash = ' stroke-dasharray="5,4"' if (dep, node.task_id) in dashed else ""
            parts.append(
                f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" '
                f'fill="none" stroke="#7b8794" stroke-width="1.3"{dash} '
                'marker-end="url(#arrow)"/>'
            )
    for node in every:
        x, y = position[node.task_id]
        units_of = units.get(node.task_id, [])
        status = "Param" if node.kind == "param" else _node_status(units_of)
        fill = COLOURS.get(status, "#cfd4da")
        light = status in (NOT_RUN, "Param", SKIPPED)
        text_colour = "#1d2430" if light else "#ffffff"
        label = node.task_name + _MARKS.get(node.kind, "")
        if node.kind == "calls" and len(units_of) > 1:
            label += f" ×{len(units_of)}"
        shown = label if len(label) <= 26 else label[:25] + "…"
        counts = _counts(units_of) if node.kind in ("map", "calls") and units_of else ""
        detail = f"{label}: {status}" + (f", {counts}" if counts else "")
        radius = 17 if node.kind == "param" else 5
        middle = x + width // 2
        if counts:
            text = (
                f'<text x="{middle}" y="{y + 16}" text-anchor="middle" '
                f'fill="{text_colour}">{_e(shown)}</text>'
                f'<text class="counts" x="{middle}" y="{y + 32}" text-anchor="middle" '
                f'fill="{text_colour}">{_e(counts)}</text>'
            )
        else:
            text = (
                f'<text x="{middle}" y="{y + height // 2 + 4}" text-anchor="middle" '
                f'fill="{text_colour}">{_e(shown)}</text>'
            )
        parts.append(
            f'<g class="node" data-task-id="{_e(node.task_id)}" data-status="{_e(status)}" '
            f'data-kind="{_e(node.kind)}" data-count="{len(units_of)}">'
            f"<title>{_e(detail)}</title>"
            f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="{radius}" '
            f'fill="{fill}" stroke="#4a5563" stroke-width="1"/>{text}</g>'
        )
    parts.append("</svg>")
    return "".join(parts), note


def _counts(units: Sequence[TaskSummary]) -> str:
    """``8/10 ✓ 2 ✗``: of a map's items (or a group of calls), how many succeeded (or took a
    cached or checkpointed value), failed, and did not run."""
    states = [_summary_state(u) for u in units]
    done = sum(state in (SUCCEEDED, CHECKPOINT, "CacheHit") for state in states)
    failed = sum(state == FAILED for state in states)
    other = len(states) - done - failed
    text = f"{done}/{len(states)} ✓"
    if failed:
        text += f" {failed} ✗"
    if other:
        text += f" {other} other"
    return text


def _ticks(span: float) -> list[float]:
    """Round tick values from 0 to ``span``: steps of 1, 2 or 5 times a power of ten, about
    five of them."""
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = int(span / step + 1e-9)
    return [step * k for k in range(count + 1)]


def _tick_text(seconds: float) -> str:
    """A tick label: ``0``, ``250 ms``, ``1.5 s``, ``2 min`` (no needless decimals)."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g} ms"
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


def _name(summary: TaskSummary) -> str:
    """A task's label: its run name, else its name with the map index (``fetch[3]``)."""
    if summary.call_name:
        return summary.call_name
    name = summary.task_name
    if "[" in summary.task_id:
        name += summary.task_id[summary.task_id.index("[") :]
    return name


#: Skip reasons that mean the value came from elsewhere (a diamond on the timeline), as
#: opposed to a call that did not run because of its upstream or its condition (a circle).
_FROM_STORE = (CHECKPOINT, "CacheHit")


# -- the timeline --------------------------------------------------------------------------------


def _timeline_svg(
    run: RecordedRun, summaries: list[TaskSummary], not_run: Sequence[GraphNode] = ()
) -> tuple[str, str, int]:
    rows = summaries
    note = ""
    if len(rows) > MAX_TIMELINE_ROWS:
        note = f"{len(rows)} tasks ran; the first {MAX_TIMELINE_ROWS} rows are shown."
        rows = rows[:MAX_TIMELINE_ROWS]
    starts = [a.started for s in rows for a in s.history if a.started]
    ends = [a.ended for s in rows for a in s.history if a.ended]
    begin = min([run.started, *starts])
    finish = max([run.ended or 0.0, *ends, begin + 1e-3])
    span = max(finish - begin, 1e-3)
    label_width, plot_width, row_height = 230, 820, 22
    idle = list(not_run)[: max(MAX_TIMELINE_ROWS - len(rows), 0)]
    height = 40 + (len(rows) + len(idle)) * row_height
    width = label_width + plot_width + 40

    def x_of(moment: float) -> float:
        return label_width + (moment - begin) / span * plot_width

    parts = [
        f'<svg class="timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of every attempt">'
        '<defs><pattern id="waiting" patternUnits="userSpaceOnUse" width="6" height="6" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f6f8"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9aa4b1" stroke-width="2"/></pattern></defs>'
    ]
    for tick in _ticks(span):
        x = label_width + plot_width * tick / span
        # the last label ends at its line, so it is never cut off at the right edge
        anchor = "end" if x > label_width + plot_width - 30 else "middle"
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 8}" '
            f'stroke="#e6e9ee"/><text class="tick" x="{x:.1f}" y="14" text-anchor="{anchor}" '
            f'fill="#5b6675">{_e(_tick_text(tick))}</text>'
        )
    bars = 0
    for index, summary in enumerate(rows):
        y = 24 + index * row_height
        name = _name(summary)
        shown = name if len(name) <= 32 else name[:31] + "…"
        parts.append(
            f'<g class="row" data-task-id="{_e(summary.task_id)}">'
            f'<text class="label" x="{label_width - 8}" y="{y + 14}" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(shown)}</text>"
        )
        for attempt in summary.history:
            state = _attempt_state(attempt)
            colour = COLOURS.get(state, "#cfd4da")
            if attempt.status == SKIPPED:
                x = x_of(attempt.started)
                why = f"<title>{_e(name)}: skipped ({_e(attempt.reason or '')})</title>"
                if attempt.reason in _FROM_STORE:  # a diamond: the value came from a store
                    parts.append(
                        f'<path class="skip from-store" data-reason="{_e(attempt.reason)}" '
                        f'd="M{x:.1f},{y + 4} l6,7 l-6,7 l-6,-7 z" fill="{colour}" '
                        f'stroke="#4a5563" stroke-width="0.8">{why}</path>'
                    )
                else:  # a hollow circle: it did not run (upstream, condition)
                    parts.append(
                        f'<circle class="skip not-run" data-reason="{_e(attempt.reason or "")}" '
                        f'cx="{x:.1f}" cy="{y + 11}" r="5.5" fill="#ffffff" stroke="{colour}" '
                        f'stroke-width="2">{why}</circle>'
                    )
                continue
            x1 = x_of(attempt.started)
            x2 = max(x_of(attempt.ended), x1 + 2.0)
            if attempt.waited_since is not None and attempt.waited_since < attempt.started:
                # hatched: the time it waited for a pool, a rate or a limit before it started
                x0 = x_of(attempt.waited_since)
                waited = attempt.started - attempt.waited_since
                parts.append(
                    f'<rect class="wait" data-task-id="{_e(attempt.task_id)}" '
                    f'x="{x0:.1f}" y="{y + 5}" width="{max(x1 - x0, 1.0):.1f}" '
                    f'height="{row_height - 10}" fill="url(#waiting)" stroke="#9aa4b1" '
                    f'stroke-width="0.5"><title>{_e(name)} waited {_e(_seconds(waited))} for '
                    f"{_e(attempt.waited_for or 'a slot')}</title></rect>"
                )
            what = f"{name}, attempt {attempt.attempt}: {state}, {_seconds(attempt.duration)}"
            if attempt.error:
                what += f"\n{attempt.error}"
            parts.append(
                f'<rect class="bar" data-task-id="{_e(attempt.task_id)}" '
                f'data-attempt="{attempt.attempt}" data-status="{_e(state)}" '
                f'x="{x1:.1f}" y="{y + 3}" width="{x2 - x1:.1f}" height="{row_height - 6}" '
                f'rx="2" fill="{colour}" stroke="#4a5563" stroke-width="0.6">'
                f"<title>{_e(what)}</title></rect>"
            )
            bars += 1
        parts.append("</g>")
    for index, node in enumerate(idle, len(rows)):
        y = 24 + index * row_height
        parts.append(
            f'<g class="row not-run" data-task-id="{_e(node.task_id)}">'
            f'<text class="label" x="{label_width - 8}" y="{y + 14}" text-anchor="end" '
            f'fill="#5b6675">{_e(node.task_name)}</text>'
            f'<text x="{label_width + 6}" y="{y + 14}" fill="#8a94a3">did not run</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts), note, bars


# -- the page ------------------------------------------------------------------------------------


def _legend(states: Sequence[str]) -> str:
    items = "".join(f'<span><i style="background:{COLOURS[s]}"></i>{_e(s)}</span>' for s in states)
    return f'<p class="legend">{items}</p>'


def _both_times(moment: float) -> str:
    """Local time with its offset, and UTC beside it."""
    utc = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
    return f"{iso_time(moment)}  ({utc} UTC)"


def _error_block(attempt: RecordedAttempt) -> str:
    """One failed attempt: its error as the summary of a block that opens on its traceback
    and the lines it logged."""
    who = attempt.call_name or attempt.task_name
    outcome = "retried" if attempt.will_retry else "fell back" if attempt.fell_back else "failed"
    summary = f"{who} ({attempt.task_id}), attempt {attempt.attempt}, {outcome}: {attempt.error}"
    body = (
        f"<pre class='traceback'>{_e(attempt.traceback)}</pre>"
        if attempt.traceback
        else '<p class="note">No traceback was recorded for this attempt.</p>'
    )
    if attempt.logs:
        lines = "".join(
            f"<tr><td>{_e(time.strftime('%H:%M:%S', time.localtime(line.time)))}</td>"
            f"<td>{_e(line.level)}</td><td>{_e(line.logger)}</td>"
            f"<td><pre>{_e(line.message)}</pre></td></tr>"
            if line.time
            else f"<tr><td></td><td>{_e(line.level)}</td><td>{_e(line.logger)}</td>"
            f"<td><pre>{_e(line.message)}</pre></td></tr>"
            for line in attempt.logs
        )
        body += (
            '<table class="logs"><tr><th>Time</th><th>Level</th><th>Logger</th>'
            f"<th>Message</th></tr>{lines}</table>"
        )
    kind = "error retried" if attempt.will_retry else "error"
    return (
        f'<details class="{kind}" data-task-id="{_e(attempt.task_id)}" '
        f'data-attempt="{attempt.attempt}"><summary>{_e(summary)}</summary>{body}</details>'
    )


def render_report(store: RunStore, run_id: str) -> str:
    """The report of run ``run_id`` (or a unique prefix) in ``store``, as HTML text."""
    run = get_run(store, run_id)
    attempts = store.attempts(run.run_id)
    summaries = summarize_tasks(attempts)
    nodes = store.graph(run.run_id)
    graph, graph_note = _graph_svg(nodes, summaries)
    ran = {s.task_id.split("[", 1)[0] for s in summaries}
    idle = [n for n in nodes if n.kind != "param" and n.task_id not in ran]
    timeline, timeline_note, bars = _timeline_svg(run, summaries, idle)
    colour = COLOURS.get(run.status, "#5b6675")
    title = f"Cascade run {run.run_id[:8]}: {run.label or run.target}"
    facts = [
        ("Run id", run.run_id),
        ("Target", run.target + (f"  (asked for as {run.label})" if run.label else "")),
        ("Status", run.status),
        ("Started", _both_times(run.started)),
        ("Ended", _both_times(run.ended) if run.ended is not None else "-"),
        ("Duration", _seconds(run.duration)),
        ("Tasks", ", ".join(f"{n} {s}" for s, n in sorted(run.tasks.items())) or "none"),
        ("Attempts", str(bars)),
        ("Host / pid", f"{run.host} / {run.pid}"),
        ("Cascade", run.cascade_version),
    ]
    if run.trace_id:
        facts.append(("Trace id", run.trace_id))
    if run.resumed_from:
        facts.append(("Resumed from", run.resumed_from))
    failures = [s for s in summaries if s.status == FAILED]
    if failures:  # the real failures, not "RunFailed: 2 task(s) failed"
        listed = [f"{_name(s)}: {s.error}" for s in failures[:5]]
        if len(failures) > 5:
            listed.append(f"... and {len(failures) - 5} more (see Errors)")
        facts.append(("Failures" if len(failures) > 1 else "Failure", "\n".join(listed)))
    elif run.error:
        facts.append(("Error", run.error))
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td><pre>{_e(v)}</pre></td></tr>"
        if k.startswith(("Failure", "Error"))
        else f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
        for k, v in facts
    )
    if run.params:
        params = "".join(
            f"<tr><td>{_e(name)}</td><td><pre>{_e(_param_text(value))}</pre></td></tr>"
            for name, value in sorted(run.params.items())
        )
        params_html = f"<table><tr><th>Param</th><th>Value</th></tr>{params}</table>"
    else:
        params_html = '<p class="note">This run took no params.</p>'
    failed = [a for a in attempts if a.error]
    if failed:
        errors_html = "".join(_error_block(a) for a in failed[:MAX_TIMELINE_ROWS])
        if len(failed) > MAX_TIMELINE_ROWS:
            errors_html += (
                f'<p class="note">{len(failed)} attempts failed; the first '
                f"{MAX_TIMELINE_ROWS} are shown.</p>"
            )
    else:
        errors_html = '<p class="note">No task raised.</p>'
    task_rows = "".join(
        f"<tr><td>{_e(_name(s))}</td><td>{_e(s.task_id)}</td>"
        f"<td>{_e(_summary_state(s))}</td><td class='num'>{s.attempts}</td>"
        f"<td class='num'>{_e(_seconds(s.duration))}</td><td>{_e(s.executor or '-')}</td>"
        f"<td><pre>{_e(s.error or s.reason or '')}</pre></td><td>{_e(s.why_ran or '')}</td></tr>"
        for s in summaries[:MAX_TIMELINE_ROWS]
    )
    task_rows += "".join(  # the tasks of the graph that never ran, so none goes missing
        f'<tr class="not-run"><td>{_e(n.task_name)}</td><td>{_e(n.task_id)}</td>'
        f"<td>{NOT_RUN}</td><td class='num'>0</td><td class='num'>-</td><td>-</td>"
        "<td>did not run</td><td></td></tr>"
        for n in idle[: max(MAX_TIMELINE_ROWS - len(summaries), 0)]
    )
    legend = _legend(
        [SUCCEEDED, FAILED, RETRIED, "Cancelled", CHECKPOINT, "CacheHit", SKIPPED, NOT_RUN]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p><span class="status" style="background:{colour}">{_e(run.status)}</span></p>
<table class="facts">{rows}</table>
<h2>Params</h2>
{params_html}
<h2>Graph</h2>
{legend}
<p class="note">{_e(graph_note)}</p>
<div class="scroll">{graph}</div>
<h2>Timeline</h2>
<p class="note">One row per task, one bar per attempt, from its start to its end.
{_e(timeline_note)}</p>
<div class="scroll">{timeline}</div>
<h2>Errors</h2>
{errors_html}
<h2>Tasks</h2>
<table><tr><th>Task</th><th>Task id</th><th>Status</th><th>Attempts</th><th>Duration</th>
<th>Executor</th><th>Error or reason</th><th>Why it ran</th></tr>{task_rows}</table>
</body>
</html>
"""


def write_report(store: RunStore, run_id: str, path: str | os.PathLike[str]) -> str:
    """Write the report of ``run_id`` to ``path``; returns the full run id."""
    text = render_report(store, run_id)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return get_run(store, run_id).run_id


__all__ = ["MAX_GRAPH_NODES", "MAX_TIMELINE_ROWS", "render_report", "write_report"]
