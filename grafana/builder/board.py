"""A dashboard as the lab writes it (rows of panels in code, its words in texts/<uid>.md) and its assembly
with the SDK: rows and panels are placed by the SDK's own grid (`with_row` / `with_panel`), alert lines are
drawn on the panels the alert definitions name, and every dashboard links to the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, DashboardLink, Row
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .panels import DATASOURCE, FIRING, WithLines
from .texts import Texts, texts
from .thresholds import Line, panel_lines

TAG = "observability-lab"

Panels = Callable[[], Sequence[Builder[dm.Panel]]]


@dataclass(frozen=True)
class Board:
    """One dashboard: `rows` are (row title, function returning its panels), top to bottom, added by
    decorating the functions with `@BOARD.row(title)`. Its title and descriptions are in texts/<uid>.md."""

    uid: str
    rows: list[tuple[str, Panels]] = field(default_factory=list)

    def row(self, title: str) -> Callable[[Panels], Panels]:
        """Decorator: the function's panels form the next row, under `title`."""

        def add(panels: Panels) -> Panels:
            self.rows.append((title, panels))
            return panels

        return add

    @property
    def texts(self) -> Texts:
        return texts(self.uid)


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
    """Hands a model built by hand to an SDK method that takes builders."""

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


def built_in_annotations() -> AnnotationQuery:
    """Grafana's own annotations and alerts, as every dashboard has them."""
    return (
        AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


def link_to(other: Board) -> DashboardLink:
    return (
        DashboardLink(other.texts.title)
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{other.uid}")
        .icon("dashboard")
        .tooltip(f"Open the {other.texts.title} dashboard")
        .keep_time(True)
        .include_vars(False)
        .target_blank(False)
        .as_dropdown(False)
        .tags([])
    )


def assemble(board: Board, others: Sequence[Board]) -> dm.Dashboard:
    dashboard = (
        Dashboard(board.texts.title)
        .uid(board.uid)
        .description(board.texts.description)
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
        .annotation(built_in_annotations())
        .annotation(Plain(firing_alerts()))
    )
    words, lines = dict(board.texts.panels), panel_lines(board.uid)
    for row_title, panels in board.rows:
        dashboard.with_row(Row(row_title))
        for panel in panels():
            describe(panel, words, lines, board.uid)
            dashboard.with_panel(panel)
    if lines or words:
        raise ValueError(
            f"{board.uid}: alerts name panels it lacks (or that cannot draw lines): {sorted(lines)}; "
            f"texts/{board.uid}.md describes panels it lacks: {sorted(words)}"
        )
    model = dashboard.build()
    # The SDK leaves panel ids unset (rows get 0); Grafana wants them unique (links use `viewPanel=<id>`).
    for number, placed in enumerate(model.panels or [], start=1):
        placed.id_val = number
    return model


def describe(panel: Builder[dm.Panel], words: dict[str, str], lines: dict[str, list[Line]], uid: str) -> None:
    """Give a panel its description from the dashboard's texts (or its own) and its alerts' lines."""
    title = panel.build().title or ""
    description = words.pop(title, None) or panel.build().description
    if not description:
        raise ValueError(f"panel {title!r} has no description: add a `## {title}` section to texts/{uid}.md")
    if isinstance(panel, WithLines):
        panel.draw_lines(description, lines.pop(title, []))
    else:
        panel.description(description)  # type: ignore[attr-defined]
