"""Checking a task call against its function's signature when the call is written, so a wrong
argument fails where it was written rather than in the middle of a run."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any


class SignatureCheck:
    """Cheap build-time check that a call fits the function's signature, so a wrong argument
    fails where it was written rather than in the middle of a run."""

    __slots__ = (
        "enough_positional",
        "max_positional",
        "name",
        "names",
        "open_args",
        "open_kwargs",
        "plain_counts",
        "required",
    )

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.name = name
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = []
            self.open_args = self.open_kwargs = True
        else:
            kinds = {p.kind for p in params}
            self.open_args = inspect.Parameter.VAR_POSITIONAL in kinds
            self.open_kwargs = inspect.Parameter.VAR_KEYWORD in kinds
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.max_positional = len(positional)
        self.names = frozenset(p.name for p in params if p.kind is not p.POSITIONAL_ONLY)
        self.required = tuple(
            (i if p.kind is not p.KEYWORD_ONLY else -1, p.name)
            for i, p in enumerate(params)
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        #: A call passing this many positional arguments (and no keywords) has every required
        #: one, so the check per call skips the loop over them: this check runs for every
        #: call a graph is built from.
        self.enough_positional = (
            sys.maxsize
            if any(index < 0 for index, _ in self.required)
            else max((index + 1 for index, _ in self.required), default=0)
        )
        #: The numbers of positional arguments that a call without keywords may pass and that
        #: need no check at all: ``Task.__call__`` tests ``len(args) in plain_counts`` (one
        #: test in C) before calling the check, as most calls pass (the calls row of
        #: ``benchmarks/run.py``).
        self.plain_counts = range(
            self.enough_positional, sys.maxsize if self.open_args else self.max_positional + 1
        )

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(args) > self.max_positional and not self.open_args:
            raise TypeError(
                f"task '{self.name}' takes {self.max_positional} positional argument(s) "
                f"but {len(args)} were given"
            )
        if kwargs and not self.open_kwargs:
            for key in kwargs:
                if key not in self.names:
                    raise TypeError(f"task '{self.name}' got an unexpected argument '{key}'")
        if kwargs or len(args) < self.enough_positional:
            for index, pname in self.required:
                if (index < 0 or index >= len(args)) and pname not in kwargs:
                    raise TypeError(f"task '{self.name}' is missing the argument '{pname}'")
