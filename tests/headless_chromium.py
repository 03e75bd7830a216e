"""Debian's Chromium as the tests and the benchmarks drive it, headless, through Playwright for
Python: where it is (``python dev.py test`` installs the ``chromium`` package; a browser is never
downloaded) and the flags this machine needs. ``tests/conftest.py`` and
``benchmarks/bench_ui.py`` both launch it from here, so the two never drift apart."""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = "/usr/bin/chromium"
#: As this machine needs: no sandbox as root, and no background traffic to the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def installed() -> bool:
    """Whether the browser is there to launch."""
    return os.access(CHROMIUM, os.X_OK)


def launch(playwright: Any) -> Any:
    """A headless Chromium from a started Playwright (``sync_playwright()``'s object)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
