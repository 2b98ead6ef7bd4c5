"""Panel builders on grafana-foundation-sdk, with this lab's defaults: the `prometheus` datasource by uid,
legends and tooltips, and threshold lines that say in the panel description which alert they belong to.

Each function returns an SDK builder, so a dashboard module can still chain SDK calls (`.span(6)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self, TypeVar

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import heatmap as heatmap_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.builders.dashboard import FieldColor, ThresholdsConfig
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as heatmap_m
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .thresholds import Line

P = TypeVar("P", bound=Any)  # an SDK panel builder

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
RI = "$__rate_interval"
FIRING = 'ALERTS{alertstate="firing"}'  # the series of every firing alert


# ------------------------------------------------------------------------------------------------ queries
def target(expr: str, legend: str = "", ref: str = "A") -> Dataquery:
    return Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend or "__auto").ref_id(ref)


def targets(*pairs: tuple[str, str]) -> list[Dataquery]:
    """One query per (expr, legend), with refIds A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def quantile_expr(metric: str, q: float, by: str = "", where: str = "") -> str:
    """The q-quantile of histogram `metric` over the rate interval, summed by le (and `by`)."""
    group = f"le, {by}" if by else "le"
    sel = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return f"histogram_quantile({q}, sum by ({group}) (rate({sel}[{RI}])))"


def quantiles(
    metric: str, qs: tuple[float, ...] = (0.5, 0.9, 0.99), by: str = "", where: str = ""
) -> list[Dataquery]:
    suffix = f" {{{{{by}}}}}" if by else ""
    return targets(*((quantile_expr(metric, q, by, where), f"p{round(q * 100)}{suffix}") for q in qs))


def share(metric: str, where: str) -> str:
    """The share of `metric`'s rate that matches the label matchers `where`."""
    return f"sum(rate({metric}{{{where}}}[{RI}])) / sum(rate({metric}[{RI}]))"


def rate_by(metric: str, by: str, legend: str = "", ref: str = "A") -> Dataquery:
    """`sum by (labels) (rate(metric[...]))`, legend from the labels unless given."""
    legend = legend or " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return target(f"sum by ({by}) (rate({metric}[{RI}]))", legend, ref)


# ------------------------------------------------------------------------------------- threshold lines
def steps(lines: Sequence[Line]) -> ThresholdsConfig:
    """Grafana steps: green on the good side, red past the farthest threshold, orange between."""
    items = sorted(lines, key=lambda line: line.value)
    if len({line.above for line in items}) > 1:
        raise ValueError(f"lines of both directions on one panel: {items}")
    if not items:
        colours = [dm.Threshold(color="green", value=None)]
    elif items[0].above:  # the highest line turns red
        names = ["orange"] * (len(items) - 1) + ["red"]
        colours = [dm.Threshold(color="green", value=None)]
        colours += [dm.Threshold(color=c, value=t.value) for c, t in zip(names, items, strict=True)]
    else:  # below the lowest line is red; green from the highest
        names = ["orange"] * (len(items) - 1) + ["green"]
        colours = [dm.Threshold(color="red", value=None)]
        colours += [dm.Threshold(color=c, value=t.value) for c, t in zip(names, items, strict=True)]
    return ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(colours)


class WithLines:
    """Threshold lines collected while a dashboard is written and drawn once it is assembled, when the
    alert definitions have added the lines of the alerts that name this panel."""

    HOW = ""  # how the panel shows a threshold, for its description
    _lines: tuple[Line, ...] = ()

    def line(self, line: Line) -> Self:
        self._lines = (*self._lines, line)
        return self

    def draw_lines(self, description: str, extra: Sequence[Line] = ()) -> None:
        """Set the description (naming each alert line) and the thresholds of every line."""
        lines = [*self._lines, *extra]
        named = [t for t in lines if t.alert]
        if named:
            description += f" {self.HOW}: " + ", ".join(
                f"`{t.alert}` alert threshold ({t.condition})" for t in named
            )
            description += "."
        self.description(description).thresholds(steps(lines))  # type: ignore[attr-defined]
        self.style(bool(lines))

    def style(self, has_lines: bool) -> None:
        """Panel-specific look of the lines (nothing by default)."""


class TimeSeries(WithLines, timeseries_b.Panel):
    HOW = "Dashed line"

    def style(self, has_lines: bool) -> None:
        mode = common.GraphThresholdsStyleMode.DASHED if has_lines else common.GraphThresholdsStyleMode.OFF
        self.thresholds_style(common_b.GraphThresholdsStyleConfig().mode(mode))


class Stat(WithLines, stat_b.Panel):
    HOW = "Turns red at"


# ----------------------------------------------------------------------------------------------- panels
# Descriptions come from the dashboard's texts/<uid>.md, set when the dashboard is assembled.
def start(panel: P, title: str, tgts: Sequence[Dataquery], width: int, height: int) -> P:
    """What every panel sets: title, the datasource, its queries, its size on the grid."""
    return panel.title(title).datasource(DATASOURCE).targets(list(tgts)).span(width).height(height)


def timeseries(
    title: str,
    tgts: Sequence[Dataquery],
    unit: str = "short",
    stack: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> TimeSeries:
    panel = (
        start(TimeSeries(), title, tgts, width=8, height=8)
        .unit(unit)
        .color_scheme(FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(25 if stack else 10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(
            common_b.StackingConfig()
            .mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
            .group("A")
        )
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if minimum is not None:
        panel.min(minimum)
    if maximum is not None:
        panel.max(maximum)
    return panel


def stat(
    title: str,
    tgts: Sequence[Dataquery],
    unit: str = "short",
    mappings: Sequence[dm.ValueMapping] = (),
    decimals: int | None = None,
) -> Stat:
    panel = (
        start(Stat(), title, tgts, width=4, height=5)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .mappings(list(mappings))
        .unit(unit)
        .color_scheme(FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .text_mode(common.BigValueTextMode.AUTO)
    )
    if decimals is not None:
        panel.decimals(decimals)
    return panel


def heatmap(title: str, metric: str, unit: str = "short") -> heatmap_b.Panel:
    """A Prometheus histogram over time: one row per bucket, colour = observations per second."""
    query = target(f"sum by (le) (rate({metric}_bucket[{RI}]))", "{{le}}").format(PromQueryFormat.HEATMAP)
    return (
        start(heatmap_b.Panel(), title, [query.interval("")], width=6, height=8)
        .hide_from(common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False))
        .calculate(False)
        .cell_gap(1)
        .color(
            heatmap_b.HeatmapColorOptions()
            .mode(heatmap_m.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_m.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .y_axis(heatmap_b.YAxisConfig().axis_placement(common.AxisPlacement.LEFT).unit(unit))
        .rows_frame(heatmap_b.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
        .filter_values(heatmap_b.FilterValueRange().le(1e-9))
        .mode(common.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
        .show_color_scale(False)
        .show_legend()
        .exemplars_color("rgba(255,0,255,0.7)")
    )


def table(title: str, tgts: Sequence[Dataquery]) -> table_b.Panel:
    """Instant query results as rows (one per series): for `*_info` gauges and the ALERTS series."""
    hidden = {"Time": True, "__name__": True, "Value": True}
    instant = [tgt.instant().format(PromQueryFormat.TABLE) for tgt in tgts]
    return (
        start(table_b.Panel(), title, instant, width=12, height=8)
        .align(common.FieldTextAlignment.AUTO)
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": hidden}))
    )


# ------------------------------------------------------------------------------------------ field options
def right_axis(panel: TimeSeries, series: str, unit: str) -> TimeSeries:
    """Move one series (by display name) to a right axis with its own unit."""
    return panel.override_by_name(
        series,
        [
            dm.DynamicConfigValue(id_val="unit", value=unit),
            dm.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
        ],
    )


def value_texts(texts: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value -> (text, colour), e.g. {"0": ("DOWN", "red"), "1": ("UP", "green")}."""
    options: dict[str, Any] = {v: dm.ValueMappingResult(text=t, color=c) for v, (t, c) in texts.items()}
    return [dm.ValueMap(options=options)]
