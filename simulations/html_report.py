"""The HTML report written after every simulation: per scenario, a chart of each watched metric over time
(from Prometheus's query_range), the alert's threshold from the monitoring contract and the chain's markers,
then the console's table. One self-contained file (inline SVG and CSS), under var/reports/ by default.

The markers come from the sources, not from the console's once-a-second poll: pending and firing are the
first samples of Prometheus's ALERTS series, resolved is where its firing series ends, and every
notification the receiver got for the alert is one marker.
"""

from __future__ import annotations

import io
import math
import time
from html import escape
from pathlib import Path

from rich.console import Console

from monitoring.contract import alerts_by_name, threshold
from simulations.chart import MARKER_COLOURS, Chart, Marker, Series, svg
from simulations.data import ROOT
from simulations.lab import Lab
from simulations.report import result_table
from simulations.scenarios import Outcome
from simulations.watch import Watch

REPORTS_DIR = ROOT / "var" / "reports"
LOOKBACK = 30.0  # seconds shown before the injection: the metric's calm level
MAX_POINTS = 300  # samples per series at most (the step grows with the span)


def default_path(command: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return REPORTS_DIR / f"simulation-{command}-{stamp}.html"


def _points(result: list[dict]) -> list[tuple[float, float]]:
    """The samples of a range query's series, merged (the queries are aggregated to one series)."""
    return [(float(t), float(v)) for s in result for t, v in s.get("values") or [] if math.isfinite(float(v))]


def _alert_markers(lab: Lab, w: Watch, start: float, end: float, step: float, since: float) -> list[Marker]:
    name, service = w.expected.alert, w.expected.service
    result = lab.query_range(f'ALERTS{{alertname="{name}",service="{service}"}}', start, end, step)
    markers = []
    for state in ("pending", "firing"):
        times = sorted(t for s in result if s["metric"].get("alertstate") == state for t, _ in _points([s]))
        times = [t for t in times if t >= since]
        if times:
            markers.append(Marker(times[0], state, state))
        if state == "firing" and times and times[-1] < end - 2 * step:
            markers.append(Marker(times[-1] + step, "resolved", "resolved"))
    return markers


def _notification_markers(lab: Lab, w: Watch, since: float) -> list[Marker]:
    return [
        Marker(n["received_at_epoch"], "notification", f"{channel} {n.get('status') or ''}".strip())
        for channel in ("slack", "email")
        for n in lab.notifications(channel, since)
        if w.expected.alert in (n.get("alerts") or []) and n["received_at_epoch"] >= since
    ]


def lab_for(lab: Lab, name: str) -> str | None:
    """The `for:` of the rule this Prometheus runs (a test lab shortens the contract's), e.g. `3s`."""
    body = lab.get(f"{lab.urls.prometheus}/api/v1/rules", type="alert")
    try:
        groups = body.json()["data"]["groups"] if body is not None else []
    except (ValueError, KeyError):
        return None
    durations = [r.get("duration") for g in groups for r in g.get("rules") or [] if r.get("name") == name]
    return f"{durations[0]:g}s" if durations and isinstance(durations[0], int | float) else None


def chart_for(lab: Lab, outcome: Outcome, w: Watch, end: float) -> Chart:
    """What Prometheus and the receiver hold about one watched alert, from before the injection to `end`."""
    since = outcome.injected_at
    start = since - LOOKBACK
    step = max(1.0, math.ceil((end - start) / MAX_POINTS))
    series = [Series(w.expected.metric, _points(lab.query_range(w.expected.query, start, end, step)))]
    if w.expected.signal:
        series.append(
            Series(w.expected.signal, _points(lab.query_range(w.expected.signal, start, end, step)))
        )
    rule = alerts_by_name().get(w.expected.alert)  # None: an alert declared outside the contract
    hold = lab_for(lab, w.expected.alert) or (rule.for_.get() if rule else "its for:")
    try:
        line = threshold(w.expected.alert)
    except KeyError:  # not in the contract, or no `threshold` param: no line to draw
        line = None
    condition = f"{rule.condition()} " if rule and line is not None else ""
    compared = w.expected.signal or w.expected.metric
    markers = [Marker(since, "injection", "injection")]
    markers += _alert_markers(lab, w, start, end, step, since)
    markers += _notification_markers(lab, w, since)
    return Chart(
        title=f"{w.scenario}: {w.expected.alert}",
        start=start,
        end=end,
        origin=since,
        step=step,
        series=series,
        threshold=line,
        threshold_label=f"{w.expected.alert} fires when {compared} {condition}for {hold}",
        markers=markers,
    )


def table_html(outcomes: list[Outcome], *, with_recovery: bool) -> str:
    """The console's table, as the console draws it (rich's own HTML export, inline styles)."""
    console = Console(record=True, width=170, file=io.StringIO(), color_system="truecolor")
    console.print(result_table(outcomes, with_recovery=with_recovery))
    return console.export_html(inline_styles=True, code_format='<pre class="table"><code>{code}</code></pre>')


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1000px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
pre { font-family: ui-monospace, monospace; font-size: 12px; overflow-x: auto; background: #fafafa; }
svg.chart { background: #fff; border: 1px solid #ddd; max-width: 100%; height: auto; }
svg .grid { stroke: #eee; } svg .tick { font-size: 10px; fill: #666; }
svg text { font-size: 10px; } .legend span { margin-right: 1.2em; }
table.steps { border-collapse: collapse; font-size: 13px; } table.steps td { padding: 2px 10px; }
"""


def _steps_table(chart: Chart) -> str:
    rows = "".join(
        f'<tr data-kind="{m.kind}"><td style="color:{MARKER_COLOURS[m.kind]}">{escape(m.kind)}</td>'
        f"<td>{escape(m.label)}</td><td>{m.at - chart.origin:+.1f} s</td></tr>"
        for m in sorted(chart.markers, key=lambda m: m.at)
    )
    return f'<table class="steps">{rows}</table>'


def _legend() -> str:
    return (
        '<p class="legend">'
        + "".join(f'<span style="color:{colour}">┃ {kind}</span>' for kind, colour in MARKER_COLOURS.items())
        + '<span style="color:#d62728">┅ threshold</span></p>'
    )


def render(
    outcomes: list[Outcome], charts: dict[int, list[Chart]], *, with_recovery: bool, notes: list[str]
) -> str:
    """The whole page; `charts` maps an outcome's index to its charts."""
    sections = []
    for i, outcome in enumerate(outcomes):
        name = outcome.scenario.name
        body = [f"<p>{escape(line)}</p>" for line in outcome.summary]
        for chart in charts.get(i, []):
            body += [
                f"<figure><figcaption>{escape(chart.title)}</figcaption>{svg(chart)}</figure>",
                _steps_table(chart),
            ]
        if not charts.get(i):
            body.append("<p>No alert is expected from this scenario: nothing to chart.</p>")
        sections.append(
            f'<section class="scenario" data-scenario="{escape(name)}"><h2>{escape(name)}</h2>'
            + "".join(body)
            + "</section>"
        )
    watched = [o for o in outcomes if o.watches and o.waited]
    table = table_html(watched, with_recovery=with_recovery) if watched else ""
    extra = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Fault simulations: from injection to notification</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>Fault simulations: from injection to notification</h1>"
        f"<p>Generated {escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}. Times are seconds from each "
        "scenario's injection.</p>"
        + _legend()
        + "".join(sections)
        + "<h2>Summary</h2>"
        + table
        + (f'<ul class="notes">{extra}</ul>' if extra else "")
        + "</body></html>\n"
    )


def write_report(
    lab: Lab,
    outcomes: list[Outcome],
    path: Path,
    *,
    with_recovery: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """Query the lab for every watched alert's history and write the page to `path`."""
    end = time.time()
    charts = {i: [chart_for(lab, o, w, end) for w in o.watches] for i, o in enumerate(outcomes) if o.waited}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render(outcomes, charts, with_recovery=with_recovery, notes=notes or []), encoding="utf-8"
    )
    return path
