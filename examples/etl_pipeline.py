"""The main example: regional order CSVs → cleaned, priced rows → a SQLite warehouse.

    python dev.py example                 # from the repository root (sets everything up)
    python examples/etl_pipeline.py --min-quantity 2

It shows params, fan-out over files found at run time (``.map``), fan-in, an async task, retries,
and a ``@cs.resource`` that opens the SQLite database (created on first run) and closes it after
the run — rolling back if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cascade as cs

HERE = Path(__file__).resolve().parent

data_dir = cs.Param("data_dir", default=str(HERE / "data"), description="folder of CSV files")
DEFAULT_DB = HERE / "output" / "warehouse.sqlite3"
min_quantity = cs.Param("min_quantity", default=1, type=int, description="drop smaller orders")


@cs.resource
def warehouse() -> Iterator[sqlite3.Connection]:
    """One connection per run; committed on success, rolled back on failure. The file is
    ``$WAREHOUSE_DB`` if set (tests point it elsewhere), else examples/output/."""
    path = os.environ.get("WAREHOUSE_DB", str(DEFAULT_DB))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute(
        """CREATE TABLE IF NOT EXISTS orders (
               order_id INTEGER PRIMARY KEY, date TEXT, region TEXT, sku TEXT,
               category TEXT, quantity INTEGER, amount_eur REAL, customer TEXT)"""
    )
    try:
        yield connection
    except Exception:
        connection.rollback()
        raise
    else:
        connection.commit()
    finally:
        connection.close()


@cs.task
def order_files(folder: str) -> list[str]:
    """The files to load are only known when the run starts."""
    return sorted(str(p) for p in Path(folder).glob("orders_*.csv"))


@cs.task
def read_csv(path: str) -> dict[str, Any]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    region = Path(path).stem.removeprefix("orders_")
    return {"region": region, "rows": rows}


@cs.task
def read_products(folder: str) -> dict[str, dict[str, Any]]:
    with open(Path(folder) / "products.csv", newline="") as handle:
        return {row["sku"]: row for row in csv.DictReader(handle)}


@cs.task(retries=2)
async def exchange_rates() -> dict[str, float]:
    """Stands in for an HTTP call to a rates service (async, retried on failure)."""
    await asyncio.sleep(0.05)
    return {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


@cs.task
def clean(
    batch: dict[str, Any],
    products: dict[str, dict[str, Any]],
    rates: dict[str, float],
    min_quantity: int,
) -> dict[str, Any]:
    """Validate, price and convert one region's orders; malformed rows are counted, not lost."""
    good, rejected = [], []
    for row in batch["rows"]:
        try:
            quantity = int(row["quantity"])
            product = products[row["sku"]]
            amount = quantity * float(product["unit_price_eur"]) / rates[row["currency"]]
        except (KeyError, ValueError):
            rejected.append(row["order_id"])
            continue
        if quantity < min_quantity:
            continue
        good.append(
            (
                int(row["order_id"]),
                row["date"],
                batch["region"],
                row["sku"],
                product["category"],
                quantity,
                round(amount, 2),
                row["customer"],
            )
        )
    return {"region": batch["region"], "rows": good, "rejected": rejected}


@cs.task
def load(
    batches: list[dict[str, Any]], db: sqlite3.Connection = cs.inject("warehouse")
) -> dict[str, Any]:
    rows = [row for batch in batches for row in batch["rows"]]
    db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return {
        "loaded": len(rows),
        "rejected": {b["region"]: b["rejected"] for b in batches if b["rejected"]},
    }


@cs.task
def summarize(load_report: dict[str, Any], db: sqlite3.Connection = cs.inject("warehouse")) -> str:
    by_region = db.execute(
        "SELECT region, COUNT(*), ROUND(SUM(amount_eur), 2) FROM orders "
        "GROUP BY region ORDER BY region"
    ).fetchall()
    top = db.execute(
        "SELECT category, ROUND(SUM(amount_eur), 2) AS total FROM orders "
        "GROUP BY category ORDER BY total DESC LIMIT 1"
    ).fetchone()
    lines = [f"Loaded {load_report['loaded']} orders into the warehouse."]
    lines += [
        f"  {region:<6} {count:>3} orders  {total:>9.2f} EUR" for region, count, total in by_region
    ]
    for region, ids in load_report["rejected"].items():
        lines.append(f"  rejected in {region}: {', '.join(ids)}")
    if top:
        lines.append(f"Top category: {top[0]} ({top[1]:.2f} EUR)")
    return "\n".join(lines)


def build_pipeline() -> cs.LazyResult[str]:
    """The whole graph; nothing runs until it is passed to cs.run."""
    files = order_files(data_dir)
    batches = clean.map(
        read_csv.map(files),
        products=cs.unmapped(read_products(data_dir)),
        rates=cs.unmapped(exchange_rates()),
        min_quantity=cs.unmapped(min_quantity),
    )
    return summarize(load(batches))


pipeline = build_pipeline()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", default=data_dir.default)
    parser.add_argument("--db-path", default=os.environ.get("WAREHOUSE_DB", str(DEFAULT_DB)))
    parser.add_argument("--min-quantity", default="1")
    parser.add_argument("--quiet", action="store_true", help="no per-task log lines")
    args = parser.parse_args(argv)
    os.environ["WAREHOUSE_DB"] = args.db_path
    summary: str = cs.run(
        pipeline,
        params={"data_dir": args.data_dir, "min_quantity": args.min_quantity},
        log_level=None if args.quiet else "INFO",
    )
    print(summary)
    print(f"Database: {args.db_path}")
    return summary


if __name__ == "__main__":
    main()
