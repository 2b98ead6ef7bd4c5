"""The report's chart, drawn from made-up samples: lines break at holes, the threshold sits where the axis
says, markers outside the time range are left out, and text is escaped."""

from __future__ import annotations

import re

from simulations.chart import Chart, Marker, Series, nice_ceiling, segments, svg


def make_chart(**changes) -> Chart:
    values = {
        "title": "latency: <MLHighLatencyP90>",
        "start": 1000.0,
        "end": 1100.0,
        "origin": 1030.0,
        "step": 1.0,
        # a hole between 1040 and 1060: no samples there
        "series": [
            Series("p90 latency (s)", [(1000.0 + i, 0.01 * i) for i in (*range(41), *range(60, 101))])
        ],
        "threshold": 0.25,
        "threshold_label": "fires when > 0.25",
        "markers": [Marker(1030.0, "injection", "injection"), Marker(5000.0, "firing", "firing")],
    }
    return Chart(**{**values, **changes})


def test_nice_ceiling_rounds_up_to_a_round_number() -> None:
    for value in (0.003, 0.26, 1.0, 7.3, 130.0):
        top = nice_ceiling(value)
        assert top >= value
        mantissa = top / 10 ** int(f"{top:e}".split("e")[1])
        assert round(mantissa, 6) in (1, 2, 2.5, 5), (value, top)
    assert nice_ceiling(0) == 0.0


def test_segments_break_at_holes_longer_than_the_step() -> None:
    points = [(0.0, 1.0), (1.0, 1.0), (2.0, float("nan")), (10.0, 2.0), (11.0, 2.0)]
    assert segments(points, step=1.0) == [[(0.0, 1.0), (1.0, 1.0)], [(10.0, 2.0), (11.0, 2.0)]]


def test_svg_draws_lines_threshold_and_markers_in_range() -> None:
    chart = make_chart()
    drawn = svg(chart)
    assert drawn.count("<polyline") == 2, "the hole must split the line in two"
    y = float(re.search(r'class="threshold"[^>]*y1="([\d.]+)"', drawn).group(1))
    assert abs(y - chart.y(0.25)) < 0.1
    assert chart.y(0) > y > chart.y(chart.top_value), "0.25 lies between the axis' bottom and top"
    assert chart.top_value >= 1.0  # the largest sample is 1.0
    assert drawn.count('class="marker"') == 1, "the marker outside [start, end] is not drawn"
    assert "+0s" in drawn, "x labels count from the injection"
    assert "<MLHighLatencyP90>" not in drawn and "&lt;MLHighLatencyP90&gt;" in drawn


def test_an_empty_series_still_draws_the_threshold() -> None:
    drawn = svg(make_chart(series=[Series("nothing", [])]))
    assert "<polyline" not in drawn and 'class="threshold"' in drawn
