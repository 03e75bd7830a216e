"""A real Dask cluster for the dask tests: one ``LocalCluster`` of two single-threaded worker
processes on 127.0.0.1 per test module, and a synchronous client to inspect it.

Task functions live in the test modules (not here): workers import them by module name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP routes: any free port
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def dask_client(dask_cluster: Any) -> Iterator[Any]:
    client = distributed.Client(dask_cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def client(dask_client: Any) -> Any:
    """The module's client, after checking both workers are up (a test may have killed one)."""
    dask_client.wait_for_workers(2, timeout=30)
    return dask_client
