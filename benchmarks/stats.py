"""What the benchmarks share: the labelled data's location and the rank statistics they report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parents[1]


def shared_data(relative: str) -> Path:
    """`../shared/data/<relative>` beside the clone; from a git worktree, beside the first ancestor that has
    it (the public labelled data is read where it is, never copied into the repo)."""
    path = Path("shared") / "data" / relative
    for parent in ROOT.parents:
        if (parent / path).exists():
            return parent / path
    return ROOT.parent / path


def auroc(labels: list[int], scores: list[float]) -> float:
    """Mann-Whitney AUROC: P(score of a label-1 row > score of a label-0 row), ties counted half."""
    y = np.asarray(labels)
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))
