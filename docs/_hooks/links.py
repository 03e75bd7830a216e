"""MkDocs hook: links that leave docs/ point at the repository instead.

The pages are read in two places: on the repository host, where ``../examples/x.py`` is a file
beside the docs, and on the built site, which holds only docs/. This hook rewrites every
relative link whose target is a file or folder of the repository outside docs/ into a link to
that file on the repository (``extra.repository`` in mkdocs.yml), so both readings work, and a
link to something that does not exist stops the build.

A page may also take in a file of the repository whole, with a line ``--8<-- "CHANGELOG.md"``
(a path from the repository root): the changelog page does, so that CHANGELOG.md stays the one
copy. The included text's links are read relative to the root, where that file lives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# [text](target) and [text](target "title"); not absolute URLs (checked in rewrite).
_LINK = re.compile(r"\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?(?P<rest>[^)]*)\)")
_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"[ \t]*$', re.M)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Take in the included files, then rewrite the links (see the module docstring)."""
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    repository = config["extra"]["repository"].rstrip("/")
    name = page.file.src_uri

    def links(text: str, base: Path) -> str:
        def rewrite(match: re.Match[str]) -> str:
            target = match["target"]
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                return match.group(0)
            resolved = (base / target).resolve()
            if resolved.is_relative_to(docs) or not resolved.is_relative_to(root):
                return match.group(0)  # a page of the site (MkDocs checks it)
            if not resolved.exists():
                raise ValueError(f"{name}: the link {target!r} names nothing in the repository")
            kind = "tree" if resolved.is_dir() else "blob"
            url = f"{repository}/{kind}/main/{resolved.relative_to(root).as_posix()}"
            return f"]({url}{match['anchor'] or ''}{match['rest']})"

        return _LINK.sub(rewrite, text)

    def include(relative: str) -> str:
        path = root / relative
        if not path.is_file():
            raise ValueError(f"{name}: cannot include {relative!r}: no such file")
        return links(path.read_text(encoding="utf-8"), root)

    pieces = _INCLUDE.split(markdown)  # text, included path, text, included path, ..., text
    return "".join(
        include(piece) if i % 2 else links(piece, (docs / name).parent)
        for i, piece in enumerate(pieces)
    )
