"""How fast ``cascade runs show`` answers on a very wide run: one recorded run of 200,000
tasks (``--tasks``), 1 in 1,000 failing, read back with ``cascade runs show`` (rows of one task
merged with their status totals), ``--status failed``, ``--task NAME`` and ``--limit``, each
against ``cascade runs list`` on the same store (what starting the command and opening the
store cost) in the same run. Target: every ``show`` answers in under 3 seconds on this
machine. The run is recorded once, into a temporary ``CASCADE_HOME``; every command runs
``--runs`` times (default 3), interleaved, and the median wall time and CPU time (user and
system, of the command's process) are reported: on a loaded machine the wall time is mostly
waiting for a core, and the CPU time is what the command itself costs. Nothing in the test
suite asserts on these times.

Run with ``python benchmarks/bench_runs_show.py`` from the dev environment.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 3.0

FLOW = """
import cascade as cs


@cs.task
async def item(i: int) -> int:
    if i % 1000 == 999:
        raise ValueError(f"item {i} is bad")
    return i


@cs.task
def count(values: list) -> int:
    return len(values)


def wide(n):
    return count(item.map(list(range(n))))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks in the run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    cascade = str(Path(sys.executable).with_name("cascade"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "flow.py").write_text(FLOW)
        env = {**os.environ, "CASCADE_HOME": str(root / "home"), "PYTHONPATH": str(root)}
        env.pop("CASCADE_CACHE_DIR", None)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import cascade as cs, flow\n"
                "try:\n"
                f"    cs.run(flow.wide({args.tasks}), record=True, log_level=None,"
                " on_failure='continue')\n"
                "except cs.RunFailed:\n"
                "    pass\n",
            ],
            env=env,
            cwd=root,
            check=True,
        )
        recorded = time.perf_counter() - started
        commands = {
            "runs list": ["runs", "list"],
            "runs show": ["runs", "show", "last"],
            "runs show --status failed": ["runs", "show", "last", "--status", "failed"],
            "runs show --task item --limit 20": [
                "runs",
                "show",
                "last",
                "--task",
                "item",
                "--limit",
                "20",
            ],
            "runs show --output json --status failed": [
                "runs",
                "show",
                "last",
                "--output",
                "json",
                "--status",
                "failed",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        lines: dict[str, int] = {}
        for _ in range(args.runs):
            for name, command in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                began = time.perf_counter()
                done = subprocess.run(
                    [cascade, *command], env=env, cwd=root, capture_output=True, check=True
                )
                times[name].append(time.perf_counter() - began)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
                lines[name] = done.stdout.count(b"\n")
    figures = {name: statistics.median(found) for name, found in times.items()}
    cpu_figures = {name: statistics.median(found) for name, found in cpu.items()}
    base = figures["runs list"]
    if args.json:
        print(
            json.dumps(
                {
                    "tasks": args.tasks,
                    "record_seconds": recorded,
                    "seconds": figures,
                    "cpu_seconds": cpu_figures,
                }
            )
        )
        return 0
    print(f"`cascade runs show` on a run of {args.tasks} tasks (recorded in {recorded:.1f} s)")
    print("| command | median wall (s) | vs runs list | median CPU (s) | lines printed |")
    print("|---|---|---|---|---|")
    for name, seconds in figures.items():
        print(
            f"| {name} | {seconds:.2f} | {seconds / base:.2f}x | {cpu_figures[name]:.2f} "
            f"| {lines[name]} |"
        )
    worst = max(v for k, v in figures.items() if k != "runs list")
    worst_cpu = max(v for k, v in cpu_figures.items() if k != "runs list")
    verdict = "within" if worst <= TARGET_SECONDS else "over"
    print(
        f"slowest show: {worst:.2f} s wall, {worst_cpu:.2f} s CPU ({verdict} the "
        f"{TARGET_SECONDS:.0f} s target; load average {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
