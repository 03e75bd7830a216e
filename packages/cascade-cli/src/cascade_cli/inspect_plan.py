"""What ``cascade dry-run``, ``cascade graph`` and ``cascade run TARGET --help`` say about a
graph without running it: each task's policies and injected resources, which cached tasks would
be skipped, resources drawn in graphs, and the params a target takes.

Cache look-ups only read the store (``CachePolicy.lookup``); nothing runs and no resource is set
up. A cached task's inputs must be known without running anything (literals, params, or the
stored results of upstream tasks that would be skipped too); otherwise its cache state is
"unknown until its inputs are computed".
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from cascade import LazyResult, Param, ResourceDefinition, unmapped
from cascade_cli.params import describe_type
from cascade_cli.target import Target, lazy_results

_UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "<unknown>"})()


def policies(lazy: LazyResult[Any]) -> dict[str, Any]:
    """The policies of one call, as data: only those that are set."""
    found: dict[str, Any] = {}
    retry = lazy.retry
    if retry is not None and retry.retries:
        found["retries"] = retry.retries
        if retry.delay:
            found["retry_delay"] = retry.delay
            if retry.backoff != 1:
                found["retry_backoff"] = retry.backoff
    if lazy.timeout is not None:
        found["timeout"] = lazy.timeout
    if lazy.cache is not None:
        found["cache"] = repr(lazy.cache)
    task = lazy.task
    if task is not None and task.concurrency is not None:
        found["concurrency"] = task.concurrency
    if task is not None and task.executor is not None:
        found["executor"] = task.executor if isinstance(task.executor, str) else repr(task.executor)
    pools = getattr(lazy, "pools", ())
    if pools:
        found["pools"] = dict(pools)
    rate = getattr(task, "rate", None)
    if rate is not None:
        found["rate_limit"] = str(rate)
    priority = getattr(lazy, "priority", 0)
    if priority:
        found["priority"] = priority
    if getattr(task, "dynamic", False):
        found["dynamic"] = True
    return found


def _describe_policies(found: Mapping[str, Any]) -> list[str]:
    parts = []
    if "retries" in found:
        delay = f" every {found['retry_delay']:g}s" if "retry_delay" in found else ""
        backoff = f" x{found['retry_backoff']:g}" if "retry_backoff" in found else ""
        parts.append(f"retries {found['retries']}{delay}{backoff}")
    if "timeout" in found:
        parts.append(f"timeout {found['timeout']:g}s")
    if "cache" in found:
        parts.append(f"cache {found['cache']}")
    if "concurrency" in found:
        parts.append(f"concurrency {found['concurrency']}")
    if "executor" in found:
        parts.append(f"executor {found['executor']}")
    if "pools" in found:
        slots = ", ".join(f"{name}×{n}" for name, n in found["pools"].items())
        parts.append(f"pools {slots}")
    if "rate_limit" in found:
        parts.append(f"rate {found['rate_limit']}")
    if "priority" in found:
        parts.append(f"priority {found['priority']}")
    if found.get("dynamic"):
        parts.append("dynamic")
    return parts


def resources_of(lazy: LazyResult[Any], target: Target) -> list[dict[str, Any]]:
    """The resources a call injects: parameter, resource name and scope (when the target's
    module declares it)."""
    known = {definition.name: definition for definition in target.resources}
    task = lazy.task
    found = []
    for parameter, name in getattr(task, "injections", ()) or ():
        definition = known.get(name)
        found.append(
            {
                "parameter": parameter,
                "resource": name,
                "scope": definition.scope if definition is not None else None,
            }
        )
    return found


# -- which cached tasks would hit ------------------------------------------------------------


def _resolve(value: Any, params: Mapping[str, Any], known: Mapping[str, Any]) -> Any:
    """A call argument with params and known upstream values filled in, or ``_UNKNOWN``."""
    if isinstance(value, Param):
        return params.get(value.param_name, _UNKNOWN)
    if isinstance(value, LazyResult):
        return known.get(value.id, _UNKNOWN)
    if isinstance(value, unmapped):
        return _resolve(value.value, params, known)
    if isinstance(value, (list, tuple)):
        items = [_resolve(item, params, known) for item in value]
        if any(item is _UNKNOWN for item in items):
            return _UNKNOWN
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        resolved = {k: _resolve(v, params, known) for k, v in value.items()}
        return _UNKNOWN if any(v is _UNKNOWN for v in resolved.values()) else resolved
    return value


def _lookup(lazy: LazyResult[Any], task_id: str, args: Any, kwargs: Any) -> tuple[bool, Any]:
    from cascade.caching import CacheContext

    policy = lazy.cache
    assert policy is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return policy.lookup(CacheContext(lazy.task, task_id, tuple(args), dict(kwargs)))
        except Exception:
            return False, None


def cache_forecast(target: Target, params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per cached call (by task id): ``status`` ``"hit"`` (it would be skipped), ``"miss"``
    (it would run) or ``"unknown"`` (its inputs are computed by the run), and for a ``.map``
    how many of its ``items`` are stored (``hits``)."""
    from cascade.graph import plan

    calls = lazy_results(target.graph)
    known: dict[str, Any] = {}
    forecast: dict[str, dict[str, Any]] = {}
    for step in plan(target.graph):
        lazy = calls.get(step["task_id"])
        if lazy is None or lazy.cache is None:
            continue
        if lazy.condition is not None and isinstance(lazy.condition, LazyResult):
            forecast[lazy.id] = {"status": "unknown"}
            continue
        args = [_resolve(a, params, known) for a in lazy.args]
        kwargs = {k: _resolve(v, params, known) for k, v in lazy.kwargs.items()}
        if any(a is _UNKNOWN for a in args) or any(v is _UNKNOWN for v in kwargs.values()):
            forecast[lazy.id] = {"status": "unknown"}
            continue
        if step["map"]:
            forecast[lazy.id] = _forecast_map(lazy, args, kwargs, known)
            continue
        hit, value = _lookup(lazy, lazy.id, args, kwargs)
        forecast[lazy.id] = {"status": "hit" if hit else "miss"}
        if hit:
            known[lazy.id] = value
    return forecast


def _forecast_map(
    lazy: LazyResult[Any], args: list[Any], kwargs: dict[str, Any], known: dict[str, Any]
) -> dict[str, Any]:
    # Text, bytes and mappings a param or a task produced are passed whole, as the run does.
    whole = (str, bytes, bytearray, Mapping)
    positions = [
        i for i in getattr(lazy, "iterated_args", ()) or () if not isinstance(args[i], whole)
    ]
    names = [
        k for k in getattr(lazy, "iterated_kwargs", ()) or () if not isinstance(kwargs[k], whole)
    ]
    try:
        columns = [list(args[i]) for i in positions] + [list(kwargs[k]) for k in names]
    except TypeError:
        return {"status": "unknown"}
    count = len(columns[0]) if columns else 0
    if any(len(column) != count for column in columns):
        return {"status": "unknown"}
    hits, values = 0, []
    for k in range(count):
        item_args, item_kwargs = list(args), dict(kwargs)
        for pos, column in zip(positions, columns, strict=False):
            item_args[pos] = column[k]
        for key, column in zip(names, columns[len(positions) :], strict=False):
            item_kwargs[key] = column[k]
        hit, value = _lookup(lazy, f"{lazy.id}[{k}]", item_args, item_kwargs)
        hits += hit
        values.append(value)
    if count and hits == count:
        known[lazy.id] = values
    status = "hit" if count and hits == count else ("partial" if hits else "miss")
    return {"status": status, "hits": hits, "items": count}


def _describe_cache(entry: Mapping[str, Any]) -> str:
    status = entry["status"]
    if "items" in entry:
        text = f"{entry['hits']} of {entry['items']} items stored"
        return text + (": would be skipped" if status == "hit" else ", the rest would run")
    return {
        "hit": "stored: would be skipped (cache hit)",
        "miss": "not stored: would run",
        "unknown": "unknown until its inputs are computed",
    }[status]


# -- the dry run -----------------------------------------------------------------------------


def dry_run_steps(target: Target, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plan with, per step, its policies, resources and cache forecast."""
    from cascade.graph import plan

    calls = lazy_results(target.graph)
    forecast = cache_forecast(target, params)
    steps = []
    for step in plan(target.graph):
        lazy = calls.get(step["task_id"])
        row = dict(step)
        row["call"] = _fill_params(step["call"], params)
        row["policies"] = policies(lazy) if lazy is not None else {}
        row["resources"] = resources_of(lazy, target) if lazy is not None else []
        row["cache"] = forecast.get(step["task_id"])
        steps.append(row)
    return steps


def _fill_params(call: str, params: Mapping[str, Any]) -> str:
    def show(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            return match.group(0)
        text = repr(params[name])
        return f"<param {name}={text if len(text) <= 40 else text[:37] + '...'}>"

    return re.sub(r"<param ([^>=]+)>", show, call)


def dry_run_lines(steps: list[dict[str, Any]], params: Mapping[str, Any]) -> list[str]:
    lines = []
    if params:
        shown = ", ".join(f"{name}={value!r}" for name, value in params.items())
        lines.append(f"params: {shown}")
    lines.append(f"{len(steps)} task(s) would run, in this order:")
    for number, step in enumerate(steps, 1):
        notes = f"   [{'; '.join(step['notes'])}]" if step["notes"] else ""
        lines.append(f"{number:>4}. {step['call']}   -> <{step['task_id']}>{notes}")
        described = _describe_policies(step["policies"])
        if described:
            lines.append(f"        policies: {', '.join(described)}")
        if step["resources"]:
            uses = ", ".join(
                f"{r['resource']} ({r['scope']} scope)" if r["scope"] else r["resource"]
                for r in step["resources"]
            )
            lines.append(f"        resources: {uses}")
        if step["cache"] is not None:
            lines.append(f"        cache: {_describe_cache(step['cache'])}")
    return lines


# -- resources in graphs ---------------------------------------------------------------------


def with_resources(text: str, fmt: str, target: Target) -> str:
    """``cascade graph`` output with the resources tasks inject: one node per resource
    (``resource:NAME``) and a line to every task that uses it (and to resources it injects).
    Task nodes are matched to plan steps in order (both follow the graph's node order)."""
    from cascade.graph import plan

    calls = lazy_results(target.graph)
    steps = plan(target.graph)
    lines = text.rstrip("\n").split("\n")
    if fmt == "mermaid":
        node = re.compile(r'^\s+(n\d+)(\(\[|\[)"')
    else:
        node = re.compile(r'^\s+(n\d+) \[label="')
    task_nodes = []
    for line in lines:
        found = node.match(line)
        if found and not ('"param:' in line and (fmt == "dot" or found.group(2) == "([")):
            task_nodes.append(found.group(1))
    if len(task_nodes) != len(steps):
        return text  # not the shape expected: leave the drawing as it is
    users: dict[str, list[str]] = {}
    for step, node_id in zip(steps, task_nodes, strict=True):
        lazy = calls.get(step["task_id"])
        for _, name in getattr(getattr(lazy, "task", None), "injections", ()) or ():
            users.setdefault(name, []).append(node_id)
    if not users:
        return text
    definitions: dict[str, ResourceDefinition] = {d.name: d for d in target.resources}
    names = list(users)
    for name in list(names):  # resources that resources inject
        definition = definitions.get(name)
        for _, dep in definition.injections if definition is not None else ():
            if dep not in names:
                names.append(dep)
    ids = {name: f"r{i}" for i, name in enumerate(names)}
    extra = []
    closing = lines.pop() if fmt == "dot" else None
    for name in names:
        scope = definitions[name].scope if name in definitions else None
        label = f"resource:{name}" + (f" ({scope} scope)" if scope == "task" else "")
        if fmt == "mermaid":
            extra.append(f'  {ids[name]}[("{label}")]')
        else:
            extra.append(f'  {ids[name]} [label="{label}", shape=cylinder];')
    for name in names:
        targets = list(users.get(name, []))
        definition = definitions.get(name)
        for other in names:
            other_definition = definitions.get(other)
            if other_definition is not None and any(
                dep == name for _, dep in other_definition.injections
            ):
                targets.append(ids[other])
        for node_id in targets:
            if fmt == "mermaid":
                extra.append(f"  {ids[name]} -.- {node_id}")
            else:
                extra.append(f"  {ids[name]} -> {node_id} [style=dotted, arrowhead=none];")
        del definition
    lines.extend(extra)
    if closing is not None:
        lines.append(closing)
    return "\n".join(lines) + "\n"


# -- params in --help ------------------------------------------------------------------------


def params_rows(declared: Mapping[str, Param[Any]]) -> list[tuple[str, str]]:
    """``(name: type, description [default: ...])`` per param, for ``cascade run TARGET
    --help``."""
    rows = []
    for name in sorted(declared):
        param = declared[name]
        kind = describe_type(param.type)
        left = f"{name}: {kind}" if kind else name
        parts = [param.description] if param.description else []
        parts.append("[required]" if param.required else f"[default: {param.default!r}]")
        rows.append((left, " ".join(parts)))
    return rows


__all__ = [
    "cache_forecast",
    "dry_run_lines",
    "dry_run_steps",
    "params_rows",
    "policies",
    "resources_of",
    "with_resources",
]
