"""Checkpoints and resume: the cache policy a recorded run applies to every task that has no
cache of its own.

Keys follow ``InputHashCache``'s rules (the task's name, qualified name and code fingerprint,
its inputs by parameter name, and the values its code reads from outside its arguments), so a
task whose code or inputs changed gets a new key and runs again. ``save`` pickles a succeeded
result at once (a later change to the object cannot leak into the checkpoint) and hands it to
the recorder, whose thread writes a batch of them as one entry of the cache store, keyed by the
run. ``lookup`` in a resumed run finds the key among the checkpoints of the run it resumes and
returns that value; the engine then skips the task (``TaskSkipped(reason="CacheHit")``, which
the record calls a ``Checkpoint`` skip). Failed, cancelled, not-run and changed tasks miss and
run. A result that cannot be pickled, or whose pickle is larger than the run's limit (or the
task's own, ``checkpoint="2GB"``), is not checkpointed, with one ``RecordWarning`` naming the
task (and its size); a task with ``checkpoint=False`` (or a call ``.with_checkpoint(False)``)
never is; a value a task fell back to after failing is never checkpointed. Each of these is
noted with the task, so a resume can say why it ran again (``cascade.records.explain``).

A task that returned a graph is checkpointed as that graph, not as the value it resolved to: a
resume restores the graph and each task in it restores or runs by its own key. So a task in it
that fell back, was skipped, had its code edited or reads a param given another value runs
again, and recording never changes what runs (a returned call stays a tail call).
"""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

from cascade.caching.input_hash import InputHashCache
from cascade.caching.store import CacheStore
from cascade.graph.build import Graph
from cascade.graph.extend import returns_graph
from cascade.records.explain import NOTE_KEY, PreviousRun, key_parts
from cascade.records.model import NOTE_RAN, NOTE_UNSAVED, Checkpoint, RecordWarning
from cascade.records.recorder import Recorder, dumps
from cascade.spec.cache_policy import CacheContext
from cascade.spec.policies import format_size

logger = logging.getLogger("cascade.records")

_NOT_CHECKPOINTED = "so its result is not checkpointed (a resume of this run runs it again)"


class CheckpointPolicy:
    """Checkpoints a recorded run's results and, when it resumes another run, restores them.

    ``resumed`` maps input-hash keys to the checkpoints of the run being resumed (empty for a
    run that resumes nothing), read from ``resumed_store``.
    """

    def __init__(
        self,
        recorder: Recorder,
        resumed: Mapping[str, Checkpoint] | None = None,
        resumed_store: CacheStore | None = None,
        *,
        max_bytes: int | None = None,
        previous: PreviousRun | None = None,
        graph: Graph | None = None,
    ) -> None:
        self.recorder = recorder
        self.resumed = dict(resumed or {})
        self.resumed_store = resumed_store
        #: The largest pickled result checkpointed (``None``: no limit), unless a task says.
        self.max_bytes = max_bytes
        #: What the resumed run knew of its tasks, to say why one runs again.
        self.previous = previous
        self._graph = graph
        self._calls: dict[str, bool | int] = {}  # task id → its call's own checkpoint=
        self._scanned = 0
        self._parts_noted: set[int] = set()
        self._keys = InputHashCache()  # only its key rules: it never reads or writes a store
        self._no_inputs: dict[int, tuple[Any, str | None, str | None]] = {}
        self._saved: set[str] = set()
        #: Tasks (by id; each kept alive here, so no id is reused) whose calls without inputs
        #: the engine need not show this policy: the run resumes nothing, and the one key such
        #: calls share is saved already (see ``CachePolicy``). A wide fan-out of them then
        #: costs no context, lookup or save per call (``benchmarks/bench_records.py``).
        self.settled: dict[int, Any] = {}
        self._warned: set[str] = set()
        self._entries: dict[str, dict[str, bytes] | None] = {}

    def __repr__(self) -> str:
        return f"CheckpointPolicy(run={self.recorder.run_id[:8]!r}, resumed={len(self.resumed)})"

    # -- keys ----------------------------------------------------------------------------------

    def _key(self, context: CacheContext) -> tuple[str | None, str | None]:
        if context.args or context.kwargs:
            return self._keys.compute_key(context, _NOT_CHECKPOINTED)
        # A call without inputs has one key per task for the whole run (a wide fan-out of
        # such calls hashes once).
        task = context.task
        known = self._no_inputs.get(id(task))
        if known is None or known[0] is not task:
            key, problem = self._keys.compute_key(context, _NOT_CHECKPOINTED)
            known = self._no_inputs[id(task)] = (task, key, problem)
        return known[1], known[2]

    def _warn_once(self, task_name: str, message: str) -> None:
        if task_name in self._warned:
            return
        self._warned.add(task_name)
        warnings.warn(f"task '{task_name}': {message}", RecordWarning, stacklevel=4)

    # -- the policy ----------------------------------------------------------------------------

    def _setting(self, context: CacheContext) -> bool | int:
        """The call's ``checkpoint=``: its own (``with_checkpoint``), else its task's."""
        graph = self._graph
        if graph is not None and self._scanned != len(graph.nodes):
            nodes = graph.nodes
            for node in nodes[self._scanned :]:
                lazy = node.lazy
                task = lazy.task
                if task is not None and getattr(lazy, "checkpoint", True) is not task.checkpoint:
                    self._calls[lazy.id] = lazy.checkpoint
            self._scanned = len(nodes)
        if self._calls:
            own = self._calls.get(context.task_id)
            if own is not None:
                return own
        return getattr(context.task, "checkpoint", True)  # type: ignore[no-any-return]

    def _ran(self, context: CacheContext, why: str | None = None) -> None:
        """Note why a call of a run that resumes another runs."""
        previous = self.previous
        if previous is None:
            return
        if why is None:
            why = previous.why(context, self.recorder.restored)
        self.recorder.note(context.task_id, NOTE_RAN, why)

    def lookup(self, context: CacheContext) -> tuple[bool, Any]:
        if self._setting(context) is False:
            context.state = None
            self.recorder.note(context.task_id, NOTE_UNSAVED, "checkpoints are turned off for it")
            if self.previous is not None:
                self._ran(context, "checkpoints are turned off for it (checkpoint=False)")
            return False, None
        if context.args or context.kwargs:
            key, problem = self._keys.compute_key(context, _NOT_CHECKPOINTED)
        else:
            known = self._no_inputs.get(id(context.task))
            if known is not None and known[0] is context.task:
                key, problem = known[1], known[2]  # a wide fan-out without inputs: no hashing
            else:
                key, problem = self._key(context)
        context.state = key
        if key is None:
            why = problem or "it has no checkpoint key"
            self._warn_once(context.task_name, why)
            self.recorder.note(context.task_id, NOTE_UNSAVED, why)
            self._ran(context, f"it has no checkpoint key: {why}")
            return False, None
        if not self.resumed:  # a run that resumes nothing (or nothing checkpointed) misses
            if self.previous is not None:
                self._ran(context)
            return False, None
        found = self.resumed.get(key)
        if found is None:
            self._ran(context)
            return False, None
        hit, value = self._restore(found, context.task_name)
        if not hit:
            self._ran(
                context, "its checkpoint is gone from the cache directory (pruned or cleared)"
            )
            return False, None
        self.recorder.restored.add(context.task_id)
        if key not in self._saved:
            self._saved.add(key)
            self.recorder.reuse(Checkpoint(context.task_id, key, found.entry))
        return True, value

    def save(self, context: CacheContext, value: Any) -> None:
        key = context.state
        if key is None or key in self._saved:
            return
        if context.task_id in self.recorder.fell_back:
            return  # the value of a failed task's fallback: a resume runs the task again
        try:
            payload = dumps(value)
        except Exception as exc:
            if returns_graph(value):
                what = (
                    "the graph it returned cannot be pickled (a task in it must be importable "
                    "by name: a module-level @cs.task function)"
                )
            else:
                kind = type(value)
                what = f"its result (a {kind.__module__}.{kind.__qualname__}) cannot be pickled"
            self._warn_once(
                context.task_name,
                f"{what}, so it is not checkpointed and a resume of this run runs it again: "
                f"{type(exc).__name__}: {exc}",
            )
            self.recorder.note(
                context.task_id, NOTE_UNSAVED, f"{what}: {type(exc).__name__}: {exc}"
            )
            return
        setting = self._setting(context)
        limit = self.max_bytes if setting is True else setting
        if limit and len(payload) > limit:
            self._too_big(context, len(payload), limit, setting is not True)
            return
        self._saved.add(key)
        task = context.task
        if id(task) not in self._parts_noted:  # what a later resume compares its keys with
            self._parts_noted.add(id(task))
            self.recorder.note(context.task_name, NOTE_KEY, json.dumps(key_parts(task)))
        if not self.resumed and not context.args and not context.kwargs:
            self.settled[id(context.task)] = context.task
        self.recorder.checkpoint(context.task_id, key, payload)

    def _too_big(self, context: CacheContext, size: int, limit: int, own: bool) -> None:
        whose = "the task's own checkpoint= limit" if own else "the run's checkpoint limit"
        text = (
            f"its result is {format_size(size)} pickled, more than {whose} of {format_size(limit)}"
        )
        self._warn_once(
            context.task_name,
            f"{text}, so it is not checkpointed and a resume of this run runs it again "
            "(raise the limit with checkpoint='2GB' on the task, RecordOptions("
            "max_checkpoint_bytes=...) or CASCADE_MAX_CHECKPOINT_BYTES)",
        )
        self.recorder.note(context.task_id, NOTE_UNSAVED, text)

    # -- restoring -------------------------------------------------------------------------------

    def _restore(self, found: Checkpoint, task_name: str) -> tuple[bool, Any]:
        if found.entry not in self._entries:
            self._entries[found.entry] = self._load(found.entry)
        values = self._entries[found.entry]
        payload = values.get(found.key) if values is not None else None
        if payload is None:
            return False, None
        try:
            return True, pickle.loads(payload)
        except Exception as exc:
            logger.warning(
                "task '%s': its checkpoint cannot be unpickled (%s: %s), so it runs again",
                task_name,
                type(exc).__name__,
                exc,
            )
            return False, None

    def _load(self, entry: str) -> dict[str, bytes] | None:
        store = self.resumed_store
        if store is None:
            return None
        hit, stored = store.get(entry)
        if not hit or not isinstance(stored, dict) or not isinstance(stored.get("values"), dict):
            logger.warning(
                "a checkpoint entry of the resumed run is missing from %r (pruned or cleared?); "
                "the tasks it held run again",
                store,
            )
            return None
        values: dict[str, bytes] = stored["values"]
        return values


__all__ = ["CheckpointPolicy"]
