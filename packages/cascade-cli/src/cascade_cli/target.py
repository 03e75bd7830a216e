"""Turning a ``TARGET`` string into a graph: ``path/to/file.py:name`` or ``package.module:name``.

Every way this can go wrong is a ``TargetError`` whose message names what is wrong and lists
what the module does offer, so the command can exit 2 with something actionable.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cascade import LazyResult, Param, ResourceDefinition, Task, unmapped

SHAPE_HINT = (
    "TARGET must name a LazyResult, a list or dict of LazyResults, or a zero-argument "
    "function returning one"
)


class TargetError(Exception):
    """The target cannot be loaded or is not something ``cascade`` can run."""


@dataclass
class Target:
    """A loaded target: the graph to run, the text it came from, and the module's resources."""

    spec: str
    graph: Any
    module: ModuleType
    resources: list[ResourceDefinition] = field(default_factory=list)


def split_target(spec: str) -> tuple[str, str]:
    """``"a/b.py:name"`` → ``("a/b.py", "name")``, split on the last colon (so Windows drive
    letters survive)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise TargetError(
            f"'{spec}' is not a target; write path/to/file.py:name or package.module:name "
            "(the name of a LazyResult, or of a function that builds one)"
        )
    return where, name


def _looks_like_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where or os.path.isfile(where)


def _import_failure(what: str, exc: BaseException) -> TargetError:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    # Drop the frames of importlib itself; keep the user's.
    text = "".join(line for line in frames if "<frozen importlib" not in line).rstrip()
    return TargetError(f"importing {what} raised {type(exc).__name__}: {exc}\n{text}")


def load_module(where: str) -> ModuleType:
    """Import a file (its directory goes first on ``sys.path``, so its sibling imports work and
    process workers can import it again by name) or a dotted module (from the current
    directory, as ``python -m`` does)."""
    if _looks_like_path(where):
        path = Path(where)
        if not path.is_file():
            raise TargetError(f"file '{where}' does not exist (looked in {Path.cwd()})")
        path = path.resolve()
        directory = str(path.parent)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        name = path.stem
        existing = sys.modules.get(name)
        if existing is not None:
            if getattr(existing, "__file__", None) and Path(existing.__file__ or "") == path:
                return existing
            name = f"__cascade_target_{name}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"'{where}' cannot be imported as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(name, None)
            raise _import_failure(f"'{where}'", exc) from exc
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (where == exc.name or where.startswith(exc.name + ".")):
            raise TargetError(
                f"no module named '{exc.name}' (while importing '{where}'); give a file path "
                "(path/to/file.py:name) or a module importable from the current directory"
            ) from exc
        raise _import_failure(f"module '{where}'", exc) from exc
    except (Exception, SystemExit) as exc:
        raise _import_failure(f"module '{where}'", exc) from exc


def candidates(module: ModuleType) -> list[str]:
    """Names in ``module`` that could be targets: LazyResults, collections of them, and
    zero-argument functions defined there."""
    found = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or isinstance(value, Param):
            continue
        if is_graph(value):
            found.append(attr)
        elif _is_builder(value, module):
            found.append(f"{attr}()")
    return found


def _is_builder(value: Any, module: ModuleType) -> bool:
    if isinstance(value, Task):
        return _takes_no_arguments(value.fn)
    if not (
        inspect.isfunction(value)
        and value.__module__ == module.__name__
        and _takes_no_arguments(value)
    ):
        return False
    # A function annotated to return something else (``def main() -> int``) is not a builder.
    returns = inspect.signature(value).return_annotation
    if returns is inspect.Signature.empty:
        return True
    text = returns if isinstance(returns, str) else repr(returns)
    return any(word in text for word in ("LazyResult", "Param", "list", "dict", "tuple", "Any"))


def is_graph(value: Any) -> bool:
    """A LazyResult, or a non-empty list, tuple or dict holding only LazyResults."""
    if isinstance(value, LazyResult):
        return not isinstance(value, Param)
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, LazyResult) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, LazyResult) for v in value.values())
    return False


def _takes_no_arguments(fn: Any) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def _offer(module: ModuleType) -> str:
    names = candidates(module)
    if not names:
        return f"'{module.__name__}' defines no LazyResults or zero-argument functions."
    return f"Targets in '{module.__name__}': {', '.join(names)}"


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def resolve(module: ModuleType, name: str, spec: str) -> Any:
    """Look ``name`` (dotted for attributes of attributes) up in ``module`` and turn it into a
    run target, calling it if it is a zero-argument function."""
    value: Any = module
    for part in name.split("."):
        if not hasattr(value, part):
            raise TargetError(f"'{spec}': '{module.__name__}' has no '{name}'. {_offer(module)}")
        value = getattr(value, part)
    if is_graph(value):
        return value
    if isinstance(value, Param):
        raise TargetError(f"'{spec}' is a cs.Param, an input; {SHAPE_HINT}. {_offer(module)}")
    if callable(value) and not isinstance(value, type):
        fn = value.fn if isinstance(value, Task) else value
        if not _takes_no_arguments(fn):
            raise TargetError(
                f"'{spec}' needs arguments ({_signature(fn)}); {SHAPE_HINT}. {_offer(module)}"
            )
        try:
            built = value()
        except Exception as exc:
            raise TargetError(
                f"calling '{spec}' to build the graph raised {type(exc).__name__}: {exc}\n"
                + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
            ) from exc
        if is_graph(built):
            return built
        raise TargetError(f"'{spec}' returned {_describe(built)}; {SHAPE_HINT}")
    raise TargetError(f"'{spec}' is {_describe(value)}; {SHAPE_HINT}. {_offer(module)}")


def _signature(fn: Any) -> str:
    try:
        return f"{getattr(fn, '__name__', 'function')}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def module_resources(module: ModuleType) -> list[ResourceDefinition]:
    """Every ``@cs.resource`` defined at the top level of the target's module: ``cascade run``
    registers them on its engine, as a script would with ``engine.register``."""
    seen: dict[str, ResourceDefinition] = {}
    for value in vars(module).values():
        if isinstance(value, ResourceDefinition):
            seen.setdefault(value.name, value)
    return list(seen.values())


def load_target(spec: str) -> Target:
    """Load ``spec`` all the way to a runnable graph."""
    try:
        where, name = split_target(spec)
    except TargetError as exc:
        if _looks_like_path(spec) and os.path.isfile(spec):
            # A file without ``:name``: say which names it offers.
            raise TargetError(f"{exc}. {_offer(load_module(spec))}") from None
        raise
    module = load_module(where)
    graph = resolve(module, name, spec)
    return Target(spec, graph, module, module_resources(module))


def find_params(graph: Any) -> dict[str, Param[Any]]:
    """Every ``cs.Param`` the graph reads, by name, found by walking task arguments,
    conditions and ``.after`` dependencies."""
    found: dict[str, Param[Any]] = {}
    seen: set[int] = set()
    stack: list[Any] = [graph]
    while stack:
        value = stack.pop()
        if isinstance(value, LazyResult):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, Param):
                found.setdefault(value.param_name, value)
                continue
            stack.extend(reversed(value.kwargs.values()))
            stack.extend(reversed(value.args))
            stack.extend(value.after_deps)
            stack.append(value.condition)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, unmapped):
            stack.append(value.value)
    return found


def lazy_results(graph: Any) -> dict[str, LazyResult[Any]]:
    """Every task call (``LazyResult``, params excluded) the graph reaches, by its id: what the
    plan's ``task_id`` names. Walks arguments (nested too), conditions and ``.after``."""
    found: dict[str, LazyResult[Any]] = {}
    seen: set[int] = set()
    stack: list[Any] = [graph]
    while stack:
        value = stack.pop()
        if isinstance(value, LazyResult):
            if id(value) in seen or isinstance(value, Param):
                continue
            seen.add(id(value))
            found[value.id] = value
            stack.extend(value.kwargs.values())
            stack.extend(value.args)
            stack.extend(value.after_deps)
            stack.append(value.condition)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, unmapped):
            stack.append(value.value)
    return found


def iterated_sources(lazy: LazyResult[Any]) -> list[Any]:
    """What a ``.map`` call fans out over: its iterated arguments (literal lists, params or
    upstream LazyResults); empty for a plain call."""
    positions = getattr(lazy, "iterated_args", None)
    names = getattr(lazy, "iterated_kwargs", None)
    if positions is None and names is None:
        return []
    sources = [lazy.args[i] for i in positions or () if i < len(lazy.args)]
    sources += [lazy.kwargs[k] for k in names or () if k in lazy.kwargs]
    return sources
