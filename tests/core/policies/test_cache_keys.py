"""InputHashCache and the directory store under the faults of issue 11 (items 3 and 22): tasks
made by one factory, module constants, inputs that compare unequal but hashed alike, entry file
modes, a world-writable cache directory and a directory where an entry should be."""

from __future__ import annotations

import collections
import datetime as dt
import os
import stat
import threading
import warnings
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from core_helpers import run

import cascade as cs
from cascade.caching import CacheWarning, stable_hash

pytestmark = pytest.mark.timeout(60)


# -- item 3: what the code reads from outside its arguments ----------------------------------


def make_multiplier(k: Any, calls: list[Any]) -> Any:
    @cs.task(cache=cs.InputHashCache())
    def mul(x: int) -> Any:
        calls.append((k, x))
        return x * k

    return mul


def test_tasks_made_by_one_factory_do_not_share_a_key() -> None:
    calls: list[Any] = []
    double, triple = make_multiplier(2, calls), make_multiplier(3, calls)
    assert run(double(5)) == 10
    assert run(triple(5)) == 15  # the reproduction: it said 10
    assert run([double(5), triple(5)]) == [10, 15]
    assert sorted(calls) == [(2, 5), (3, 5)]  # each ran once, then hit
    # A new factory call with equal values is the same task: it hits.
    fresh: list[Any] = []
    assert run(make_multiplier(2, fresh)(5)) == 10
    assert fresh == []


def test_a_captured_helper_function_counts_with_what_it_captures() -> None:
    def make(k: int) -> Any:
        def scale(x: int) -> int:
            return x * k

        @cs.task(cache=cs.InputHashCache())
        def apply(x: int) -> int:
            return scale(x)

        return apply

    assert run(make(2)(5)) == 10
    assert run(make(3)(5)) == 15


def test_configuration_dicts_captured_by_a_factory_count_by_content() -> None:
    def make(config: dict[str, int]) -> Any:
        @cs.task(cache=cs.InputHashCache())
        def weigh(x: int) -> int:
            return x * config["f"]

        return weigh

    assert run(make({"f": 1})(4)) == 4
    assert run(make({"f": 2})(4)) == 8


_FACTOR = 2
_factor_calls: list[int] = []


@cs.task(cache=cs.InputHashCache())
def scaled(x: int) -> int:
    _factor_calls.append(x)
    return x * _FACTOR


def test_a_changed_module_constant_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _factor_calls.clear()
    assert run(scaled(5)) == 10
    assert run(scaled(5)) == 10
    monkeypatch.setattr(f"{__name__}._FACTOR", 3)
    assert run(scaled(5)) == 15  # a stale entry would say 10
    monkeypatch.setattr(f"{__name__}._FACTOR", 2)
    assert run(scaled(5)) == 10
    assert _factor_calls == [5, 5]


class _Model:
    """An object without a stable hash."""

    def __init__(self, weight: int) -> None:
        self.weight = weight


def test_a_captured_value_without_a_stable_hash_runs_uncached_with_a_warning() -> None:
    calls: list[int] = []
    model = _Model(3)

    @cs.task(cache=cs.InputHashCache())
    def predict(x: int) -> int:
        calls.append(x)
        return x * model.weight

    for _ in range(2):
        with pytest.warns(CacheWarning, match=r"task 'predict'.*captured variable 'model'.*_Model"):
            assert run(predict(2)) == 6
    assert calls == [2, 2]

    by_key = cs.task(predict.fn, name="by_key", cache=cs.InputHashCache(key_fn=lambda c: "k"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert run(by_key(2)) == 6  # key_fn decides the key: the model counts by its type
        assert run(by_key(2)) == 6
    assert calls == [2, 2, 2]


_LOCK = threading.Lock()


@cs.task(cache=cs.InputHashCache())
def locked(x: int) -> int:
    with _LOCK:
        _factor_calls.append(x)
        return x


def test_locks_and_state_the_task_collects_into_do_not_stop_caching() -> None:
    _factor_calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert run(locked(1)) == 1
        assert run(locked(1)) == 1
    assert _factor_calls == [1]


# -- item 3: inputs that are different values must not share a key ---------------------------


def test_ordered_dicts_in_different_orders_do_not_share_a_key() -> None:
    first = collections.OrderedDict([("a", 1), ("b", 2)])
    second = collections.OrderedDict([("b", 2), ("a", 1)])
    assert first != second
    assert stable_hash(first) != stable_hash(second)
    assert stable_hash(first) == stable_hash(collections.OrderedDict([("a", 1), ("b", 2)]))
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})  # dicts: unchanged

    seen: list[Any] = []

    @cs.task(cache=cs.InputHashCache())
    def keys(mapping: Any) -> list[str]:
        seen.append(mapping)
        return list(mapping)

    assert run([keys(first), keys(second)]) == [["a", "b"], ["b", "a"]]
    assert len(seen) == 2


def test_aware_datetimes_in_different_zones_with_one_offset_do_not_share_a_key() -> None:
    london = zoneinfo.ZoneInfo("Europe/London")
    in_london = dt.datetime(2024, 1, 15, 12, tzinfo=london)
    in_utc = dt.datetime(2024, 1, 15, 12, tzinfo=dt.timezone.utc)
    assert in_london.utcoffset() == in_utc.utcoffset()
    assert stable_hash(in_london) != stable_hash(in_utc)
    assert stable_hash(in_london) == stable_hash(dt.datetime(2024, 1, 15, 12, tzinfo=london))
    utc = dt.timezone.utc
    assert stable_hash(dt.time(12, tzinfo=london)) != stable_hash(dt.time(12, tzinfo=utc))
    named = dt.timezone(dt.timedelta(0), "GMT")
    assert stable_hash(dt.datetime(2024, 1, 15, tzinfo=named)) != stable_hash(
        dt.datetime(2024, 1, 15, tzinfo=dt.timezone.utc)
    )

    @cs.task(cache=cs.InputHashCache())
    def zone_name(moment: dt.datetime) -> str | None:
        return moment.tzname()

    assert run([zone_name(in_london), zone_name(in_utc)]) == ["GMT", "UTC"]


# -- item 22: the directory store ------------------------------------------------------------


@cs.task(cache=cs.InputHashCache())
def plain(x: int) -> int:
    return x


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_entry_files_are_not_executable_nor_writable_by_others(cache_dir: Path) -> None:
    run(plain(1))
    (entry,) = cache_dir.glob("*/*.entry")
    mode = stat.S_IMODE(entry.stat().st_mode)
    assert mode & 0o111 == 0, oct(mode)
    assert mode & 0o022 == 0, oct(mode)
    assert mode & 0o600 == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_world_writable_cache_directory_is_warned_about(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True)
    cache_dir.chmod(0o777)
    with pytest.warns(CacheWarning, match=r"writable by every user.*chmod o-w"):
        run(plain(2))
    cache_dir.chmod(0o700)


def test_clear_cache_and_stats_skip_a_directory_named_like_an_entry(cache_dir: Path) -> None:
    run([plain(1), plain(2)])
    odd = cache_dir / "ab" / ("f" * 64 + ".entry")
    odd.mkdir(parents=True)
    assert cs.cache_stats().entries == 2
    assert cs.clear_cache() == 2
    assert odd.is_dir()
    assert cs.cache_stats().entries == 0
