"""What cache policies key on: a task's inputs by parameter name, a fingerprint of its code,
and the values its code reads from outside its arguments (closure variables, module globals)."""

from __future__ import annotations

import ast
import collections
import dis
import hashlib
import inspect
import logging
import sys
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from cascade.caching.hashing import UnhashableInputError, stable_hash
from cascade.spec.cache_policy import CacheContext
from cascade.spec.task import Task


class _Signature:
    """A task's parameters, worked out once per task."""

    __slots__ = ("injected", "positional", "var_positional")

    def __init__(self, task: Any) -> None:
        injected = frozenset(param for param, _ in getattr(task, "injections", ()))
        positional: list[str] = []
        var_positional: str | None = None
        try:
            parameters = inspect.signature(task.fn).parameters.values()
        except (TypeError, ValueError):
            parameters = ()  # type: ignore[assignment]
        for p in parameters:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                var_positional = p.name
        self.positional = tuple(positional)
        self.var_positional = var_positional
        self.injected = injected


_signatures: weakref.WeakKeyDictionary[Any, _Signature] = weakref.WeakKeyDictionary()


def _signature(task: Any) -> _Signature:
    try:
        return _signatures[task]
    except KeyError:
        found = _signatures[task] = _Signature(task)
        return found
    except TypeError:  # not weak-referenceable
        return _Signature(task)


def named_inputs(context: CacheContext) -> dict[str, Any]:
    """The call's inputs by parameter name, so ``f(1, 2)`` and ``f(a=1, b=2)`` agree.

    Positional arguments take their parameter's name; extra ones go under ``*<name>`` as a
    tuple. Parameters that receive an injected resource (``cs.inject``) are left out: a
    resource is how a task reaches the world, not an input that decides its result. Defaults
    that were not passed are left out too.
    """
    sig = _signature(context.task)
    named: dict[str, Any] = {}
    args = context.args
    count = len(sig.positional)
    for index, value in enumerate(args[:count]):
        named[sig.positional[index]] = value
    if len(args) > count:
        named[f"*{sig.var_positional or 'args'}"] = tuple(args[count:])
    named.update(context.kwargs)
    for param in sig.injected:
        named.pop(param, None)
    return named


def positional_inputs(task: Any) -> tuple[str, ...]:
    """The parameters a positional argument of ``task`` is an input of, in order, up to the
    first that receives an injected resource: a call passing only positional arguments, no
    more than these, has exactly them (the first ``len(args)``) as its named inputs."""
    sig = _signature(task)
    names: list[str] = []
    for name in sig.positional:
        if name in sig.injected:
            break
        names.append(name)
    return tuple(names)


def call_inputs(context: CacheContext) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's positional and keyword inputs without injected resources."""
    injected = _signature(context.task).injected
    if not injected or not injected.intersection(context.kwargs):
        return context.args, context.kwargs
    return context.args, {k: v for k, v in context.kwargs.items() if k not in injected}


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """A sha256 of a function's code that ignores what does not change its behaviour.

    From source when it is available: parsed, with decorators and the docstring dropped and
    re-rendered, so reformatting, comments, a docstring edit or changed decorator options
    (a new ``ttl``) keep the fingerprint. Without source (a function built at an interactive
    prompt), from the compiled code. Functions it calls are not included: bump the policy's
    ``version`` when a change elsewhere should invalidate cached results.
    """
    digest = hashlib.sha256()
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        source = None
    if source is not None:
        digest.update(b"source\0")
        digest.update(_canonical_source(source).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:  # a callable object: its class's __call__
        call = getattr(type(fn), "__call__", None)  # noqa: B004
        code = getattr(call, "__code__", None)
    if code is None:
        digest.update(b"name\0")
        digest.update(repr(getattr(fn, "__qualname__", type(fn).__qualname__)).encode())
        return digest.hexdigest()
    digest.update(b"code\0")
    _feed_code(digest, code)
    return digest.hexdigest()


def _canonical_source(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # a lambda cut out of a larger expression: use the text as it is
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
            break
    return ast.unparse(tree)


def _feed_code(digest: Any, code: Any) -> None:
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if inspect.iscode(const):
            _feed_code(digest, const)
            continue
        try:
            digest.update(stable_hash(const).encode())
        except UnhashableInputError:
            digest.update(type(const).__qualname__.encode())


def task_identity(task: Any, version: str | None) -> str:
    """What a cache key says about the task: its name, the function's qualified name, and
    either the explicit ``version`` or the code fingerprint."""
    fn = task.fn
    qualified = f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', None)}"
    marker = f"version:{version}" if version is not None else f"code:{_fingerprint(fn)}"
    return f"{task.name}\0{qualified}\0{marker}"


# -- what the code reads from outside its arguments ---------------------------------------------


class OutsideValueError(UnhashableInputError):
    """A closure variable or module global that a task's code reads has no stable hash.
    ``label`` says which (``"captured variable 'k'"``, ``"module-level global 'MODEL'"``)."""

    def __init__(self, label: str, value: Any, cause: UnhashableInputError) -> None:
        super().__init__(cause.reason, cause.where)
        self.label = label
        self.value_type = f"{type(value).__module__}.{type(value).__qualname__}"


_global_names_of: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
#: Code fingerprints by function, once per function per process: reading and parsing the
#: source costs about a millisecond, which would otherwise be paid per run by every task a
#: run checkpoints (``benchmarks/bench_records.py``). A reloaded or redefined function is a
#: new object with its own fingerprint.
_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code objects nested in it (lambdas, comprehensions, inner functions)."""
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def _global_names(fn: Any) -> tuple[str, ...]:
    """The names ``fn``'s code looks up as globals, worked out once per function."""
    try:
        return _global_names_of[fn]
    except (KeyError, TypeError):
        pass
    code = getattr(fn, "__code__", None)
    names: set[str] = set()
    if isinstance(code, types.CodeType):
        for current in _codes(code):
            for instruction in dis.get_instructions(current):
                if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    names.add(str(instruction.argval))
    found = tuple(sorted(names))
    try:
        _global_names_of[fn] = found
    except TypeError:
        pass
    return found


def _fingerprint(fn: Any) -> str:
    try:
        return _fingerprints[fn]
    except (KeyError, TypeError):
        pass
    found = code_fingerprint(fn)
    try:
        _fingerprints[fn] = found
    except TypeError:
        pass
    return found


_ignored: tuple[bool, tuple[type, ...]] | None = None


def _ignored_types() -> tuple[type, ...]:
    """Objects a task reads that never decide its result: loggers, locks and the like, and
    OpenTelemetry tracers (only if that library is loaded). They count by their type."""
    global _ignored
    traced = "opentelemetry.trace" in sys.modules
    if _ignored is not None and _ignored[0] == traced:
        return _ignored[1]
    found: list[type] = [
        types.MethodWrapperType,
        logging.Logger,
        logging.LoggerAdapter,
        type(threading.Lock()),
        type(threading.RLock()),
        threading.Condition,
        threading.Semaphore,
        threading.Event,
    ]
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        found += [trace.Tracer, trace.TracerProvider]
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        found += [asyncio.Lock, asyncio.Semaphore, asyncio.Event, asyncio.Condition]
    _ignored = (traced, tuple(found))
    return _ignored[1]


def _qualified(value: Any) -> str:
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', None)}"


#: Per function: ``"kind:name"`` -> (the value last seen there, its digest or why it has none).
_outside_memo: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _value_digest(value: Any, captured: bool, ignored: tuple[type, ...]) -> Any:
    """How one outside value counts (bytes), or the ``UnhashableInputError`` saying why it
    cannot."""
    if isinstance(value, types.ModuleType):
        return b"module:" + value.__name__.encode() + b";"
    if isinstance(value, Task):
        return f"task:{value.name}:{_qualified(value.fn)};".encode()
    if isinstance(value, types.FunctionType):
        text = f"function:{_qualified(value)};"
        if captured:  # a local helper: its code is the task's too
            text += _fingerprint(value)
        return text.encode()
    if isinstance(value, type | types.BuiltinFunctionType | types.MethodType):
        return f"ref:{_qualified(value)};".encode()
    if isinstance(value, ignored):
        return f"object:{_qualified(type(value))};".encode()
    try:
        return stable_hash(value).encode()
    except UnhashableInputError as exc:
        if isinstance(value, _STATE_CONTAINERS):
            # A list or dict of objects the task collects into: state, not configuration.
            return f"state:{_qualified(type(value))};".encode()
        return exc


#: Mutable containers: hashed by content when they have one, else counted by their type.
_STATE_CONTAINERS = (list, dict, set, bytearray, collections.deque)


def reads_outside(task: Any) -> bool:
    """Whether ``task``'s function reads anything from outside its arguments (it captured
    values, or its code looks up globals): when not, ``outside_digest`` is ``None``."""
    fn = getattr(task, "fn", task)
    return bool(getattr(fn, "__closure__", None)) or bool(_global_names(fn))


def outside_digest(task: Any, lenient: bool = False) -> bytes | None:
    """A digest of what ``task``'s function reads from outside its arguments, or ``None`` when
    it reads nothing: the values it captured from enclosing functions (so two tasks made by one
    factory differ) and the module-level globals its code looks up (so a changed constant
    changes the key). Functions it captures count with their own code and what they read in
    turn; modules, functions and classes read as globals count by name; loggers, locks and
    tracers by type, and so do lists, dicts and sets whose content has no stable hash (state
    the task collects into). Any other value without a stable hash raises
    ``OutsideValueError``, unless ``lenient`` (the key is the user's, through ``key_fn``),
    when it counts by its type.

    A value is hashed when first seen and again whenever the name is bound to another object;
    changes made inside a mutable object in place are not seen (a list the task appends to
    keeps its key)."""
    if not reads_outside(task):
        return None  # the common case: a module-level function reading only its arguments
    h = hashlib.sha256(b"outside\0")
    entries = 0
    for label, digest in _outside_entries(task, lenient):
        entries += 1
        h.update(label.encode("utf-8", "surrogatepass"))
        h.update(digest)
    return h.digest() if entries else None


def outside_parts(task: Any) -> dict[str, str]:
    """What ``outside_digest`` hashes, one short digest per value read from outside the
    arguments, by its name (``"g:RATE"`` a module global, ``"c:factor"`` a captured value;
    ``"helper.g:X"`` read by a captured function ``helper``): how a run explains which of
    them changed. A value without a stable hash counts by its type."""
    if not reads_outside(task):
        return {}
    return {
        label.rstrip("="): hashlib.sha256(digest).hexdigest()[:16]
        for label, digest in _outside_entries(task, lenient=True)
    }


def outside_changes(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """The values read from outside the arguments whose digest differs between two
    ``outside_parts`` (one only read by one of them counts too), by their plain names
    (``RATE``; ``helper.X`` read by a captured function ``helper``), sorted."""
    names = before.keys() | now.keys()
    return [_plain(name) for name in sorted(n for n in names if before.get(n) != now.get(n))]


def _plain(slot: str) -> str:
    """``g:RATE`` → ``RATE``; ``helper.g:X`` → ``helper.X``."""
    owner, _, rest = slot.rpartition(".")
    name = rest.split(":", 1)[-1]
    return f"{owner}.{name}" if owner else name


def _outside_entries(task: Any, lenient: bool) -> Iterator[tuple[str, bytes]]:
    """``(label, digest)`` of each value ``task``'s code reads from outside its arguments,
    in ``outside_digest``'s order (see there)."""

    fn = getattr(task, "fn", task)
    ignored = _ignored_types()
    seen: set[int] = set()
    pending: list[tuple[str, Any]] = [("", fn)]
    while pending:
        owner, current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "__code__", None)
        if not isinstance(code, types.CodeType):
            continue
        try:
            memo = _outside_memo[current]
        except KeyError:
            memo = _outside_memo[current] = {}
        except TypeError:  # not weak-referenceable
            memo = {}
        items: list[tuple[str, str, Any]] = []
        for name, cell in zip(code.co_freevars, current.__closure__ or (), strict=False):
            try:
                items.append(("c", name, cell.cell_contents))
            except ValueError:  # not bound yet
                items.append(("u", name, None))
        namespace = getattr(current, "__globals__", {})
        for name in _global_names(current):
            if name in namespace:
                items.append(("g", name, namespace[name]))
        for kind, name, value in items:
            slot = f"{kind}:{name}"
            label = f"{owner}{slot}="
            if kind == "u":
                yield label, b"unbound;"
                continue
            known = memo.get(slot)
            if known is not None and known[0] is value:
                digest = known[1]
            else:
                digest = _value_digest(value, kind == "c", ignored)
                memo[slot] = (value, digest)
            if kind == "c" and isinstance(value, Task | types.FunctionType):
                pending.append((f"{owner}{name}.", getattr(value, "fn", value)))
            if isinstance(digest, bytes):
                yield label, digest
            elif lenient:
                yield label, f"object:{_qualified(type(value))};".encode()
            else:
                where = owner.rstrip(".")
                inside = f" of the captured function '{where}'" if where else ""
                label = (
                    f"captured variable '{name}'{inside}"
                    if kind == "c"
                    else f"module-level global '{name}'{inside}"
                )
                raise OutsideValueError(label, value, digest)


__all__ = [
    "OutsideValueError",
    "call_inputs",
    "code_fingerprint",
    "named_inputs",
    "outside_changes",
    "outside_digest",
    "outside_parts",
    "positional_inputs",
    "reads_outside",
    "task_identity",
]
