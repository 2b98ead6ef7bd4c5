"""Every dashboard the lab provisions; `make generate` (monitoring/generate.py) writes each to
grafana/dashboards/<uid>.json."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from . import llm_cost, llm_quality, llm_safety, ml_service, pipeline_health
from .board import Board, assemble

# One line per dashboard, in the order of the links between them.
BOARDS: list[Board] = [
    ml_service.BOARD,
    llm_quality.BOARD,
    llm_safety.BOARD,
    llm_cost.BOARD,
    pipeline_health.BOARD,
]


def build() -> dict[str, dm.Dashboard]:
    """uid -> dashboard model."""
    return {board.uid: assemble(board, [b for b in BOARDS if b is not board]) for board in BOARDS}


def render(model: dm.Dashboard) -> str:
    return JSONEncoder(indent=2).encode(model) + "\n"


@cache
def rendered() -> dict[str, str]:
    """uid -> JSON text, built once per process."""
    return {uid: render(model) for uid, model in build().items()}


def dashboard_targets() -> dict[str, Callable[[], str]]:
    """`make generate`'s targets: repository path -> its JSON, one per dashboard."""
    return {f"grafana/dashboards/{b.uid}.json": partial(rendered_one, b.uid) for b in BOARDS}


def rendered_one(uid: str) -> str:
    return rendered()[uid]
