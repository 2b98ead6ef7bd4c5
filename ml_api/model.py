"""The severity model: a scikit-learn pipeline for training and batches, a pure-Python path for one ticket.

Pipeline: engineered features (see `engineer`) -> StandardScaler -> multinomial LogisticRegression.
The engineered terms mirror the shape of the label rule (log of counts and lengths), so a linear model is
close to the best any model can do on this noisy label.

Serving one row through scikit-learn costs ~150 µs of input validation; `FastPredictor` folds the scaler
into the coefficients at load time and computes the same softmax with plain float arithmetic (a few µs).
`tests/ml_api/test_ml_model.py` checks it equals `predict_proba`.

Artifacts (one directory per version, under `model_dir`):
    <model_dir>/LATEST                 the version to serve (written last, atomically)
    <model_dir>/<version>/model.joblib the fitted pipeline
    <model_dir>/<version>/model_card.json
    <model_dir>/<version>/reference.csv training features + `prediction` (the model's class) per row
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_api.data import FEATURES, SEVERITIES

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
REFERENCE_FILE = "reference.csv"
LATEST_FILE = "LATEST"
ENGINEERED = ("business_impact", "ln1p_urgency_keywords", "customer_tier", "log10_ticket_length")


def engineer(x: Any) -> np.ndarray:
    """FEATURES-ordered rows -> ENGINEERED columns. Module-level so the fitted pipeline pickles."""
    arr = np.asarray(x, dtype=float)
    return np.column_stack(
        [
            arr[:, 2],  # business_impact
            np.log1p(arr[:, 1]),  # urgency_keywords
            arr[:, 3],  # customer_tier
            np.log10(np.maximum(arr[:, 0], 1.0)),  # ticket_length
        ]
    )


def build_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("engineer", FunctionTransformer(engineer, validate=False)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=1.0, max_iter=1000, random_state=seed)),
        ]
    )


def to_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The FEATURES columns of a frame as a float matrix in the pipeline's column order."""
    return frame.loc[:, list(FEATURES)].to_numpy(dtype=float)


class FastPredictor:
    """Single-row predict_proba of the fitted pipeline in plain Python (no numpy, no validation)."""

    def __init__(self, pipeline: Pipeline) -> None:
        scaler: StandardScaler = pipeline.named_steps["scale"]
        clf: LogisticRegression = pipeline.named_steps["clf"]
        classes = [str(c) for c in clf.classes_]
        if clf.coef_.shape[0] != len(classes):
            raise ValueError("expected a multinomial model with one row of coefficients per class")
        mean, scale = scaler.mean_, scaler.scale_
        # logit_k = b_k + sum_j w_kj * (e_j - mean_j) / scale_j  =  b'_k + sum_j w'_kj * e_j
        self.classes: tuple[str, ...] = tuple(classes)
        self._w = [tuple(float(w / s) for w, s in zip(row, scale, strict=True)) for row in clf.coef_]
        self._b = [
            float(b - sum(w * m / s for w, m, s in zip(row, mean, scale, strict=True)))
            for b, row in zip(clf.intercept_, clf.coef_, strict=True)
        ]
        self._rows = list(zip(self._w, self._b, strict=True))

    def predict_proba_one(
        self, ticket_length: float, urgency_keywords: float, business_impact: float, customer_tier: float
    ) -> list[float]:
        """Class probabilities in `self.classes` order."""
        e0 = business_impact
        e1 = math.log1p(urgency_keywords)
        e2 = customer_tier
        e3 = math.log10(ticket_length if ticket_length > 1.0 else 1.0)
        logits = [b + w[0] * e0 + w[1] * e1 + w[2] * e2 + w[3] * e3 for w, b in self._rows]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [v / total for v in exps]


@dataclass
class LoadedModel:
    version: str
    path: Path
    pipeline: Pipeline
    card: dict[str, Any]
    reference: pd.DataFrame  # FEATURES columns only
    reference_predictions: list[str]
    fast: FastPredictor

    def __post_init__(self) -> None:
        # probabilities are reported low -> critical, whatever order the classifier keeps
        classes = list(self.fast.classes)
        self._display_order = [(c, classes.index(c)) for c in classes_in_order(classes)]

    @property
    def classes(self) -> tuple[str, ...]:
        return self.fast.classes

    def predict_one(self, ticket: Mapping[str, float]) -> tuple[str, dict[str, float]]:
        """(predicted class, class -> probability low -> critical) through `FastPredictor`."""
        probs = self.fast.predict_proba_one(
            ticket["ticket_length"],
            ticket["urgency_keywords"],
            ticket["business_impact"],
            ticket["customer_tier"],
        )
        # the first highest probability, as argmax
        return self.fast.classes[probs.index(max(probs))], self.ordered(probs)

    def ordered(self, probs: Sequence[float]) -> dict[str, float]:
        """Class -> probability, low -> critical, from probabilities in `classes` order."""
        return {c: probs[i] for c, i in self._display_order}

    def predict_batch(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        """(predicted classes, probability matrix in `classes` order) through scikit-learn."""
        proba = self.pipeline.predict_proba(to_matrix(frame))
        idx = proba.argmax(axis=1)
        return [self.classes[i] for i in idx], proba


def latest_version(model_dir: Path) -> str | None:
    latest = Path(model_dir) / LATEST_FILE
    if not latest.is_file():
        return None
    version = latest.read_text().strip()
    return version if version and (Path(model_dir) / version / CARD_FILE).is_file() else None


def load_model(model_dir: Path, version: str | None = None) -> LoadedModel:
    model_dir = Path(model_dir)
    version = version or latest_version(model_dir)
    if version is None:
        raise FileNotFoundError(f"no model artifact in {model_dir}")
    path = model_dir / version
    pipeline = joblib.load(path / MODEL_FILE)
    card = json.loads((path / CARD_FILE).read_text())
    ref = pd.read_csv(path / REFERENCE_FILE)
    return LoadedModel(
        version=version,
        path=path,
        pipeline=pipeline,
        card=card,
        reference=ref.loc[:, list(FEATURES)],
        reference_predictions=ref["prediction"].astype(str).tolist(),
        fast=FastPredictor(pipeline),
    )


def write_artifact(
    model_dir: Path, version: str, pipeline: Pipeline, card: dict[str, Any], reference: pd.DataFrame
) -> Path:
    """Write into a temporary directory, rename it into place, then point LATEST at it (both atomic)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=model_dir))
    try:
        joblib.dump(pipeline, tmp / MODEL_FILE)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        reference.to_csv(tmp / REFERENCE_FILE, index=False)
        final = model_dir / version
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    latest_tmp = model_dir / f".{LATEST_FILE}.tmp{os.getpid()}"
    latest_tmp.write_text(version + "\n")
    os.replace(latest_tmp, model_dir / LATEST_FILE)
    return final


class TrainLock:
    """An exclusive file lock: several workers starting at once train one model, the others wait for it."""

    def __init__(self, model_dir: Path) -> None:
        self.path = Path(model_dir) / ".train.lock"

    def __enter__(self) -> TrainLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w")  # held until __exit__
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def classes_in_order(classes: list[str]) -> list[str]:
    """Severity order for display (low -> critical), whatever order the classifier stores them in."""
    return [s for s in SEVERITIES if s in classes] + [c for c in classes if c not in SEVERITIES]
