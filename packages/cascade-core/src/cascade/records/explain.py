"""Why a task ran again in a run that resumed another: the answer to "why did the resume redo
everything?", recorded with the task and shown by ``cascade runs show`` and the report.

``PreviousRun`` reads what the resumed run knew of each task: how it ended, whether its
result was checkpointed (and if not, why), and the parts of its tasks' checkpoint keys that
do not depend on a call's inputs (``key_parts``: the code fingerprint, and a digest of each
global or captured value the code reads), which every recorded run stores once per task.
``PreviousRun.why`` compares them with this run's when a task misses its checkpoint:

- it failed, was cancelled, or did not run there (and why not);
- its result was not checkpointed there (not picklable, too big, turned off for the task);
- its code changed, or a global it reads (named) changed;
- one of its inputs changed: a param (named, with both values), the result of a task that
  ran again in this run (named), or a value given in the code (named when there is one);
- its checkpoint is gone from the cache directory (pruned or cleared).

Inputs are explained by where they come from rather than by a digest per input, so a
recorded run hashes its inputs once, as the key needs, and no more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade.caching.inputs import named_inputs, outside_changes, outside_parts, task_identity
from cascade.caching.miss import global_changed, input_sources, param_name
from cascade.graph.build import KIND_PARAM, Graph, Node
from cascade.records.model import (
    CANCELLED,
    CHECKPOINT,
    FAILED,
    NOTE_UNSAVED,
    SKIPPED,
    Checkpoint,
    RecordedRun,
    RunStore,
    param_record,
)
from cascade.records.retention import PRUNED_NOTE
from cascade.spec.cache_policy import CacheContext

#: The kind of the task notes that hold a task's key parts (keyed by task name).
NOTE_KEY = "key"

_SKIPS = {
    "UpstreamFailed": "an upstream task failed",
    "UpstreamSkipped": "an upstream task was skipped",
    "ConditionFalse": "its condition was false",
}


def key_parts(task: Any) -> dict[str, Any]:
    """The parts of ``task``'s checkpoint keys that every call shares: a digest of its code
    identity (name, qualified name, source fingerprint) and one of each value its code reads
    from outside its arguments, by name."""
    identity = task_identity(task, None).encode("utf-8", "surrogatepass")
    return {"code": hashlib.sha256(identity).hexdigest()[:16], "outside": outside_parts(task)}


@dataclass(frozen=True)
class Explanation:
    """Why a task of a resume will run again, said before it runs (``reason``), or ``None``:
    it takes its checkpoint unless one of its inputs turns out to differ. ``cached``: the
    task has its own cache (``cache=``), which a resume consults instead of a checkpoint
    (``reason`` is then ``None``: its cache decides when the call comes)."""

    task_id: str
    task_name: str
    reason: str | None
    cached: bool = False


@dataclass
class PreviousRun:
    """What the resumed run knew of its tasks (see the module docstring)."""

    run_id: str
    statuses: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    checkpointed: set[str] = field(default_factory=set)
    unsaved: dict[str, str] = field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    graph: Graph | None = None
    #: Whether retention dropped the run's checkpoints (``cascade.records.retention``).
    pruned: bool = False
    _nodes: dict[str, Node] = field(default_factory=dict)
    _by_name: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: The task ids of the resumed run's graph, in order (``RunStore.graph``).
    previous_ids: list[str] = field(default_factory=list)
    _by_place: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(
        cls, store: RunStore, run: RecordedRun, checkpoints: Sequence[Checkpoint], graph: Graph
    ) -> PreviousRun:
        statuses: dict[str, tuple[str, str | None, bool]] = {}
        for attempt in store.attempts(run.run_id):
            statuses[attempt.task_id] = (attempt.status, attempt.reason, attempt.fell_back)
        notes = getattr(store, "notes", None)  # the SQLite store keeps notes; others may not
        unsaved: dict[str, str] = notes(run.run_id, NOTE_UNSAVED) if notes else {}
        parts: dict[str, dict[str, Any]] = {}
        if notes:
            for name, text in notes(run.run_id, NOTE_KEY).items():
                try:
                    parts[name] = json.loads(text)
                except ValueError:
                    pass
        pruned = bool(notes and notes(run.run_id, PRUNED_NOTE))
        previous = cls(
            run.run_id,
            statuses,
            {c.task_id for c in checkpoints},
            unsaved,
            parts,
            dict(run.params),
            graph,
            pruned,
        )
        previous.previous_ids = [node.task_id for node in store.graph(run.run_id)]
        return previous

    def why(self, context: CacheContext, restored: set[str]) -> str:
        """Why the call of ``context`` runs although the resumed run had it: one sentence.
        ``restored``: task ids this run took from a checkpoint (so did not run)."""
        task_id = self._same_task(context.task_id, context.task_name)
        return (
            self._before(task_id)
            or self._changed(context, restored)
            or (f"its checkpoint from run {self.run_id[:8]} is gone (pruned or cleared)")
        )

    def _before(self, task_id: str) -> str | None:
        """Why the task ran again that the resumed run alone tells (how it ended there, or
        that its result was not checkpointed); ``None`` when it was checkpointed there."""
        run = self.run_id[:8]
        known = self.statuses.get(task_id)
        if known is None:
            return f"it did not run in run {run}"
        status, reason, fell_back = known
        if status == FAILED:
            if fell_back:
                return f"it failed in run {run} and took its fallback (never checkpointed)"
            return f"it failed in run {run}"
        if status == CANCELLED:
            return f"it was cancelled in run {run}"
        if status == SKIPPED and reason not in ("CacheHit", CHECKPOINT):
            return f"it did not run in run {run}: {_SKIPS.get(reason or '', reason)}"
        if task_id not in self.checkpointed:
            if self.pruned:
                return (
                    f"the checkpoints of run {run} were pruned (only the latest runs of a "
                    "target keep theirs)"
                )
            unsaved = self.unsaved.get(task_id)
            if unsaved:
                return f"no checkpoint in run {run}: {unsaved}"
            return f"no checkpoint in run {run}"
        return None

    def _code_changed(self, task: Any, name: str) -> str | None:
        before = self.parts.get(name)
        if before is None:
            return None
        now = key_parts(task)
        if before.get("code") != now["code"]:
            return "its code changed"
        changed = outside_changes(before.get("outside", {}), now["outside"])
        return global_changed(changed) if changed else None

    def preview(self, params: Mapping[str, Any]) -> list[Explanation]:
        """Before a resume runs: for each task of its graph, why it will run again as far as
        can be told before anything runs (how it ended in the resumed run, its code, the
        globals it reads, the params it takes), or ``None`` when it takes its checkpoint
        unless an input turns out to differ."""
        graph = self.graph
        if graph is None:
            return []
        found = []
        for node in graph.nodes:
            task = node.lazy.task
            if node.kind == KIND_PARAM or task is None:
                continue
            if node.lazy.cache is not None:
                found.append(Explanation(node.lazy.id, task.name, None, cached=True))
                continue
            reason = self._before(self._same_task(node.lazy.id, task.name))
            if reason is None and getattr(node.lazy, "checkpoint", True) is False:
                reason = "checkpoints are turned off for it (checkpoint=False)"
            reason = reason or self._code_changed(task, task.name)
            if reason is None:
                for dep in node.deps:
                    upstream = graph.nodes[dep]
                    if upstream.kind != KIND_PARAM:
                        continue
                    param = param_name(upstream)
                    default = getattr(upstream.lazy, "default", None)
                    now = param_record(params.get(param, default))
                    before = self.params.get(param)
                    if before is not None and before != now:
                        reason = f"param '{param}' changed ({_shown(before)} -> {_shown(now)})"
                        break
            found.append(Explanation(node.lazy.id, task.name, reason))
        return found

    def _same_task(self, task_id: str, name: str) -> str:
        """The id the task had in the resumed run: its own when that run had it (the same
        graph, or one built the same way), else the one call of the same name there (with
        the same map index), so a graph built anew still finds its tasks."""
        if task_id in self.statuses:
            return task_id
        base, bracket, index = task_id.partition("[")
        if self.previous_ids and self.graph is not None:
            if not self._by_place:
                self._by_place = _places(
                    [node.lazy.id for node in self.graph.nodes], self.previous_ids
                )
            found = self._by_place.get(base)
            if found is not None:
                return found + bracket + index
        if not self._by_name:
            for known in self.statuses:
                base, bracket, index = known.partition("[")
                key = (base.rpartition("-")[0], bracket + index)
                self._by_name[key] = None if key in self._by_name else known
        return self._by_name.get((name, bracket + index)) or task_id

    def _changed(self, context: CacheContext, restored: set[str]) -> str | None:
        return self._code_changed(context.task, context.task_name) or self._inputs_changed(
            context, restored
        )

    def _inputs_changed(self, context: CacheContext, restored: set[str]) -> str | None:
        node = self._node(context.task_id)
        if node is None or self.graph is None:
            return "one of its inputs changed"
        values = named_inputs(context)
        literal: list[str] = []
        for name, upstream in input_sources(self.graph, node).items():
            if upstream is None:
                literal.append(name)
                continue
            if upstream.kind == KIND_PARAM:
                param = param_name(upstream)
                before = self.params.get(param)
                now = param_record(values.get(name))
                if before is not None and before != now:
                    return (
                        f"param '{param}' changed ({_shown(before)} -> {_shown(now)}), "
                        f"its input '{name}'"
                    )
            elif upstream.lazy.id not in restored:
                return (
                    f"its input '{name}' changed: task '{upstream.name}', a dependency, ran again"
                )
        if len(literal) == 1:
            return f"its input '{literal[0]}' changed"
        if literal:
            return f"one of its inputs changed ({', '.join(repr(n) for n in literal)})"
        return None

    def _node(self, task_id: str) -> Node | None:
        graph = self.graph
        if graph is None:
            return None
        if task_id not in self._nodes and len(self._nodes) != len(graph.nodes):
            self._nodes = {node.lazy.id: node for node in graph.nodes}
        return self._nodes.get(task_id)


def _places(now: list[str], before: list[str]) -> dict[str, str]:
    """This graph's task ids → the resumed run's, matching the k-th call of each task name
    in graph order (a graph built again the same way numbers its calls anew)."""

    def keyed(ids: list[str]) -> dict[tuple[str, int], str]:
        seen: dict[str, int] = {}
        found = {}
        for task_id in ids:
            name = task_id.rpartition("-")[0] or task_id
            k = seen.get(name, 0)
            seen[name] = k + 1
            found[(name, k)] = task_id
        return found

    old = keyed(before)
    return {task_id: old[key] for key, task_id in keyed(now).items() if key in old}


def _shown(record: Mapping[str, Any]) -> str:
    if "value" in record:
        return json.dumps(record["value"], ensure_ascii=False)
    return str(record.get("repr"))


__all__ = ["NOTE_KEY", "Explanation", "PreviousRun", "key_parts"]
