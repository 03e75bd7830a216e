"""The HTML report of one recorded run: a single self-contained file (inline CSS and SVG, no
script, no network) with the run's facts and params, its graph coloured by task status, a
timeline with one row per task and one bar per attempt (retries and failures visible), and the
errors.

Every bar is an SVG ``rect`` of class ``bar`` carrying ``data-task-id`` and ``data-attempt``;
graph nodes are ``g`` elements of class ``node`` with ``data-status``. Big runs are cut to the
first ``MAX_GRAPH_NODES`` nodes and ``MAX_TIMELINE_ROWS`` rows, and the page says so.
"""

from __future__ import annotations

import html
import json
import os
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
pre { white-space: pre-wrap; margin: 0; font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
"""


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
    for summary in summaries:  # tasks a task's returned graph added while the run ran
        base = summary.task_id.split("[", 1)[0]
        if base in known:
            continue
        known.add(base)
        parent = summary.parent_task_id
        deps = (parent.split("[", 1)[0],) if parent else ()
        extra.append(GraphNode(base, summary.task_name, "task", deps))
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
    width, height, gap_x, gap_y = 170, 34, 60, 16
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
        label = node.task_name + (" [map]" if node.kind == "map" else "")
        shown = label if len(label) <= 22 else label[:21] + "…"
        count = len(units.get(node.task_id, []))
        detail = f"{label}: {status}" + (f" ({count} items)" if node.kind == "map" else "")
        radius = 17 if node.kind == "param" else 5
        parts.append(
            f'<g class="node" data-task-id="{_e(node.task_id)}" data-status="{_e(status)}">'
            f"<title>{_e(detail)}</title>"
            f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="{radius}" '
            f'fill="{fill}" stroke="#4a5563" stroke-width="1"/>'
            f'<text x="{x + width // 2}" y="{y + height // 2 + 4}" text-anchor="middle" '
            f'fill="{text_colour}">{_e(shown)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts), note


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
    ]
    for tick in range(6):
        x = label_width + plot_width * tick / 5
        parts.append(
            f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 8}" stroke="#e6e9ee"/>'
            f'<text x="{x:.1f}" y="14" text-anchor="middle" fill="#5b6675">'
            f"{_e(_seconds(span * tick / 5))}</text>"
        )
    bars = 0
    for index, summary in enumerate(rows):
        y = 24 + index * row_height
        name = summary.task_name
        if "[" in summary.task_id:
            name += summary.task_id[summary.task_id.index("[") :]
        shown = name if len(name) <= 32 else name[:31] + "…"
        parts.append(
            f'<g class="row" data-task-id="{_e(summary.task_id)}">'
            f'<text class="label" x="{label_width - 8}" y="{y + 14}" text-anchor="end">'
            f"{_e(shown)}</text>"
        )
        for attempt in summary.history:
            state = _attempt_state(attempt)
            colour = COLOURS.get(state, "#cfd4da")
            if attempt.status == SKIPPED:
                x = x_of(attempt.started)
                parts.append(
                    f'<path class="skip" d="M{x:.1f},{y + 4} l6,7 l-6,7 l-6,-7 z" '
                    f'fill="{colour}" stroke="#4a5563" stroke-width="0.8">'
                    f"<title>{_e(name)}: skipped ({_e(attempt.reason or '')})</title></path>"
                )
                continue
            x1 = x_of(attempt.started)
            x2 = max(x_of(attempt.ended), x1 + 2.0)
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
        ("Started", iso_time(run.started)),
        ("Ended", iso_time(run.ended) if run.ended is not None else "-"),
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
    if run.error:
        facts.append(("Error", run.error))
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts)
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
        error_rows = "".join(
            f"<tr><td>{_e(a.task_name)}</td><td>{_e(a.task_id)}</td>"
            f'<td class="num">{a.attempt}</td>'
            f"<td>{_e(RETRIED if a.will_retry else a.status)}</td>"
            f"<td><pre>{_e(a.error)}</pre></td></tr>"
            for a in failed
        )
        errors_html = (
            "<table><tr><th>Task</th><th>Task id</th><th>Attempt</th><th>Outcome</th>"
            f"<th>Error</th></tr>{error_rows}</table>"
        )
    else:
        errors_html = '<p class="note">No task raised.</p>'
    task_rows = "".join(
        f"<tr><td>{_e(s.task_name)}</td><td>{_e(s.task_id)}</td>"
        f"<td>{_e(_summary_state(s))}</td><td class='num'>{s.attempts}</td>"
        f"<td class='num'>{_e(_seconds(s.duration))}</td><td>{_e(s.executor or '-')}</td>"
        f"<td>{_e(s.error or '')}</td></tr>"
        for s in summaries[:MAX_TIMELINE_ROWS]
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
<th>Executor</th><th>Error</th></tr>{task_rows}</table>
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
