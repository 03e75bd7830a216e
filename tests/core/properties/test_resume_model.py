"""Resume against a model of the checkpoint rules: random graphs, some of whose tasks return
graphs at run time (lists of calls, or one call in their place), with calls that fall back,
calls that are skipped, failures in either run, a param only the returned calls read, and
task code and module globals edited between the recorded run and its resume, on the local
and threads executors.

The model says, for the resumed run, which calls take their checkpoint and which run: a call
is restored exactly when it succeeded in the recorded run (not by falling back) with the same
code, globals and inputs; a task that returned a graph is restored as that graph, and each call
in it is judged on its own. The values must be what the edited code gives on a fresh run, and
the recorded run must give what an unrecorded one gives (recording never changes results).
"""

from __future__ import annotations

import importlib
import itertools
import linecache
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cascade as cs

pytestmark = pytest.mark.timeout(300)

#: What ran in the current run, as (task, node, child) and the calls to fail in it.
CALLS: list[tuple[str, int, int | None]] = []
FAIL: set[tuple[str, int, int | None]] = set()


class Injected(Exception):
    """A failure the case asked for."""


def hook(kind: str, node: int, k: int | None = None) -> None:
    """Called by every task of a generated flow (by name, so not part of any key)."""
    CALLS.append((kind, node, k))  # one append: atomic, on the threads executor too
    if (kind, node, k) in FAIL:
        raise Injected(f"{kind} {node} {k}")


def total(values: Any) -> int:
    """The sum of a task's inputs, lists flattened and skipped values (None) as 0."""
    if values is None:
        return 0
    if isinstance(values, list | tuple):
        return sum(total(v) for v in values)
    return int(values)


# -- the flow, written as a module so that its code can be edited between runs -----------------

FLOW = """
import cascade as cs
from test_resume_model import hook, total

#: Read by child_b: a global, part of child_b's key.
OFFSET_B = {offset_b}


@cs.task
def combine(node, *inputs):
    hook("combine", node)
    return node * 1000 + total(inputs) + {v_combine}


@cs.task
def child_a(node, k, base, scale):
    hook("child_a", node, k)
    return (base + k) * scale + {v_a}


@cs.task
def child_b(node, k, base, scale):
    hook("child_b", node, k)
    return (base + k) * scale * 2 + OFFSET_B


@cs.task
def parent(node, shape, children, *inputs):
    hook("parent", node)
    base = total(inputs) + {v_parent}
    calls = []
    for k, (kind, fallback, skip) in enumerate(children):
        child = child_a if kind == "a" else child_b
        call = child(node, k, base, cs.Param("scale", type=int, default=1))
        if fallback:
            call = call.with_fallback(-1)
        if skip:
            call = call.run_if(False)
        calls.append(call)
    return calls[0] if shape == "tail" else calls


@cs.task
def scale_of(scale):
    hook("scale_of", -1)
    return scale
"""

VERSIONED = ("v_combine", "v_a", "offset_b", "v_parent")
CHILD_KIND = {"a": "child_a", "b": "child_b"}


def flow_source(versions: dict[str, int]) -> str:
    return textwrap.dedent(FLOW.format(**versions))


def build(flow: Any, nodes: list[dict[str, Any]]) -> list[Any]:
    lazies: list[Any] = []
    for i, spec in enumerate(nodes):
        inputs = [lazies[p] for p in spec["parents"]]
        if spec["kind"] == "static":
            lazies.append(flow.combine(i, *inputs))
        else:
            lazies.append(flow.parent(i, spec["shape"], spec["children"], *inputs))
    return [*lazies, flow.scale_of(cs.Param("scale", type=int, default=1))]


# -- the model ---------------------------------------------------------------------------------

SKIP = "skipped"
FAILED = "failed"


def model(
    nodes: list[dict[str, Any]],
    versions: dict[str, int],
    scale: int,
    fail: set[tuple[str, int, int | None]],
    checkpoints: set[tuple[Any, ...]],
) -> tuple[list[Any], set[tuple[str, int, int | None]], set[tuple[Any, ...]], bool]:
    """One run with ``on_failure="continue"``: the targets' results (None where skipped or
    failed), the calls that ran, the checkpoints it leaves, and whether it failed."""
    values: list[Any] = []
    ran: set[tuple[str, int, int | None]] = set()
    saved = set(checkpoints)
    failed_any = False

    def call(key: tuple[Any, ...], who: tuple[str, int, int | None]) -> bool:
        """Whether the call succeeds (restored or run); runs it unless it is restored."""
        if key in checkpoints:
            return True
        ran.add(who)
        if who in fail:
            return False
        saved.add(key)
        return True

    for i, spec in enumerate(nodes):
        inputs = [values[p] for p in spec["parents"]]
        if any(v is FAILED for v in inputs):
            values.append(FAILED)
            continue
        if any(v is SKIP for v in inputs):
            values.append(SKIP)
            continue
        plain = repr(inputs)
        if spec["kind"] == "static":
            key = ("combine", versions["v_combine"], i, plain)
            if call(key, ("combine", i, None)):
                values.append(i * 1000 + total(inputs) + versions["v_combine"])
            else:
                values.append(FAILED)
                failed_any = True
            continue
        key = ("parent", versions["v_parent"], i, spec["shape"], spec["children"], plain)
        if not call(key, ("parent", i, None)):
            values.append(FAILED)
            failed_any = True
            continue
        base = total(inputs) + versions["v_parent"]
        results: list[Any] = []
        for k, (kind, fallback, skip) in enumerate(spec["children"]):
            if skip:
                results.append(SKIP)
                continue
            name = CHILD_KIND[kind]
            code = versions["v_a"] if kind == "a" else versions["offset_b"]
            child_key = (name, code, i, k, base, scale)
            if call(child_key, (name, i, k)):
                if kind == "a":
                    results.append((base + k) * scale + versions["v_a"])
                else:
                    results.append((base + k) * scale * 2 + versions["offset_b"])
            elif fallback:
                results.append(-1)
            else:
                results.append(FAILED)
                failed_any = True
        if any(r is FAILED for r in results):
            values.append(FAILED)
        elif spec["shape"] == "tail":
            values.append(results[0])  # the call took the parent's place: skipped with it
        else:
            values.append([None if r is SKIP else r for r in results])
    if call(("scale_of", scale), ("scale_of", -1, None)):
        values.append(scale)
    else:
        values.append(FAILED)
        failed_any = True
    shown = [None if v is SKIP or v is FAILED else v for v in values]
    return shown, ran, saved, failed_any


# -- the cases ---------------------------------------------------------------------------------


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(1, 5))
    nodes: list[dict[str, Any]] = []
    calls: list[tuple[str, int, int | None]] = []
    for i in range(count):
        parents = sorted(draw(st.sets(st.integers(0, i - 1), max_size=2))) if i else []
        if draw(st.booleans()):
            nodes.append({"kind": "static", "parents": parents})
            calls.append(("combine", i, None))
            continue
        shape = draw(st.sampled_from(["list", "tail"]))
        width = 1 if shape == "tail" else draw(st.integers(1, 3))
        children = tuple(
            (
                draw(st.sampled_from(["a", "b"])),
                draw(st.booleans()),  # falls back
                draw(st.integers(0, 5)) == 0,  # skipped (run_if(False))
            )
            for _ in range(width)
        )
        nodes.append({"kind": "dynamic", "parents": parents, "shape": shape, "children": children})
        calls.append(("parent", i, None))
        calls.extend((CHILD_KIND[c[0]], i, k) for k, c in enumerate(children))
    calls.append(("scale_of", -1, None))
    first = {name: draw(st.integers(0, 3)) for name in VERSIONED}
    edited = draw(st.sets(st.sampled_from(VERSIONED)))
    second = {name: first[name] + (10 if name in edited else 0) for name in VERSIONED}
    return {
        "executor": draw(st.sampled_from(["local", "threads"])),
        "nodes": nodes,
        "versions": (first, second),
        "scales": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "fail": (
            set(draw(st.lists(st.sampled_from(calls), max_size=3))),
            set(draw(st.lists(st.sampled_from(calls), max_size=1))),
        ),
    }


_flows = itertools.count()


def run_case(flow: Any, case: dict[str, Any], scale: int, fail: set[Any], **options: Any) -> Any:
    CALLS.clear()
    FAIL.clear()
    FAIL.update(fail)
    try:
        result = cs.run(
            build(flow, case["nodes"]),
            params={"scale": scale},
            on_failure="continue",
            executor=case["executor"],
            log_level=None,
            **options,
        )
        failed = False
    except cs.RunFailed as exc:
        assert all(isinstance(e, Injected) for e in exc.failures.values()), exc.failures
        result, failed = exc.results, True
    ran = set(CALLS)
    assert len(ran) == len(CALLS), f"a call ran twice: {CALLS}"
    return result, ran, failed


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_resume_matches_the_model_of_the_checkpoint_rules(case: dict[str, Any]) -> None:
    first, second = case["versions"]
    scale1, scale2 = case["scales"]
    fail1, fail2 = case["fail"]
    nodes = case["nodes"]
    name = f"resume_model_flow_{next(_flows)}"
    with tempfile.TemporaryDirectory() as folder:
        module = Path(folder) / f"{name}.py"
        module.write_text(flow_source(first))
        sys.path.insert(0, folder)
        sys.dont_write_bytecode, saved_flag = True, sys.dont_write_bytecode
        try:
            flow = importlib.import_module(name)
            store = str(Path(folder) / "runs.sqlite3")

            # The recorded run gives what an unrecorded one gives, and runs the same calls.
            plain = run_case(flow, case, scale1, fail1)
            recorded = run_case(flow, case, scale1, fail1, record=store)
            assert recorded == plain
            expected_values, expected_ran, checkpoints, expected_failed = model(
                nodes, first, scale1, fail1, set()
            )
            assert recorded == (expected_values, expected_ran, expected_failed)

            # Edit the code, then resume.
            module.write_text(flow_source(second))
            linecache.clearcache()
            flow = importlib.reload(flow)
            resumed = run_case(flow, case, scale2, fail2, record=store, resume="last")
            expected = model(nodes, second, scale2, fail2, checkpoints)
            assert resumed == (expected[0], expected[1], expected[3]), (
                f"resumed (values, ran, failed) differ from the model; expected {expected[:2]}"
            )
        finally:
            sys.dont_write_bytecode = saved_flag
            sys.path.remove(folder)
            sys.modules.pop(name, None)
            CALLS.clear()
            FAIL.clear()
