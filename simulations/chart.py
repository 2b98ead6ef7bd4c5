"""One scenario's picture: the watched metric over time as inline SVG, the alert's threshold, and a marker for
each step of the chain (injection, pending, firing, every notification, resolution).

No JavaScript and nothing fetched: the SVG is text inside the report, so the file opens offline anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 920, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 56, 36  # room for the y labels, the marker labels and the x labels
GAP_STEPS = 2.5  # a hole longer than this many steps between samples breaks the line (no data there)

# marker kind -> colour; the order is the order of the legend.
MARKER_COLOURS = {
    "injection": "#444444",
    "pending": "#e8a317",
    "firing": "#d62728",
    "notification": "#1f77b4",
    "resolved": "#2ca02c",
}
SERIES_COLOURS = ("#5b3cc4", "#17becf")
THRESHOLD_COLOUR = "#d62728"


@dataclass(frozen=True)
class Marker:
    at: float  # epoch seconds
    kind: str  # a key of MARKER_COLOURS
    label: str


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]  # (epoch seconds, value)


@dataclass
class Chart:
    title: str
    start: float  # epoch seconds: the x axis
    end: float
    origin: float  # the injection: x labels are seconds from it
    step: float  # seconds between samples
    series: list[Series]
    threshold: float | None = None
    threshold_label: str = ""
    markers: list[Marker] = field(default_factory=list)

    def x(self, t: float) -> float:
        span = max(self.end - self.start, 1e-9)
        return LEFT + (t - self.start) / span * (WIDTH - LEFT - RIGHT)

    @property
    def top_value(self) -> float:
        values = [v for s in self.series for _, v in s.points]
        if self.threshold is not None:
            values.append(self.threshold)
        return nice_ceiling(max(values, default=0.0) * 1.1) or 1.0

    def y(self, value: float) -> float:
        return TOP + (1 - value / self.top_value) * (HEIGHT - TOP - BOTTOM)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (axis tops read as round numbers)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value * (1 - 1e-9))


def segments(points: list[tuple[float, float]], step: float) -> list[list[tuple[float, float]]]:
    """The points split wherever samples are missing for longer than GAP_STEPS steps."""
    out: list[list[tuple[float, float]]] = []
    for t, v in sorted(points):
        if not math.isfinite(v):
            continue
        if out and t - out[-1][-1][0] <= GAP_STEPS * step:
            out[-1].append((t, v))
        else:
            out.append([(t, v)])
    return out


def _axes(chart: Chart) -> list[str]:
    parts = []
    bottom = HEIGHT - BOTTOM
    for i in range(5):
        value = chart.top_value * i / 4
        y = chart.y(value)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">{value:.3g}</text>'
        )
    span = chart.end - chart.start
    every = nice_ceiling(span / 8) or 1.0
    first = math.ceil((chart.start - chart.origin) / every) * every
    tick = first
    while chart.origin + tick <= chart.end:
        x = chart.x(chart.origin + tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{tick:+.0f}s</text>'
        )
        tick += every
    parts.append(
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">'
        "seconds from the injection</text>"
    )
    return parts


def _lines(chart: Chart) -> list[str]:
    parts = []
    for i, series in enumerate(chart.series):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        for seg in segments(series.points, chart.step):
            pts = " ".join(f"{chart.x(t):.1f},{chart.y(v):.1f}" for t, v in seg)
            parts.append(
                f'<polyline class="series" data-series="{escape(series.label)}" points="{pts}" fill="none" '
                f'stroke="{colour}" stroke-width="2"><title>{escape(series.label)}</title></polyline>'
            )
    if chart.threshold is not None:
        y = chart.y(chart.threshold)
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-dasharray="6 4">'
            f"<title>{escape(chart.threshold_label)}</title></line>"
        )
        parts.append(
            f'<text class="threshold-label" x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" '
            f'fill="{THRESHOLD_COLOUR}">{escape(chart.threshold_label)}</text>'
        )
    return parts


def _markers(chart: Chart) -> list[str]:
    parts = []
    for i, m in enumerate(sorted(chart.markers, key=lambda m: m.at)):
        if not chart.start <= m.at <= chart.end:
            continue
        x = chart.x(m.at)
        colour = MARKER_COLOURS[m.kind]
        label_y = TOP - 8 - 12 * (i % 3)  # three rows, so close markers do not print over each other
        text = f"{m.label} {m.at - chart.origin:+.1f}s"
        parts.append(
            f'<g class="marker" data-kind="{m.kind}"><title>{escape(text)}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{label_y + 3}" y2="{HEIGHT - BOTTOM}" stroke="{colour}" '
            f'stroke-dasharray="{"none" if m.kind == "injection" else "3 2"}"/>'
            f'<text x="{x + 2 if x < WIDTH / 2 else x - 2:.1f}" y="{label_y}" fill="{colour}" '
            f'text-anchor="{"start" if x < WIDTH / 2 else "end"}">{escape(m.label)}</text></g>'
        )
    return parts


def svg(chart: Chart) -> str:
    """The chart as one <svg> element."""
    body = [*_axes(chart), *_lines(chart), *_markers(chart)]
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(chart.title)}">'
        + "".join(body)
        + "</svg>"
    )
