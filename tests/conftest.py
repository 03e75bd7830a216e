"""Shared by every test folder: one headless Chromium for the tests that look at a page (the
run report, the documentation site, ``cascade ui``), Debian's browser at /usr/bin/chromium,
which ``python dev.py test`` installs, driven by Playwright for Python (never a browser
download)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

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


@pytest.fixture
def chromium_browser() -> Iterator[Any]:
    """A launched Chromium for one test. Not shared longer: Playwright's sync API keeps an
    event loop running in the main thread while it is open, and ``asyncio.run`` in later tests
    would find it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"{CHROMIUM} is not installed: `python dev.py test` installs Debian's chromium "
            "package with apt-get when it runs as root; this machine could not"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
