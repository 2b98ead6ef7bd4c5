"""Which web pages this lab really serves, so the banner and `make status` print only links that answer.

The builds differ: Debian's Prometheus 2.42 serves its UI under /classic/ (/alerts is a 404 there), Debian's
Alertmanager has no web UI at all (its page says to use amtool), Grafana may not be installed, and the
receiver's inbox page is newer than its JSON API. Each page is probed; a page that does not answer 200 is
replaced by a note saying what to use instead.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from lab_common.endpoints import RECEIVER_INBOX_PATH
from labctl.binaries import GRAFANA_INSTALL_HINT
from labctl.client import LabClient
from labctl.config import Ports

PROMETHEUS_UI_PREFIXES = ("", "/classic")  # upstream builds, then Debian's
# The HTML inbox where the receiver has one, else its JSON.
RECEIVER_PAGES = (RECEIVER_INBOX_PATH, "/notifications")


@dataclass(frozen=True)
class Page:
    label: str
    url: str | None  # None: no page to open; `note` says what to do instead
    note: str = ""


def first_answering(client: LabClient, candidates: list[str]) -> str | None:
    return next((url for url in candidates if client.healthy(url)), None)


# Prometheus page -> the API path that shows the same, for builds without that page.
PROMETHEUS_API_EQUIVALENT = {"alerts": "alerts", "targets": "targets", "status": "alertmanagers"}


def prometheus_page(client: LabClient, base: str, page: str) -> str:
    """The URL of Prometheus's `page` (alerts, targets, status) in this build, else of its API equivalent."""
    found = first_answering(client, [f"{base}{prefix}/{page}" for prefix in PROMETHEUS_UI_PREFIXES])
    return found or f"{base}/api/v1/{PROMETHEUS_API_EQUIVALENT[page]}"


def prometheus_pages(client: LabClient, base: str) -> list[Page]:
    alerts = first_answering(client, [f"{base}{p}/alerts" for p in PROMETHEUS_UI_PREFIXES])
    if alerts is None:
        return [Page("Prometheus", None, f"no web UI answers at {base} (its API: {base}/api/v1/query)")]
    prefix = alerts.removesuffix("/alerts")
    targets = f"{prefix}/targets"
    note = f"targets: {targets}" if client.healthy(targets) else ""
    return [Page("Prometheus", alerts, note)]


def alertmanager_page(client: LabClient, base: str) -> Page:
    # The upstream UI is a single-page app whose script is /script.js; Debian's build serves a notice instead.
    if client.healthy(f"{base}/script.js"):
        return Page("Alertmanager", f"{base}/#/alerts")
    return Page(
        "Alertmanager",
        None,
        "this build has no web UI (Debian's package): the receiver's inbox lists what it sent, and "
        f"`amtool --alertmanager.url={base} alert query` what it holds",
    )


def grafana_page(client: LabClient, base: str, installed: bool) -> Page:
    if client.healthy(f"{base}/api/health"):
        return Page("Grafana", f"{base}/")
    if installed:
        return Page("Grafana", None, f"installed but not answering at {base} (see var/logs/grafana.log)")
    return Page("Grafana", None, GRAFANA_INSTALL_HINT)


def lab_pages(client: LabClient, ports: Ports, *, grafana_installed: bool) -> list[Page]:
    """Where a person looks, for every part of the lab, probed now."""
    urls = client.urls
    pages = []
    for label, base in (("ML API", urls.ml), ("RAG API", urls.rag)):
        docs = f"{base}/docs"
        pages.append(
            Page(label, docs) if client.healthy(docs) else Page(label, None, f"not answering at {base}")
        )
    pages += prometheus_pages(client, urls.prometheus)
    pages.append(alertmanager_page(client, urls.alertmanager))
    inbox = first_answering(client, [f"{urls.receiver}{p}" for p in RECEIVER_PAGES])
    has_page = inbox is not None and inbox.endswith(RECEIVER_INBOX_PATH)
    also = "JSON: /notifications, runbooks: /runbooks, " if has_page else ""
    note = f"{also}SMTP on :{ports.receiver_smtp}"
    pages.append(
        Page("Notifications", inbox, note) if inbox else Page("Notifications", None, "not answering")
    )
    pages.append(grafana_page(client, ports.url("grafana"), grafana_installed))
    return pages


def render_pages(pages: list[Page], width: int = 110) -> list[str]:
    """One line a page (`label  url  (note)`); a page with no URL gets its note instead, wrapped."""
    lines = []
    for page in pages:
        head = f"  {page.label:<15} "
        if page.url:
            lines.append(head + page.url + (f"   ({page.note})" if page.note else ""))
            continue
        wrapped = textwrap.wrap(page.note, width - len(head)) or [""]
        lines.append(head + wrapped[0])
        lines += [" " * len(head) + rest for rest in wrapped[1:]]
    return lines
