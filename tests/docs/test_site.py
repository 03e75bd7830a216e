"""The documentation site builds, names every public name, and renders offline in a browser.

The site is built once for this module with ``mkdocs build --strict`` (the same build as the
"docs" check of ``python dev.py test``) into a scratch folder. Then:

- every name in ``__all__`` of each public module (``cascade``, its public submodules and the
  packages' public APIs) has an entry in the API reference: an element whose id is the name's
  full path, as mkdocstrings writes it, with its documentation under it;
- no page loads anything from another host (Material's web fonts are off), so the site renders
  where there is no network;
- served on 127.0.0.1, the home page, a tutorial and an API page open in headless Chromium
  (Debian's, driven by Playwright; no browser download), with every request to another host
  blocked and counted: the navigation, a highlighted code block and a reference entry render.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, expect

ROOT = Path(__file__).resolve().parents[2]

# The public modules (the layering contract in the root pyproject.toml names the same ones).
PUBLIC_MODULES = [
    "cascade",
    "cascade.events",
    "cascade.executors",
    "cascade.hookspec",
    "cascade.graph",
    "cascade.caching",
    "cascade.plugins",
    "cascade.records",
    "cascade.testing",
    "cascade_otel",
    "cascade_cli",
    "cascade_cli.hookspecs",
    "cascade_dask",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # The site is built and checked with the main Python (the `docs` check of `python dev.py
    # test` runs there); on 3.10 pip resolves mkdocstrings 1.0.6 with pymdown-extensions 12,
    # whose highlighter it cannot build (TypeError: Highlight.__init__() needs `md`).
    pytest.mark.skipif(
        sys.version_info < (3, 11), reason="the documentation site is built with Python 3.11+"
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return folder


class _Page(html.parser.HTMLParser):
    """The ids of a page, the text under each id'd reference entry, and the resources it
    loads (script, stylesheet, image and font addresses)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag in ("script", "img", "iframe", "source") and values.get("src"):
            self.loads.append(values["src"] or "")
        if tag == "link" and values.get("rel") in ("stylesheet", "preload", "icon", "preconnect"):
            self.loads.append(values.get("href") or "")


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _public_names() -> list[tuple[str, str]]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert hasattr(module, "__all__"), f"{module_name} has no __all__"
        names += [(module_name, name) for name in module.__all__]
    return names


def test_every_public_name_has_an_entry_in_the_reference(site: Path) -> None:
    pages = {p: _parse(p) for p in (site / "reference").rglob("*.html")}
    ids = {i: p for p, page in pages.items() for i in page.ids}
    missing = [f"{m}.{n}" for m, n in _public_names() if f"{m}.{n}" not in ids]
    assert not missing, f"public names with no entry in the API reference: {missing}"
    assert ids["cascade.RetryPolicy"].name == "cascade.html"
    assert ids["cascade.events.TaskRetrying"].name == "events.html"
    assert ids["cascade.hookspec.cascade_register_executors"].name == "hooks.html"


def test_the_reference_shows_no_module_level_name_outside_all(site: Path) -> None:
    ids = {i for p in (site / "reference").rglob("*.html") for i in _parse(p).ids}
    for module_name in PUBLIC_MODULES:
        exported = set(importlib.import_module(module_name).__all__)
        shown = {i.removeprefix(f"{module_name}.") for i in ids if i.startswith(f"{module_name}.")}
        top_level = {name for name in shown if "." not in name}
        submodules = {m.removeprefix(f"{module_name}.") for m in PUBLIC_MODULES}
        assert top_level - submodules <= exported, (module_name, top_level - exported)


def test_every_public_class_and_function_has_a_docstring_of_its_own() -> None:
    bare = []
    for module_name, name in _public_names():
        obj = getattr(importlib.import_module(module_name), name)
        if typing.get_origin(obj) is not None:
            continue  # a type alias (Python 3.10 takes `Callable[...]` for a class)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = (obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__) or ""
        # A dataclass without a docstring gets its signature as one: "Name(field: type, ...)".
        if not doc.strip() or doc.strip().startswith(f"{obj.__name__}("):
            bare.append(f"{module_name}.{name}")
    assert not bare, f"public names without a docstring: {bare}"


def test_retry_policy_is_documented_with_its_fields(site: Path) -> None:
    text = (site / "reference/api/cascade.html").read_text(encoding="utf-8")
    entry = text[text.index('id="cascade.RetryPolicy"') :]
    entry = entry[: entry.index('id="cascade.Pool"')] if 'id="cascade.Pool"' in entry else entry
    for field in ("retries", "delay", "backoff", "max_delay", "jitter", "on"):
        assert f"cascade.RetryPolicy.{field}" in entry, field
    assert "with_retry" in entry


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    remote = {}
    for path in site.rglob("*.html"):
        loads = [u for u in _parse(path).loads if u.startswith(("http:", "https:", "//"))]
        if loads:
            remote[path.relative_to(site).as_posix()] = loads
    assert not remote, f"pages that load from the network: {remote}"
    css = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.css"))
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css


def _links_hook() -> Any:
    spec = importlib.util.spec_from_file_location("links_hook", ROOT / "docs/_hooks/links.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeFile:
    def __init__(self, src_uri: str) -> None:
        self.src_uri = src_uri


class _FakePage:
    def __init__(self, src_uri: str) -> None:
        self.file = _FakeFile(src_uri)


def test_links_out_of_docs_point_at_the_repository_and_a_wrong_one_stops_the_build() -> None:
    hook = _links_hook()
    repository = "https://example.org/cascade"
    config = {"docs_dir": str(ROOT / "docs"), "extra": {"repository": repository}}
    page = _FakePage("tutorials/etl.md")
    text = "[x](../../examples/etl_pipeline.py) [y](../concepts.md#events) [z](https://a.b/c)"
    out = hook.on_page_markdown(text, page=page, config=config, files=None)
    assert out == (
        f"[x]({repository}/blob/main/examples/etl_pipeline.py) [y](../concepts.md#events) "
        "[z](https://a.b/c)"
    )
    with pytest.raises(ValueError, match="no_such_file.py"):
        hook.on_page_markdown("[x](../../no_such_file.py)", page=page, config=config, files=None)
    changelog = hook.on_page_markdown(
        '--8<-- "CHANGELOG.md"\n', page=_FakePage("changelog.md"), config=config, files=None
    )
    assert changelog.startswith("# Changelog")
    assert f"]({repository}/blob/main/CONTRIBUTING.md#releasing)" in changelog


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_site_renders_in_headless_chromium_without_the_network(
    served: str, chromium_browser: Any
) -> None:
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(served):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = chromium_browser.new_page()
    try:
        page.route("**/*", only_here)
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))

        # The home page: the theme's stylesheet applied, and the navigation's sections.
        page.goto(f"{served}/index.html")
        expect(page.locator("article h1").first).to_contain_text("Cascade")
        nav = page.locator("nav.md-nav--primary")
        for section in ("Getting started", "Tutorials", "How-to guides", "Reference"):
            expect(nav.get_by_text(section, exact=True).first).to_be_attached()
        header_height = page.locator("header.md-header").evaluate(
            "element => element.getBoundingClientRect().height"
        )
        assert header_height > 0  # Material's stylesheet laid the header out

        # A tutorial: its code block is highlighted (Pygments' spans).
        page.goto(f"{served}/tutorials/etl.html")
        code = page.locator("div.highlight pre code", has_text="cs.run(").first
        code.scroll_into_view_if_needed()
        expect(code).to_be_visible()
        assert code.locator("span.k, span.kn").count() > 0
        active = page.locator('nav.md-nav--primary a.md-nav__link--active[href="etl.html"]')
        expect(active).to_contain_text("ETL")

        # An API page: RetryPolicy's entry, its signature and its fields.
        page.goto(f"{served}/reference/api/cascade.html#cascade.RetryPolicy")
        entry = page.locator('[id="cascade.RetryPolicy"]')
        expect(entry).to_be_visible()
        expect(entry).to_contain_text("RetryPolicy")
        expect(page.locator('[id="cascade.RetryPolicy.retries"]')).to_be_attached()
        expect(page.locator('[id="cascade.run"]')).to_be_attached()

        # The theme's script and the local search index work: searching finds the entry.
        search = page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("RetryPolicy")
        results = page.locator("li.md-search-result__item")
        expect(results.first).to_be_visible(timeout=30_000)
        expect(page.locator(".md-search-result")).to_contain_text("RetryPolicy")
    finally:
        page.close()
    assert not elsewhere, f"the pages asked another host for: {elsewhere}"
    assert not failed, f"requests that failed: {failed}"
