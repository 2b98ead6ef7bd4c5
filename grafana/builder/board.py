"""A dashboard as the lab writes it (title, description, rows of panels) and its assembly with the SDK:
rows and panels are placed by the SDK's own grid (`with_row` / `with_panel`), alert lines are drawn on the
panels the alert definitions name, and every dashboard links to the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink, Row
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .panels import DATASOURCE, FIRING, WithLines
from .thresholds import panel_lines

TAG = "observability-lab"

Panels = Callable[[], Sequence[Builder[dm.Panel]]]


@dataclass(frozen=True)
class Board:
    """One dashboard: `rows` are (row title, function returning its panels), top to bottom."""

    uid: str
    title: str
    description: str
    rows: Sequence[tuple[str, Panels]]


class PromAnnotation(dm.AnnotationQuery):
    """The SDK's AnnotationQuery carries `expr` but not the Prometheus annotation's own fields (step,
    titleFormat, textFormat, useValueForTime), which Grafana reads from the annotation: added here, plain."""

    def __init__(self, name: str, expr: str, **prometheus_fields: Any) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, icon_color="red", expr=expr)
        self.hide = None
        self.built_in = None
        self.prometheus_fields = prometheus_fields

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), **self.prometheus_fields}


class Plain(Builder[dm.AnnotationQuery]):
    def __init__(self, annotation: dm.AnnotationQuery) -> None:
        self.annotation = annotation

    def build(self) -> dm.AnnotationQuery:
        return self.annotation


def firing_alerts() -> PromAnnotation:
    """Every firing alert as an annotation on every time series panel."""
    return PromAnnotation(
        "Firing alerts",
        FIRING,
        step="30s",
        titleFormat="{{alertname}}",
        textFormat="{{severity}} {{service}}",
        useValueForTime=False,
    )


def built_in_annotations() -> dm.AnnotationQuery:
    return dm.AnnotationQuery(
        name="Annotations & Alerts",
        datasource=dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"),
        enable=True,
        hide=True,
        icon_color="rgba(0, 211, 255, 1)",
        type_val="dashboard",
        built_in=1,
    )


def link_to(other: Board) -> DashboardLink:
    return (
        DashboardLink(other.title)
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{other.uid}")
        .icon("dashboard")
        .tooltip(f"Open the {other.title} dashboard")
        .keep_time(True)
        .include_vars(False)
        .target_blank(False)
        .as_dropdown(False)
        .tags([])
    )


def assemble(board: Board, others: Sequence[Board]) -> dm.Dashboard:
    dashboard = (
        Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags([TAG])
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .fiscal_year_start_month(0)
        .live_now(False)
        .refresh("10s")
        .version(1)
        .time("now-30m", "now")
        .links([link_to(other) for other in others])
        .annotation(Plain(built_in_annotations()))
        .annotation(Plain(firing_alerts()))
    )
    lines = panel_lines(board.uid)
    for row_title, panels in board.rows:
        dashboard.with_row(Row(row_title))
        for panel in panels():
            if isinstance(panel, WithLines):
                panel.draw_lines(lines.pop(panel.build().title or "", []))
            dashboard.with_panel(panel)
    if lines:
        raise ValueError(f"alerts name panels {board.uid} lacks (or that cannot draw lines): {sorted(lines)}")
    model = dashboard.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return model
