"""What cache policies key on: a task's inputs by parameter name, and a fingerprint of its
code."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import weakref
from collections.abc import Callable
from typing import Any

from cascade.spec.cache_policy import CacheContext


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
    from cascade.caching.hashing import UnhashableInputError, stable_hash

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
    marker = f"version:{version}" if version is not None else f"code:{code_fingerprint(fn)}"
    return f"{task.name}\0{qualified}\0{marker}"


__all__ = ["call_inputs", "code_fingerprint", "named_inputs", "task_identity"]
