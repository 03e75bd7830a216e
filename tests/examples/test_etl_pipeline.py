"""The README's main example, run as a newcomer runs it, against a real SQLite file."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "etl_pipeline.py"

pytestmark = pytest.mark.timeout(120)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WAREHOUSE_DB": str(tmp_path / "warehouse.sqlite3")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def test_example_loads_every_valid_order_into_sqlite(tmp_path):
    result = _run(tmp_path)
    assert "Loaded 117 orders into the warehouse." in result.stdout
    assert "rejected in north: 1014" in result.stdout
    assert "read_csv[0] succeeded" in result.stderr and "load succeeded" in result.stderr
    with sqlite3.connect(tmp_path / "warehouse.sqlite3") as db:
        regions = dict(db.execute("SELECT region, COUNT(*) FROM orders GROUP BY region"))
        assert regions == {"east": 39, "north": 39, "south": 39}
        (rejected,) = db.execute("SELECT COUNT(*) FROM orders WHERE order_id = 1014").fetchone()
        assert rejected == 0
        (usd,) = db.execute("SELECT amount_eur FROM orders WHERE order_id = 1042").fetchone()
        assert usd > 0


def test_example_is_idempotent_and_takes_params(tmp_path):
    _run(tmp_path, "--quiet")
    second = _run(tmp_path, "--quiet", "--min-quantity", "4")
    assert second.stderr == ""
    with sqlite3.connect(tmp_path / "warehouse.sqlite3") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM orders").fetchone()
    assert count == 117  # re-running replaces rows; it never duplicates them
    assert "Loaded" in second.stdout and "117" not in second.stdout.splitlines()[0]
