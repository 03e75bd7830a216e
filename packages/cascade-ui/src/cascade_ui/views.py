"""What the pages show, as JSON-ready data computed from the run store's public records.

A run's record holds its graph (the nodes it started with) and every finished attempt. The page
aggregates them by task: each graph node is a *group* (a plain task, or a map with one unit per
item), and the tasks a task's returned graph added are grouped by their parent and name (a
dynamic group), so a 100,000-item map is one node with counts, not 100,000 nodes, and one row of
the page's task table (by task) until it is opened. The table's tasks (units) come a page at a
time; the timeline stays per attempt, but travels as columns of numbers.

While a run goes on, the record has only the attempts that finished: a group without all its
units finished is ``Running`` when every group it waits for is done, else ``Pending``.

Fields the record may not have (tracebacks, logs, rerun reasons, run names: newer stores keep
them) are read when present and left out otherwise.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from cascade.records import (
    CHECKPOINT,
    FAILED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    GraphNode,
    RecordedAttempt,
    RecordedRun,
    TaskSummary,
    iso_time,
    summarize_tasks,
)

_T = TypeVar("_T")

#: What a group, unit or attempt can show as, in the order of the legend. ``Retried`` is a
#: failed attempt that was tried again; ``Pending`` and ``NotRun`` are groups without units.
RETRIED = "Retried"
PENDING = "Pending"
NOT_RUN = "NotRun"
CACHE_HIT = "CacheHit"
STATES = [
    SUCCEEDED,
    FAILED,
    RETRIED,
    "Cancelled",
    RUNNING,
    PENDING,
    CHECKPOINT,
    CACHE_HIT,
    SKIPPED,
    NOT_RUN,
    "Crashed",
]
STATE_INDEX = {state: index for index, state in enumerate(STATES)}
#: Attempt statuses that are their own state (a failure may be Retried, a skip a Checkpoint).
_PLAIN_STATES = frozenset([SUCCEEDED, "Cancelled"])
#: The columns of a run's timeline, and those the page draws from.
TIMELINE_FIELDS = ("group", "start_us", "duration_us", "state", "attempt", "suffix")
DRAWN = ("group", "start_us", "duration_us", "state")
#: The worst state a group's units are in decides its colour, in this order.
_WORST_FIRST = [FAILED, "Cancelled", "Crashed", RUNNING, RETRIED, PENDING, NOT_RUN]
#: Failures listed on a run's page (the rest are counted, and in the task table).
MAX_FAILURES = 200
#: The optional fields of an attempt shown with its failure, when the store keeps them (newer
#: stores do): its traceback, its log lines, why it ran on a resume, the call's run name.
_ATTEMPT_EXTRAS = ("traceback", "logs", "why_ran", "call_name")


def unit_state(summary: TaskSummary) -> str:
    """What one task (or map item) shows as: its last status, a skip told apart by reason."""
    if summary.status == SKIPPED:
        return summary.reason if summary.reason in (CHECKPOINT, CACHE_HIT) else SKIPPED
    return summary.status


def attempt_state(attempt: RecordedAttempt) -> str:
    if attempt.status == FAILED and attempt.will_retry:
        return RETRIED
    if attempt.status == SKIPPED:
        return attempt.reason if attempt.reason in (CHECKPOINT, CACHE_HIT) else SKIPPED
    return attempt.status


def _worst(states: Mapping[str, int]) -> str:
    for state in _WORST_FIRST:
        if states.get(state):
            return state
    present = {s for s, n in states.items() if n}
    if not present:
        return NOT_RUN
    if present <= {CHECKPOINT}:
        return CHECKPOINT
    if present <= {CACHE_HIT, CHECKPOINT}:
        return CACHE_HIT
    if present == {SKIPPED}:
        return SKIPPED
    return SUCCEEDED


def _base(task_id: str) -> str:
    """A map item's task id without its ``[index]``: the id of its map's node."""
    cut = task_id.find("[")
    return task_id if cut < 0 else task_id[:cut]


def run_name(run: RecordedRun) -> str | None:
    """The run's name, when the store keeps one."""
    name = getattr(run, "name", None)
    return name if isinstance(name, str) and name else None


def run_summary(run: RecordedRun) -> dict[str, Any]:
    """One run as the runs list shows it (and ``/api/runs`` returns it)."""
    data = run.to_dict()
    data["short_id"] = run.run_id[:8]
    data["name"] = run_name(run)
    data["tasks"] = dict(run.tasks)
    data["task_total"] = sum(run.tasks.values())
    return data


@dataclass
class Group:
    """One node of the page's graph: a task of the graph, a map (its items as units), or the
    tasks one task's returned graph added under one name."""

    group_id: str
    name: str
    kind: str  # "task", "map", "stream" (a generator task's call), "param" or "dynamic"
    deps: tuple[str, ...]
    dashed: bool = False  # added while the run ran (the edge from its parent is dashed)
    units: int = 0
    states: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    duration: float = 0.0
    started: float | None = None
    ended: float | None = None
    status: str = NOT_RUN

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.group_id,
            "name": self.name,
            "kind": self.kind,
            "deps": list(self.deps),
            "dynamic": self.dashed,
            "units": self.units,
            "states": self.states,
            "attempts": self.attempts,
            "duration": round(self.duration, 6),
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
        }


class Units(NamedTuple):
    """A run's units (tasks and map items) as columns, in the order their last attempts were
    recorded: task ids, states, groups (indexes into the view's groups), the positions of
    their last attempts in the view's attempts, and when they (first) started."""

    ids: list[str]
    states: list[str]
    groups: list[int]
    lasts: list[int]
    starts: list[float]


@dataclass
class RunView:
    """Everything one run's page shows, computed once per change of its record.

    Units (tasks and map items) are kept as columns (``Units``); the task table lists them in
    the order they started, sorted when a table page is first asked for (the page's first
    view, by task, needs only the groups). A table page sums up only its own rows
    (``summarize_tasks``), so a 100,000-task run costs one pass.
    """

    run: RecordedRun
    groups: list[Group]
    attempts: list[RecordedAttempt]
    units: Units
    several: dict[str, list[int]]  # the positions of the attempts of units with several
    attempt_groups: list[int]
    _document: dict[str, Any] | None = None
    #: Responses made from this view, serialized once (a finished run's view never changes).
    responses: dict[str, bytes] = field(default_factory=dict)

    @functools.cached_property
    def _by_start(self) -> Units:
        order = sorted(range(len(self.units.ids)), key=self.units.starts.__getitem__)
        return Units(*(_reorder(column, order) for column in self.units))

    @property
    def unit_ids(self) -> list[str]:
        """The units' task ids, in the order they started."""
        return self._by_start.ids

    @property
    def unit_states(self) -> list[str]:
        return self._by_start.states

    @property
    def unit_groups(self) -> list[int]:
        return self._by_start.groups

    @property
    def unit_lasts(self) -> list[int]:
        return self._by_start.lasts

    def document(self) -> dict[str, Any]:
        """The run's page data: facts, groups (the graph), counts and failures; what
        ``/api/runs/{id}`` returns and the live stream sends (made once per view)."""
        if self._document is not None:
            return self._document
        states = dict(Counter(self.units.states))
        failures = []
        if FAILED in map(itemgetter(2), self.attempts):
            failures = [a for a in self.attempts if a.status == FAILED]
        data = run_summary(self.run)
        data.update(
            {
                "groups": [g.to_dict() for g in self.groups],
                "unit_states": states,
                "unit_total": len(self.units.ids),
                "attempt_total": len(self.attempts),
                "failure_total": len(failures),
                "failures": [failure_dict(a) for a in failures[:MAX_FAILURES]],
                "states": STATES,
            }
        )
        self._document = data
        return data

    def tasks(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        group: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """One page of the task table: units (tasks and map items) in the order they
        started, then the tasks that have not run (yet), filtered by state, by a part of their
        name or task id, or by group (a graph node's id)."""
        wanted_group = None
        if group is not None:
            wanted_group = next((i for i, g in enumerate(self.groups) if g.group_id == group), -1)
        needle = name.lower() if name else None
        groups = self.groups
        chosen: list[int] = []
        total = 0
        if wanted_group is None and not status and not needle:  # every unit: a slice
            total = len(self.units.ids)
            chosen = list(range(min(offset, total), min(offset + limit, total)))
        else:
            for index, task_id in enumerate(self.unit_ids):
                if wanted_group is not None and self.unit_groups[index] != wanted_group:
                    continue
                if status and self.unit_states[index] != status:
                    continue
                if needle:
                    task_name = groups[self.unit_groups[index]].name
                    if needle not in task_name.lower() and needle not in task_id.lower():
                        continue
                if offset <= total < offset + limit:
                    chosen.append(index)
                total += 1
        rows = []
        for index in chosen:
            positions = self.several.get(self.unit_ids[index], [self.unit_lasts[index]])
            (summary,) = summarize_tasks([self.attempts[i] for i in positions])
            rows.append(unit_dict(summary, groups[self.unit_groups[index]].group_id))
        # Then the tasks that have not run (yet): one row per graph node without units.
        for index, grp in enumerate(groups):
            if grp.units or grp.kind == "param":
                continue
            if wanted_group is not None and index != wanted_group:
                continue
            if status and grp.status != status:
                continue
            if needle and needle not in grp.name.lower() and needle not in grp.group_id.lower():
                continue
            if offset <= total < offset + limit:
                rows.append(
                    {
                        "task_id": grp.group_id,
                        "task": grp.name,
                        "state": grp.status,
                        "status": grp.status,
                        "attempts": 0,
                        "duration": 0.0,
                        "started": None,
                        "ended": None,
                        "executor": None,
                        "skip_reason": None,
                        "error": None,
                        "parent_task_id": None,
                        "group": grp.group_id,
                    }
                )
            total += 1
        return {"total": total, "offset": offset, "limit": limit, "tasks": rows}

    def timeline(self, after: int = 0, fields: Sequence[str] = DRAWN) -> dict[str, Any]:
        """Every attempt from the ``after``-th on, as columns (``fields``, a choice of
        ``TIMELINE_FIELDS``): ``group``, its group's index; ``start_us`` and ``duration_us``,
        microseconds from the run's start; ``state``, its state's index in ``states``;
        ``attempt``, its number; ``suffix``, what its task id adds to its group's id (a map
        item's ``[index]``, nothing for a plain task, the whole id for a task a graph added).
        A 100,000-attempt run is a few arrays of numbers, drawn on a canvas; the page asks for
        the last two only when a bar is hovered."""
        unknown = [f for f in fields if f not in TIMELINE_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown timeline field(s) {', '.join(unknown)}; "
                f"the fields are {', '.join(TIMELINE_FIELDS)}"
            )
        begin = self.run.started
        chosen = self.attempts[after:]
        attempt_groups = self.attempt_groups[after:]
        data: dict[str, Any] = {"after": after, "total": len(self.attempts), "states": STATES}
        if "group" in fields:
            data["group"] = attempt_groups
        if "start_us" in fields or "duration_us" in fields:
            # Column by column, in C where it can be: a 100,000-attempt run's timeline is a
            # few passes, not a Python step per attempt and field.
            starts = list(map(itemgetter(4), chosen))
            if 0.0 in starts:  # an attempt without a start time shows from the run's start
                starts = [s or begin for s in starts]
            if "start_us" in fields:
                data["start_us"] = [int((s - begin) * 1e6) for s in starts]
            if "duration_us" in fields:
                data["duration_us"] = [
                    int((e - s) * 1e6) if e > s else 0
                    for s, e in zip(starts, map(itemgetter(5), chosen), strict=True)
                ]
        if "state" in fields:
            statuses = list(map(itemgetter(2), chosen))
            if _PLAIN_STATES.issuperset(statuses):
                data["state"] = list(map(STATE_INDEX.__getitem__, statuses))
            else:
                index = STATE_INDEX
                data["state"] = [
                    index[a.status] if a.status in _PLAIN_STATES else index[attempt_state(a)]
                    for a in chosen
                ]
        if "attempt" in fields:
            data["attempt"] = [a.attempt for a in chosen]
        if "suffix" in fields:
            ids = [self.groups[g].group_id for g in attempt_groups]
            data["suffix"] = [
                task_id[len(base) :] if task_id.startswith(base) else task_id
                for task_id, base in zip(map(itemgetter(0), chosen), ids, strict=True)
            ]
        return data


def unit_dict(unit: TaskSummary, group_id: str) -> dict[str, Any]:
    data = unit.to_dict()
    data["state"] = unit_state(unit)
    data["group"] = group_id
    data["started_at"] = iso_time(unit.started) if unit.started else None
    last = unit.history[-1] if unit.history else None
    if last is not None:
        for extra in ("why_ran", "call_name"):
            value = getattr(last, extra, None)
            if value:
                data[extra] = value
    return data


def failure_dict(attempt: RecordedAttempt) -> dict[str, Any]:
    """A failed attempt with its error, and its traceback and logs when the store keeps
    them."""
    data = {
        "task_id": attempt.task_id,
        "task": attempt.task_name,
        "attempt": attempt.attempt,
        "state": attempt_state(attempt),
        "error": attempt.error,
        "error_type": attempt.error_type,
        "upstream": attempt.upstream,
        "ended_at": iso_time(attempt.ended) if attempt.ended else None,
    }
    for extra in _ATTEMPT_EXTRAS:
        value = getattr(attempt, extra, None)
        if value:
            data[extra] = _plain(value)
    return data


def _plain(value: Any) -> Any:
    """A value as JSON carries it: lists, dicts, strings, numbers (log lines may be named
    tuples with a ``to_dict``, or other objects: shown as their text)."""
    if isinstance(value, (list, tuple)):
        value = [item.to_dict() if hasattr(item, "to_dict") else item for item in value]
    elif hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=str))


def build_view(
    run: RecordedRun, nodes: Sequence[GraphNode], attempts: list[RecordedAttempt]
) -> RunView:
    """Aggregate a run's record by task (see the module docstring). Column by column: a
    100,000-task run takes a few passes that run mostly in C, not a Python step per field."""
    count = len(attempts)
    ids = list(map(itemgetter(0), attempts))
    last_of = dict(zip(ids, range(count), strict=True))  # each task's last attempt (later ones win)
    unit_ids = list(last_of)
    lasts = list(last_of.values())
    # Tasks with more than one attempt (retries, a skip after a failure) are the few.
    several: dict[str, list[int]] = {}
    if len(last_of) != count:
        repeated = {task_id for task_id, n in Counter(ids).items() if n > 1}
        for position, task_id in enumerate(ids):
            if task_id in repeated:
                several.setdefault(task_id, []).append(position)
    groups: list[Group] = []
    by_id: dict[str, int] = {}
    for node in nodes:
        by_id[node.task_id] = len(groups)
        groups.append(Group(node.task_id, node.task_name, node.kind, tuple(node.deps)))
    # A map item's id is its map's id and "[index]": what precedes the "[" names its group.
    bases = list(map(itemgetter(0), map(str.partition, unit_ids, repeat("["))))
    # Each distinct base once (a 100,000-item map is one), at its first unit's attempt.
    first_of = dict(zip(reversed(bases), reversed(lasts), strict=True))
    group_of_base: dict[str, int] = {}
    for base in dict.fromkeys(bases):
        index = by_id.get(base)
        if index is None:  # added by a task's returned graph: grouped by parent and name
            first = attempts[first_of[base]]
            parent = _base(first.parent_task_id) if first.parent_task_id else ""
            key = f"{parent}/{first.task_name}" if parent else base
            index = by_id.get(key)
            if index is None:
                index = by_id[key] = len(groups)
                deps = (parent,) if parent in by_id else ()
                groups.append(
                    Group(key, first.task_name, "dynamic" if parent else "task", deps, bool(parent))
                )
        group_of_base[base] = index
    unit_groups = list(map(group_of_base.__getitem__, bases))
    # Usually every task ran once: then the units are the attempts, in the same order.
    last_attempts = [attempts[p] for p in lasts] if several else attempts
    statuses = list(map(itemgetter(2), last_attempts))
    unit_states = list(statuses)
    durations = list(map(itemgetter(6), last_attempts))
    ran = [1] * len(statuses)
    if SKIPPED in statuses:
        for i, attempt in enumerate(last_attempts):
            if attempt.status == SKIPPED:
                reason = attempt.reason
                unit_states[i] = reason if reason in (CHECKPOINT, CACHE_HIT) else SKIPPED
                durations[i] = 0.0
                ran[i] = 0
    starts = list(map(itemgetter(4), last_attempts))
    ends = list(map(itemgetter(5), last_attempts))
    if several:
        attempt_groups = [0] * count
        for group_index, position in zip(unit_groups, lasts, strict=True):
            attempt_groups[position] = group_index
        unit_index = {task_id: i for i, task_id in enumerate(unit_ids) if task_id in several}
        for task_id, positions in several.items():
            i = unit_index[task_id]
            history = [attempts[p] for p in positions]
            ran_here = [a for a in history if a.status != SKIPPED]
            ran[i] = len(ran_here)
            durations[i] = sum(a.duration for a in ran_here)
            starts[i] = min(a.started for a in history)
            ends[i] = max(a.ended for a in history)
            for position in positions:
                attempt_groups[position] = unit_groups[i]
    else:
        attempt_groups = list(unit_groups)
    for (group_index, state), n in Counter(zip(unit_groups, unit_states, strict=True)).items():
        groups[group_index].states[state] = n
    _add_up(groups, unit_groups, ran, durations, starts, ends)
    _settle(run, groups)
    units = Units(unit_ids, unit_states, unit_groups, lasts, starts)
    return RunView(run, groups, attempts, units, several, attempt_groups)


def _reorder(column: list[_T], order: list[int]) -> list[_T]:
    """``column``'s items at the positions ``order`` lists, in C."""
    if len(order) < 2:
        return [column[i] for i in order]
    return list(itemgetter(*order)(column))


def _add_up(
    groups: list[Group],
    unit_groups: list[int],
    ran: list[int],
    durations: list[float],
    starts: list[float],
    ends: list[float],
) -> None:
    """Each group's units, attempts, duration and time span from its units' columns. The
    units are sorted by group (in C), then each group's slice of every column is summed at
    once: a group of 100,000 map items costs a few C calls, not a Python step per item."""
    sizes = Counter(unit_groups)
    members = sorted(range(len(unit_groups)), key=unit_groups.__getitem__)
    at = 0
    for group_index in sorted(sizes):
        size = sizes[group_index]
        chosen = members[at : at + size]
        at += size
        group = groups[group_index]
        group.units = size
        group.attempts = sum(_reorder(ran, chosen))
        group.duration = sum(_reorder(durations, chosen))
        group.started = min(_reorder(starts, chosen))
        group.ended = max(_reorder(ends, chosen))


def _settle(run: RecordedRun, groups: list[Group]) -> None:
    """Each group's status: its worst unit's; while the run goes on, a group that may still
    get units is Running (what it waits for is done) or Pending."""
    live = run.status == RUNNING
    index = {g.group_id: i for i, g in enumerate(groups)}
    dependents: dict[str, list[Group]] = {}
    for group in groups:
        for dep in group.deps:
            dependents.setdefault(dep, []).append(group)
    # A map may get more items until something downstream of it has all of them: a task that
    # takes its list (or folds it), or a map over it that is itself complete (maps over maps
    # run item by item, docs/streams.md). Found from the last group back.
    done_maps: set[str] = set()
    for group in reversed(groups):
        if group.kind == "map" and any(
            d.units and (d.kind != "map" or d.group_id in done_maps)
            for d in dependents.get(group.group_id, [])
        ):
            done_maps.add(group.group_id)
    for group in groups:  # recorded in topological order; added groups follow their parents
        if group.kind == "param":
            group.status = "Param"
            continue
        status = _worst(group.states)
        if live and status not in (FAILED, "Cancelled"):
            complete = group.units > 0 and (group.kind != "map" or group.group_id in done_maps)
            if not complete:
                ready = all(
                    groups[index[d]].status not in (RUNNING, PENDING)
                    for d in group.deps
                    if d in index
                )
                status = RUNNING if ready or group.units else PENDING
        group.status = status


__all__ = [
    "RETRIED",
    "STATES",
    "Group",
    "RunView",
    "Units",
    "attempt_state",
    "build_view",
    "failure_dict",
    "run_summary",
    "unit_state",
]
