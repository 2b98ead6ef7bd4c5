"""The inbox page: Slack messages drawn as Slack draws them, emails with their HTML rendered, newest first.

Everything shown comes from alerts (labels and annotations carry user-influenced text), so the template
autoescapes, Slack links keep only http(s) targets, email HTML runs in a sandboxed iframe without scripts, and
the page's Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from receiver.alertmanager import AlertmanagerState

MAX_SHOWN = 200
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'"
)
SLACK_COLORS = {"danger": "#e01e5a", "warning": "#ecb22e", "good": "#2eb67d"}
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Slack's link syntax: <https://example|label> or <https://example>.
_SLACK_LINK = re.compile(r"<(https?://[^|>\s]+)(?:\|([^>]*))?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """One environment for the process; the page's helpers are its globals, registered once."""
    loader = PackageLoader("receiver", "templates")
    environment = Environment(loader=loader, autoescape=select_autoescape(default=True))
    environment.globals.update(
        mrkdwn=mrkdwn, slack_color=slack_color, safe_link=safe_link, email_srcdoc=email_srcdoc
    )
    return environment


def slack_color(color: Any) -> str:
    text = str(color or "")
    if _HEX_COLOR.fullmatch(text):
        return text
    return SLACK_COLORS.get(text, "#9e9ea6")


def mrkdwn(text: Any) -> Markup:
    """Slack mrkdwn (links, *bold*, `code`, newlines) as HTML; everything else escaped."""
    parts: list[str] = []
    source = str(text or "")
    position = 0
    for match in _SLACK_LINK.finditer(source):
        parts.append(_inline(source[position : match.start()]))
        url, label = match.group(1), match.group(2) or match.group(1)
        parts.append(f'<a href="{escape(url)}" target="_blank" rel="noopener">{escape(label)}</a>')
        position = match.end()
    parts.append(_inline(source[position:]))
    return Markup("".join(parts).replace("\n", "<br>\n"))


def _inline(text: str) -> str:
    html = str(escape(text))
    html = _CODE.sub(r"<code>\1</code>", html)
    return _BOLD.sub(r"<strong>\1</strong>", html)


def safe_link(url: Any) -> str | None:
    """An http(s) URL for an href, or None (javascript:, data: and the like are not links here)."""
    text = str(url or "")
    return text if re.match(r"https?://", text, re.IGNORECASE) else None


def email_srcdoc(html: str) -> str:
    # Links in the mail open in a new tab: a sandboxed frame cannot navigate the page.
    return '<base target="_blank">' + html


def _matches(item: dict[str, Any], channel: str | None, alert: str | None) -> bool:
    return (channel is None or item.get("channel") == channel) and (
        alert is None or alert in (item.get("alerts") or [])
    )


def render_inbox(
    items: list[dict[str, Any]],
    channel: str | None,
    alert: str | None,
    alertmanager: AlertmanagerState,
    refresh_seconds: int,
) -> str:
    names = sorted({str(name) for item in items for name in item.get("alerts") or []})
    shown = [item for item in reversed(items) if _matches(item, channel, alert)]
    template = _environment().get_template("inbox.html")
    return template.render(
        items=shown[:MAX_SHOWN],
        matching=len(shown),
        total=len(items),
        channel=channel,
        alert=alert,
        alert_names=names,
        am=alertmanager,
        refresh=refresh_seconds,
    )
