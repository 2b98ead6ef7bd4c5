"""docs/runbooks.md served as HTML, so the runbook links of every notification resolve in the native lab.

Headings get GitHub's anchors (lower case, punctuation dropped, spaces to hyphens): an alert's section is
`#<alert name in lower case>`, exactly the fragment of its `runbook_url`.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import escape

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Runbooks · Observability Lab</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 920px;
  margin: 0 auto; padding: 12px 24px 80px; line-height: 1.5; color: #1f2328; }}
pre {{ background: #f6f8fa; padding: 10px; overflow-x: auto; border-radius: 6px; }}
code {{ background: #f6f8fa; padding: 0 3px; border-radius: 3px; font-size: 90%; }}
h2 {{ border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 36px; }}
h2:target {{ background: #fff8c5; }}
nav {{ font-size: 14px; }}
</style></head>
<body><nav><a href="/inbox">← Alert inbox</a></nav>
{body}
</body></html>
"""


def anchor(title: str) -> str:
    """GitHub's heading anchor."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return slug.replace(" ", "-")


class Runbooks:
    def __init__(self, path: Path) -> None:
        self.path = path
        # html=False: raw HTML in the markdown is shown as text, not injected into the page.
        self._markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
        self._cache: tuple[float, str] | None = None

    def anchors(self) -> list[str]:
        return [anchor(title) for title in _headings(self._markdown, self._source())]

    def html(self) -> str:
        """The page, re-rendered when the file changes (an edited runbook shows on reload)."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            missing = f"<p>No runbooks file at {escape(str(self.path))} (RECEIVER_RUNBOOKS).</p>"
            return PAGE.format(body=missing)
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, PAGE.format(body=self._render(self._source())))
        return self._cache[1]

    def _source(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def _render(self, source: str) -> str:
        tokens = self._markdown.parse(source)
        seen: dict[str, int] = {}
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                slug = anchor(tokens[index + 1].content)
                # Repeated headings get -1, -2 ... as on GitHub.
                count = seen.get(slug, 0)
                seen[slug] = count + 1
                token.attrSet("id", slug if count == 0 else f"{slug}-{count}")
            elif token.type == "inline":
                _unlink_relative(token.children or [])
        return self._markdown.renderer.render(tokens, self._markdown.options, {})


def _unlink_relative(children: list) -> None:
    # Links to other repository files (../prometheus/..., alerts.md) have nothing to resolve to on this
    # server: they stay as text rather than lead to a 404.
    relative = False
    for child in children:
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            relative = not re.match(r"(https?:|mailto:|#)", href)
            if relative:
                child.tag, child.attrs = "span", {"title": href}
        elif child.type == "link_close" and relative:
            child.tag = "span"
            relative = False


def _headings(markdown: MarkdownIt, source: str) -> list[str]:
    tokens = markdown.parse(source)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
