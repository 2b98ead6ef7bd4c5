"""Every dashboard the lab provisions, and writing them to grafana/dashboards/<uid>.json."""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from . import llm_quality, ml_service, pipeline_health
from .board import Board, assemble

OUT_DIR = Path(__file__).resolve().parents[1] / "dashboards"

# One line per dashboard, in the order of the links between them.
BOARDS: list[Board] = [
    ml_service.BOARD,
    llm_quality.BOARD,
    pipeline_health.BOARD,
]


def build() -> dict[str, dm.Dashboard]:
    """uid -> dashboard model."""
    return {board.uid: assemble(board, [b for b in BOARDS if b is not board]) for board in BOARDS}


def render(model: dm.Dashboard) -> str:
    return JSONEncoder(indent=2).encode(model) + "\n"


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, model in build().items():
        path = out_dir / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        paths.append(path)
    return paths
