"""Cache warnings as a new user meets them (field report): a warning about an input without a
stable hash points at the user's own line, not inside Cascade, and gives its advice once."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import pytest

import cascade as cs
from cascade.caching import CacheWarning

pytestmark = pytest.mark.timeout(60)


@cs.task(cache=cs.InputHashCache(store="memory"))
def features(config: dict[str, object]) -> int:
    return len(config)


def test_an_unhashable_input_warns_at_the_users_call_with_the_advice_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cs.run(features({"model": threading.Lock()}), log_level=None)  # the line
    assert result == 1
    found = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(found) == 1
    warning = found[0]
    assert Path(warning.filename) == Path(__file__)
    assert warning.lineno == _marked_line()
    message = str(warning.message)
    assert "argument 'config' has no stable hash" in message
    assert "(at config['model'])" in message
    assert message.count("__cascade_hash__") == 1
    assert message.count("key_fn=") == 1


def _marked_line() -> int:
    """The line of the ``cs.run`` call above (marked ``# the line``)."""
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.endswith("# the line"))


def test_stable_hash_still_gives_its_advice_to_direct_callers():
    from cascade.caching import stable_hash

    with pytest.raises(TypeError) as caught:
        stable_hash({"model": threading.Lock()})
    assert "define __cascade_hash__ on the class, or pass key_fn=" in str(caught.value)
