"""Shared by every test folder: one headless Chromium for the tests that look at a page (the
run report, the documentation site, ``cascade ui``), Debian's browser at /usr/bin/chromium,
which ``python dev.py test`` installs, driven by Playwright for Python (never a browser
download), launched as ``headless_chromium`` says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from headless_chromium import CHROMIUM, installed, launch


@pytest.fixture
def chromium_browser() -> Iterator[Any]:
    """A launched Chromium for one test. Not shared longer: Playwright's sync API keeps an
    event loop running in the main thread while it is open, and ``asyncio.run`` in later tests
    would find it."""
    if not installed():
        pytest.skip(
            f"{CHROMIUM} is not installed: `python dev.py test` installs Debian's chromium "
            "package with apt-get when it runs as root; this machine could not"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()
