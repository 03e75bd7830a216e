"""``InputHashCache``: reuse a task's result whenever it is called with the same inputs, across
runs and processes."""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import weakref
from collections.abc import Callable
from typing import Any

from cascade.caching.hashing import (
    PositionalScalars,
    UnhashableInputError,
    hash_arguments,
    stable_hash,
)
from cascade.caching.inputs import (
    OutsideValueError,
    named_inputs,
    outside_changes,
    outside_digest,
    outside_parts,
    positional_inputs,
    reads_outside,
    task_identity,
)
from cascade.caching.store import KEY_PARTS_PREFIX, CacheStore, check_store, resolve_store
from cascade.caching.user_site import warn_at_user_code
from cascade.graph.extend import returns_graph
from cascade.spec.cache_policy import CacheContext, CacheMiss, CacheWarning

logger = logging.getLogger("cascade.caching")

_KEY_SCHEME = b"cascade-cache-key/1\0"


class TaskKeys:
    """What the keys of every call of one task share, worked out once per task (and policy
    ``version``): its identity, whether its code reads anything from outside its arguments,
    and how positional ``int`` and ``str`` inputs are encoded (``PositionalScalars``), so a
    call such as ``noop(i)`` costs its values' encoding and the key's two sha256 only.

    One fast path with one owner (``InputHashCache.compute_key``): a recorded run keys the
    checkpoint of every call it makes (``benchmarks/bench_records.py``). The key is the one
    the general route makes (``tests/core/policies/test_cache_key_encoding.py``)."""

    __slots__ = ("by_count", "identity", "inputs_prefix", "reads_outside")

    def __init__(self, task: Any, version: str | None) -> None:
        self.identity = task_identity(task, version).encode("utf-8", "surrogatepass")
        #: What the key's sha256 reads before the digest of a call's inputs.
        self.inputs_prefix = _KEY_SCHEME + self.identity + b"\0inputs\0"
        self.reads_outside = reads_outside(task)
        names = positional_inputs(task)
        #: By the number of positional arguments a call passes (no keywords).
        self.by_count = tuple(PositionalScalars(names[:count]) for count in range(len(names) + 1))

    def scalar_inputs(self, context: CacheContext) -> str | None:
        """``hash_arguments(named_inputs(context))`` for a call passing ``int`` and ``str``
        inputs positionally, else ``None``."""
        args = context.args
        if context.kwargs or len(args) >= len(self.by_count):
            return None
        return self.by_count[len(args)].digest(args)


class InputHashCache:
    """Skip a task when a result for the same task and the same inputs is stored.

    The key is a sha256 of the task's identity (its name, the function's qualified name and
    either ``version`` or a fingerprint of its source), a stable content hash of its resolved
    inputs by parameter name (see ``cascade.caching.hashing``; injected resources are not
    inputs), and what its code reads from outside its arguments: values captured from an
    enclosing function and the module-level globals it looks up (``outside_digest``), so tasks
    made by one factory, or a changed module constant, never share an entry.
    ``key_fn(context) -> str`` replaces the input hash, for inputs with no stable hash or to
    key on part of them. A stored ``None`` is a hit. An input without a stable hash
    makes that call run uncached with a ``CacheWarning`` naming the task and the argument; so
    does a captured value or a global without one (unless ``key_fn`` decides the key).

    ``ttl`` (seconds) limits how long an entry is used. ``store`` is a store name registered
    through ``cascade_register_cache_stores`` (``"directory"``, ``"memory"``) or a store object;
    by default entries go to ``$CASCADE_CACHE_DIR`` or ``.cascade/cache`` in the working
    directory. Values are pickled: keep the cache directory private to people you trust.

    On a miss, when the store holds an earlier result of the same task (same name and
    function), the policy says what differs from it in ``context.miss`` (``CacheMiss``): its
    code or ``version``, a global it reads, an input (named), the ``key_fn`` key, or nothing
    (the entry expired or was removed). For that it keeps, per task, the parts of the key of
    the first result a run saved (a digest of each input, short values as text) under
    ``KEY_PARTS_PREFIX`` in its store, and compares a call with what was there when the run
    first looked, so the calls of one run never explain each other.
    """

    def __init__(
        self,
        ttl: float | None = None,
        store: str | CacheStore | None = None,
        version: str | int | None = None,
        key_fn: Callable[[CacheContext], str] | None = None,
    ) -> None:
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, numbers.Real) or not ttl > 0
        ):
            raise ValueError(
                f"InputHashCache: ttl must be a positive number of seconds, got {ttl!r}"
            )
        if store is not None and not isinstance(store, str):
            check_store(store, "InputHashCache")
        if version is not None and not isinstance(version, str | int):
            raise TypeError(f"InputHashCache: version must be a str or int, got {version!r}")
        if key_fn is not None and not callable(key_fn):
            raise TypeError(f"InputHashCache: key_fn must be callable, got {key_fn!r}")
        self.ttl = None if ttl is None else float(ttl)
        self.store = store
        self.version = None if version is None else str(version)
        self.key_fn = key_fn
        self._named_store: CacheStore | None = None
        self._tasks: weakref.WeakKeyDictionary[Any, TaskKeys] = weakref.WeakKeyDictionary()
        self._last: tuple[weakref.ref[Any], TaskKeys] | None = None
        #: Per task (its key-parts key): the run that last read them, and what it found.
        self._earlier: dict[str, tuple[str, dict[str, Any] | None]] = {}
        #: Per task (its key-parts key): the run that last wrote them.
        self._noted: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        # What it remembers per process (task identities, the named store it found, the key
        # parts it read and wrote) stays behind, so a policy travels in a pickled graph (a
        # checkpointed or cached graph a task returned, or one shipped back from a worker)
        # and is found again where it lands.
        state = dict(self.__dict__)
        state["_named_store"] = None
        state["_earlier"] = {}
        state["_noted"] = {}
        del state["_tasks"]
        state["_last"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tasks = weakref.WeakKeyDictionary()
        self._last = None
        self.__dict__.setdefault("_earlier", {})
        self.__dict__.setdefault("_noted", {})

    def __repr__(self) -> str:
        options = [
            f"{name}={value!r}"
            for name, value in (
                ("ttl", self.ttl),
                ("store", self.store),
                ("version", self.version),
                ("key_fn", self.key_fn),
            )
            if value is not None
        ]
        return f"InputHashCache({', '.join(options)})"

    # -- keys ---------------------------------------------------------------------------------

    def task_keys(self, task: Any) -> TaskKeys:
        """What the keys of ``task``'s calls share under this policy (kept per task; the
        last task asked for is found first, as the calls of a fan-out come one task at a
        time)."""
        last = self._last
        if last is not None and last[0]() is task:
            return last[1]
        try:
            found = self._tasks[task]
        except KeyError:
            found = self._tasks[task] = TaskKeys(task, self.version)
        except TypeError:  # not weak-referenceable
            return TaskKeys(task, self.version)
        self._last = (weakref.ref(task), found)
        return found

    def _identity(self, task: Any) -> bytes:
        return self.task_keys(task).identity

    def key_for(self, context: CacheContext) -> str | None:
        """The store key of this call, or ``None`` (with a ``CacheWarning``) when an input, or
        a value the task's code reads from outside its arguments, has no stable hash."""
        key, problem = self.compute_key(context)
        if problem is not None:
            warn_at_user_code(f"task '{context.task_name}': {problem}", CacheWarning, context.task)
        return key

    def compute_key(
        self,
        context: CacheContext,
        consequence: str = "so this call runs without the cache and its result is not stored",
    ) -> tuple[str | None, str | None]:
        """``(key, None)``, or ``(None, why)`` when the call has no key: ``why`` says which
        input has no stable hash, then ``consequence``, then what to do about it. For callers
        that key on the same rules and word the warning themselves (run checkpoints)."""
        task = context.task
        keys = self.task_keys(task)
        if self.key_fn is not None:
            custom = self.key_fn(context)
            if not isinstance(custom, str):
                raise TypeError(
                    f"task '{context.task_name}': InputHashCache key_fn must return a str, "
                    f"got {type(custom).__name__}: {custom!r}"
                )
            inputs = b"key_fn\0" + custom.encode("utf-8", "surrogatepass")
        else:
            digest = keys.scalar_inputs(context)
            if digest is None:
                try:
                    digest = hash_arguments(named_inputs(context))
                except UnhashableInputError as exc:
                    argument = exc.argument or "?"
                    where = f"{argument}{exc.short_where}"
                    return None, (
                        f"argument '{argument}' has no stable hash, {consequence}: "
                        f"{exc.reason} (at {where}). Define __cascade_hash__ on its class or "
                        "pass key_fn= to InputHashCache."
                    )
            if not keys.reads_outside:  # the common case: the inputs are all there is
                return hashlib.sha256(keys.inputs_prefix + digest.encode()).hexdigest(), None
            inputs = b"inputs\0" + digest.encode()
        if keys.reads_outside:
            try:
                outside = outside_digest(task, lenient=self.key_fn is not None)
            except OutsideValueError as exc:
                return None, (
                    f"its code reads the {exc.label} (a {exc.value_type}), which has no "
                    f"stable hash, {consequence}: {exc}. The result may depend on it: pass it "
                    "as an argument, define __cascade_hash__ on its class, or give "
                    "InputHashCache a key_fn= (which then decides the key)."
                )
            if outside is not None:
                inputs += b"\0outside\0" + outside
        key = hashlib.sha256(_KEY_SCHEME + keys.identity + b"\0" + inputs)
        return key.hexdigest(), None

    def resolve_store(self) -> CacheStore:
        """The store this policy reads and writes now."""
        if self.store is None:
            return resolve_store(None)
        if isinstance(self.store, str):
            if self._named_store is None:
                self._named_store = resolve_store(self.store, "InputHashCache")
            return self._named_store
        return self.store

    # -- the policy ---------------------------------------------------------------------------

    def lookup(self, context: CacheContext) -> tuple[bool, Any]:
        key = self.key_for(context)
        context.state = key
        if key is None:
            return False, None
        store = self.resolve_store()
        try:
            found = store.get(key)
        except Exception as exc:
            logger.warning(
                "task '%s': cache store %r failed to read an entry, so the task runs: %s: %s",
                context.task_name,
                store,
                type(exc).__name__,
                exc,
            )
            return False, None
        if not found[0]:
            context.miss = self._why_missed(context, store, key)
        return found

    # -- why a call missed --------------------------------------------------------------------

    def _parts_key(self, task: Any) -> str:
        """Where the key parts of ``task`` are kept: one record per task name and function."""
        fn = task.fn
        qualified = f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', None)}"
        name = f"{task.name}\0{qualified}".encode("utf-8", "surrogatepass")
        return KEY_PARTS_PREFIX + hashlib.sha256(name).hexdigest()

    def _parts(self, context: CacheContext, key: str, inputs: bool = True) -> dict[str, Any]:
        """The parts of this call's key that a later miss compares: its identity (code or
        version), what its code reads from outside, and its inputs (a digest of each, and
        short values as text) or what ``key_fn`` returned."""
        task = context.task
        parts: dict[str, Any] = {
            "key": key,
            "identity": hashlib.sha256(self._identity(task)).hexdigest()[:16],
            "version": self.version,
            "outside": outside_parts(task),
        }
        if not inputs:
            return parts
        if self.key_fn is not None:
            custom = self.key_fn(context).encode("utf-8", "surrogatepass")
            parts["key_fn"] = hashlib.sha256(custom).hexdigest()[:16]
            return parts
        named = named_inputs(context)
        parts["inputs"] = {name: stable_hash(value)[:16] for name, value in named.items()}
        parts["shown"] = {name: _shown(value) for name, value in named.items()}
        return parts

    def _earlier_parts(self, store: CacheStore, where: str, run_id: str) -> dict[str, Any] | None:
        """The task's key parts as they were when this run first looked (read once per run,
        so a result the run saves itself is never what it compares with)."""
        known = self._earlier.get(where)
        if known is not None and run_id and known[0] == run_id:
            return known[1]
        hit, parts = store.get(where)
        found = parts if hit and isinstance(parts, dict) else None
        self._earlier[where] = (run_id, found)
        return found

    def _why_missed(self, context: CacheContext, store: CacheStore, key: str) -> CacheMiss | None:
        """What differs from the task's earlier result, or ``None`` without one. It only
        explains: a failure here is logged and the call runs as it would anyway."""
        try:
            before = self._earlier_parts(store, self._parts_key(context.task), context.run_id)
            if before is None:
                return None
            return self._difference(before, context, key)
        except Exception as exc:
            logger.debug(
                "task '%s': could not tell why its cache missed: %s: %s",
                context.task_name,
                type(exc).__name__,
                exc,
            )
            return None

    def _difference(
        self, before: dict[str, Any], context: CacheContext, key: str
    ) -> CacheMiss | None:
        """What differs between an earlier result's key parts and this call's, checked from
        the task outwards: its code or version, the globals it reads, then its inputs (hashed
        again only when everything else agrees)."""
        now = self._parts(context, key, inputs=False)
        if before.get("identity") != now["identity"]:
            if before.get("version") != now["version"]:
                return CacheMiss(
                    "version", before=str(before.get("version")), now=str(now["version"])
                )
            return CacheMiss("code")
        changed = outside_changes(before.get("outside") or {}, now["outside"])
        if changed:
            return CacheMiss("global", tuple(changed))
        if before.get("key") == key:
            return CacheMiss("expired")
        mine = self._parts(context, key)
        if "key_fn" in mine:
            return CacheMiss("key") if before.get("key_fn") != mine["key_fn"] else None
        old, new = before.get("inputs") or {}, mine["inputs"]
        names = tuple(sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n)))
        if not names:
            return None
        if len(names) == 1:
            earlier = (before.get("shown") or {}).get(names[0])
            return CacheMiss("input", names, earlier, mine["shown"].get(names[0]))
        return CacheMiss("input", names)

    def _note_parts(self, context: CacheContext, store: CacheStore, key: str) -> None:
        """Keep the key parts of the task's first result saved in this run."""
        where = self._parts_key(context.task)
        if context.run_id and self._noted.get(where) == context.run_id:
            return
        self._noted[where] = context.run_id
        try:
            store.set(where, self._parts(context, key), None, task=context.task_name)
        except Exception as exc:
            logger.debug(
                "task '%s': could not keep the parts of its cache key: %s: %s",
                context.task_name,
                type(exc).__name__,
                exc,
            )

    def save(self, context: CacheContext, value: Any) -> None:
        key = context.state
        if key is None:
            return
        store = self.resolve_store()
        try:
            store.set(key, value, self.ttl, task=context.task_name)
            self._note_parts(context, store, key)
        except Exception as exc:
            if returns_graph(value):
                what = "the graph it returned was"
                hint = (
                    "The tasks in a returned graph must be importable by name (module-level "
                    "@cs.task functions) for it to be cached."
                )
            else:
                what, hint = "its result was", "Results must be picklable to be cached."
            warn_at_user_code(
                f"task '{context.task_name}': {what} not cached because the store "
                f"{store!r} could not save it: {type(exc).__name__}: {exc}. {hint}",
                CacheWarning,
                context.task,
            )


def _shown(value: Any) -> str | None:
    """A short value as JSON text (for "param 'n' changed (1 -> 2)"), else ``None``."""
    if value is None or isinstance(value, bool | int | float | str):
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except ValueError:
            return None
        return text if len(text) <= 80 else None
    return None


__all__ = ["InputHashCache", "TaskKeys"]
