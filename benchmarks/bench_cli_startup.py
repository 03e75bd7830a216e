"""How fast the ``cascade`` command starts: ``cascade --help`` and ``cascade --version`` against
an empty interpreter (``python -c pass``), measured in the same run.

Run with ``python benchmarks/bench_cli_startup.py`` from the dev environment (it uses the
``cascade`` script beside the running interpreter). Every command runs ``--runs`` times
(default 10) after one warm-up, interleaved so the drift of a shared, noisy machine hits each
alike, and the median wall time is reported. Target: ``cascade --help`` and ``cascade --version``
each take <= 200 ms. ``--help`` lists plugin commands, so it loads the installed plugins (and
with them ``import cascade``); ``--version`` loads neither. Nothing in the test suite asserts on
these times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_MS = 200.0
TIMED = ("cascade --help", "cascade --version")


def find_cascade() -> str:
    beside = Path(sys.executable).with_name("cascade.exe" if os.name == "nt" else "cascade")
    if beside.exists():
        return str(beside)
    found = shutil.which("cascade")
    if found is None:
        sys.exit("no `cascade` script found; install packages/cascade-cli (python dev.py test)")
    return found


def wall_ms(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    cascade = find_cascade()
    env = dict(os.environ)
    no_plugins = {**env, "CASCADE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "python -c 'import cascade'": ([sys.executable, "-c", "import cascade"], env),
        "cascade --version": ([cascade, "--version"], env),
        "cascade --help": ([cascade, "--help"], env),
        "cascade --help (plugin autoload off)": ([cascade, "--help"], no_plugins),
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for command, command_env in commands.values():
        wall_ms(command, command_env)  # warm the OS file cache
    for _ in range(args.runs):
        for name, (command, command_env) in commands.items():
            samples[name].append(wall_ms(command, command_env))

    medians = {name: statistics.median(values) for name, values in samples.items()}
    empty = medians["python -c pass"]
    if args.json:
        print(json.dumps({"runs": args.runs, "median_ms": medians, "target_ms": TARGET_MS}))
    else:
        print(f"median of {args.runs} runs; empty interpreter {empty:.0f} ms\n")
        print("| command | median | over `python -c pass` | target |")
        print("|---|---|---|---|")
        for name, median in medians.items():
            target = f"<= {TARGET_MS:.0f} ms" if name in TIMED else ""
            print(f"| `{name}` | {median:.0f} ms | {median - empty:+.0f} ms | {target} |")
    over = [name for name in TIMED if medians[name] > TARGET_MS]
    if over and not args.json:
        print(f"\nover target: {', '.join(over)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
