"""Names users recognise for each call of a task: ``@cs.task(run_name="fetch-{page}")``.

A run name is a format string over the call's arguments by parameter name (checked when the
task is declared: a field that is not a parameter is an error naming it), or a callable
that takes the call's arguments as the task does and returns the name. Map items are named
by their own item the same way. The name is worked out when a call's inputs are known (an
upstream result is a value by then) and travels in ``TaskNamed``; logs, the live display,
run records, the report and traces show it, while task names, which group calls and name
trace spans, stay as they are. A callable that raises names the call ``task[run_name
failed: ...]`` rather than failing it: naming is observation, never control.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable
from typing import Any

#: A run name longer than this is cut (it is a label, not a payload).
MAX_RUN_NAME = 200


def check_run_name(run_name: Any, fn: Callable[..., Any], owner: str) -> Any:
    """Validate ``run_name=`` for a task whose function is ``fn``: a format string whose
    fields are parameters of ``fn``, or a callable; ``None`` for none."""
    if run_name is None or callable(run_name):
        return run_name
    if not isinstance(run_name, str) or not run_name:
        raise TypeError(
            f"{owner}: run_name= takes a format string such as 'fetch-{{page}}' or a callable "
            f"taking the call's arguments, got {run_name!r}"
        )
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(run_name) if field]
    except ValueError as exc:
        raise ValueError(f"{owner}: run_name {run_name!r} is not a format string: {exc}") from None
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return run_name
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for field in fields:
        name = field.split(".", 1)[0].split("[", 1)[0]
        if name.isdigit() or not name:
            raise ValueError(
                f"{owner}: run_name {run_name!r} uses a positional field {{{field}}}; name the "
                f"parameter instead ({', '.join(parameters) or 'the task has none'})"
            )
        if name not in parameters and not open_kwargs:
            raise ValueError(
                f"{owner}: run_name {run_name!r} uses {{{name}}}, which is not a parameter of "
                f"the task (its parameters: {', '.join(parameters) or 'none'})"
            )
    return run_name


def call_name(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The run name of one call of ``task`` (which has one) with these arguments."""
    run_name = task.run_name
    try:
        if callable(run_name):
            name = str(run_name(*args, **kwargs))
        else:
            bound = inspect.signature(task.fn).bind_partial(*args, **kwargs)
            bound.apply_defaults()
            name = run_name.format(**bound.arguments)
    except Exception as exc:
        name = f"{task.name}[run_name failed: {type(exc).__name__}: {exc}]"
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 3] + "..."


__all__ = ["MAX_RUN_NAME", "call_name", "check_run_name"]
