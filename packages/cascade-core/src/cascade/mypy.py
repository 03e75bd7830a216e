"""The mypy plugin: checks the wiring of a graph, a task call's arguments against the task's
function, where Cascade's own annotations can only say "anything".

Enable it in mypy's configuration (``plugins = ["cascade.mypy"]`` under ``[tool.mypy]``). A
call of a task accepts, for a parameter declared ``T``, a ``T`` or a ``LazyResult[T]`` (a
``cs.Param`` of ``T`` is one), also inside lists, tuples, dicts and the read-only
collection types; a wrong number of arguments, an unknown keyword or a value of the wrong
type is an error naming the task, followed by a note naming the parameter. A task made of a
generic function (``def ident(x: T) -> T``) gets its ``T`` from each call's arguments.

Why a plugin: a task call's parameters are its function's with every type widened to also
take a LazyResult, a transformation of a signature that the typing system cannot spell
(``ParamSpec`` keeps parameter types as they are). Without the plugin mypy and pyright still
see every value's type (``Task[P, R]`` calls are ``LazyResult[R]``), but not the arguments.

This module imports mypy, which is only there when mypy runs it: ``import cascade`` never
imports it.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.messages import format_type
from mypy.nodes import CallExpr, Context, FuncDef, MemberExpr, NameExpr, TypeInfo
from mypy.plugin import FunctionContext, MethodContext, MethodSigContext, Plugin
from mypy.subtypes import is_subtype
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    Parameters,
    ProperType,
    TupleType,
    Type,
    TypeVarType,
    UnionType,
    get_proper_type,
    has_type_vars,
)

TASK = "cascade.spec.task.Task"
LAZY_RESULT = "cascade.spec.task.LazyResult"
TASK_CALL = f"{TASK}.__call__"
#: ``@cs.task`` and ``@cs.task(...)``'s decorator, whose result the plugin corrects for generic
#: functions.
TASK_DECORATORS = frozenset({"cascade.spec.task.task", "cascade.spec.task.TaskDecorator.__call__"})

#: Read-only collections whose items may be LazyResults: covariant, so an item type can be
#: widened in place (``Sequence[int]`` takes a ``Sequence[int | LazyResult[int]]``).
_COVARIANT = frozenset(
    {
        "typing.Sequence",
        "typing.Iterable",
        "typing.Collection",
        "typing.AbstractSet",
        "builtins.frozenset",
    }
)


def _task_parameters(task: ProperType) -> Parameters | None:
    """The parameters ``P`` of a ``Task[P, R]``, when mypy knows them."""
    if not isinstance(task, Instance) or task.type.fullname != TASK or not task.args:
        return None
    params = get_proper_type(task.args[0])
    if isinstance(params, Parameters) and not params.is_ellipsis_args:
        return params
    return None


def _task_name(context: Context) -> str:
    """The task as the call names it (``add`` in ``add(1, 2)`` or ``steps.add(1, 2)``)."""
    if isinstance(context, CallExpr) and isinstance(context.callee, (NameExpr, MemberExpr)):
        return context.callee.name
    return "task"


def accepting_lazy(declared: Type, lazy: TypeInfo) -> Type:
    """What a task call takes for a parameter declared ``declared``: the value itself or a
    LazyResult of it (``lazy`` is LazyResult's class), and containers that hold LazyResults
    of their items."""
    proper = get_proper_type(declared)
    if isinstance(proper, AnyType):
        return declared
    accepted: list[Type] = [declared, Instance(lazy, [declared])]
    if isinstance(proper, UnionType):  # Optional[list[int]] takes [LazyResult[int]] too
        accepted += [accepting_lazy(item, lazy) for item in proper.items]
    elif isinstance(proper, TupleType):  # fixed-length: tuple[int, str]
        items = [accepting_lazy(item, lazy) for item in proper.items]
        accepted.append(proper.copy_modified(items=items))
    elif isinstance(proper, Instance) and proper.args:
        name = proper.type.fullname
        if name == "builtins.list":
            # Any sequence of items or LazyResults of them: a list literal mixing both, a
            # list of LazyResults (mypy's lists are invariant, so no one list type covers
            # all of them). A tuple passes too, which the task would get as a tuple.
            args = [accepting_lazy(proper.args[0], lazy)]
            accepted = [Instance(_sequence(proper), args), accepted[1]]
        elif name == "builtins.tuple" or name in _COVARIANT:
            args = [accepting_lazy(item, lazy) for item in proper.args]
            accepted.append(proper.copy_modified(args=args))
        elif name in ("builtins.dict", "typing.Mapping") and len(proper.args) == 2:
            key, value = proper.args
            args = [key, accepting_lazy(value, lazy)]
            accepted = [Instance(_mapping(proper), args), accepted[1]]
    return UnionType.make_union(accepted)


def _sequence(listed: Instance) -> TypeInfo:
    """``typing.Sequence``'s class, found among ``list``'s bases."""
    return next(b.type for b in _bases(listed) if b.type.fullname == "typing.Sequence")


def _mapping(mapped: Instance) -> TypeInfo:
    """``typing.Mapping``'s class, found among ``dict``'s bases (or the type itself)."""
    return next(b.type for b in _bases(mapped) if b.type.fullname == "typing.Mapping")


def _bases(instance: Instance) -> list[Instance]:
    found, stack = [instance], [instance]
    while stack:
        for base in stack.pop().type.bases:
            found.append(base)
            stack.append(base)
    return found


def _lazy_result_class(call_returns: Type) -> TypeInfo | None:
    """LazyResult's class, from what a task call returns (a ``LazyResult[R]``)."""
    returned = get_proper_type(call_returns)
    if isinstance(returned, Instance) and returned.type.fullname == LAZY_RESULT:
        return returned.type
    return None


def task_call_signature(ctx: MethodSigContext) -> CallableType:
    """``add(...)`` for a ``Task[P, R]``: the parameters of ``P``, each widened to take
    LazyResults, named after the task so that mypy's messages name it."""
    params = _task_parameters(ctx.type)
    lazy = _lazy_result_class(ctx.default_signature.ret_type)
    if params is None or lazy is None:
        return ctx.default_signature
    accepted = [accepting_lazy(t, lazy) for t in params.arg_types]
    for index, declared in enumerate(params.arg_types):
        if isinstance(get_proper_type(declared), TypeVarType) and len(ctx.args[index]) == 1:
            # ``T`` of a generic task: ``T | LazyResult[T]`` leaves mypy two ways to solve
            # ``T`` for a LazyResult argument, and it picks neither; say which one it is.
            given = get_proper_type(ctx.api.get_expression_type(ctx.args[index][0]))
            given_lazy = isinstance(given, Instance) and given.type.has_base(LAZY_RESULT)
            accepted[index] = Instance(lazy, [declared]) if given_lazy else declared
    return ctx.default_signature.copy_modified(
        arg_types=accepted,
        arg_kinds=list(params.arg_kinds),
        arg_names=list(params.arg_names),
        variables=[*ctx.default_signature.variables, *params.variables],
        name=_task_name(ctx.context),
        definition=None,  # mypy would point at Task.__call__, not at the task's function
    )


def name_the_parameters(ctx: MethodContext) -> Type:
    """After mypy's own error for an argument of the wrong type, a note naming the parameter
    it was given for and its declared type (mypy's message gives the argument's position)."""
    params = _task_parameters(ctx.type)
    lazy = _lazy_result_class(ctx.default_return_type)
    if params is None or lazy is None:
        return ctx.default_return_type
    task = _task_name(ctx.context)
    for index, actuals in enumerate(ctx.arg_types):
        if index >= len(params.arg_types):
            break
        declared = params.arg_types[index]
        if has_type_vars(declared):
            continue  # solved per call: mypy's own message says what was expected
        accepted = accepting_lazy(declared, lazy)
        for actual, expression in zip(actuals, ctx.args[index], strict=False):
            if not is_subtype(actual, accepted):
                name = params.arg_names[index] or f"#{index + 1}"
                shown = format_type(declared, ctx.api.options)
                ctx.api.msg.note(
                    f'Parameter "{name}" of task "{task}" is declared {shown}: '
                    "it takes that type or a LazyResult (or cs.Param) of it",
                    expression,
                )
    return ctx.default_return_type


def generic_task(ctx: FunctionContext | MethodContext) -> Type:
    """``@cs.task`` on a generic function (``def ident(x: T) -> T``): ``Task[[x: T], T]``.

    The decorator's overloads tell ``async def`` functions from others by their return type,
    and a generic function's ``T`` matches the coroutine one; the function's definition says
    which it really is. Calls then solve ``T`` from their arguments."""
    task = get_proper_type(ctx.default_return_type)
    declared = get_proper_type(ctx.arg_types[0][0]) if ctx.arg_types and ctx.arg_types[0] else None
    if not (
        isinstance(task, Instance)
        and task.type.fullname == TASK
        and isinstance(declared, CallableType)
        and declared.is_generic()
    ):
        return ctx.default_return_type
    returns = declared.ret_type
    awaited = get_proper_type(returns)
    if (
        isinstance(declared.definition, FuncDef)
        and declared.definition.is_coroutine
        and isinstance(awaited, Instance)
        and awaited.type.fullname == "typing.Coroutine"
    ):
        returns = awaited.args[-1]
    params = Parameters(
        declared.arg_types,
        declared.arg_kinds,
        declared.arg_names,
        variables=declared.variables,
    )
    return task.copy_modified(args=[params, returns])


class CascadePlugin(Plugin):
    """Task calls: signatures from the task's function (see the module docstring)."""

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], CallableType] | None:
        return task_call_signature if fullname == TASK_CALL else None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        if fullname in TASK_DECORATORS:
            return generic_task
        return name_the_parameters if fullname == TASK_CALL else None

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        return generic_task if fullname in TASK_DECORATORS else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point: ``plugins = ["cascade.mypy"]``."""
    return CascadePlugin


__all__ = ["CascadePlugin", "accepting_lazy", "plugin"]
