"""Train the severity model and write a versioned artifact: `python -m ml_api.train [--model-dir DIR]`.

Training and held-out data come from different seeds of the generator, so the reported accuracy and
macro-F1 are measured on tickets the model never saw. The card also records the accuracy of the label
rule's own noiseless score (`oracle_accuracy`): the ceiling set by the label noise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ml_api.data import (
    FEATURE_RANGES,
    FEATURES,
    LABEL_RULE,
    SEVERITIES,
    SEVERITY_CUTS,
    generate_tickets,
    latent_score,
)
from ml_api.model import (
    ENGINEERED,
    LoadedModel,
    TrainLock,
    build_pipeline,
    latest_version,
    load_model,
    to_matrix,
    write_artifact,
)
from ml_api.settings import MLSettings

log = logging.getLogger("ml_api.train")


def train(
    model_dir: Path,
    *,
    train_size: int = 20_000,
    holdout_size: int = 5_000,
    reference_size: int = 5_000,
    seed: int = 42,
) -> LoadedModel:
    """Fit, measure on held-out data, write the artifact and return it loaded from disk."""
    started = time.perf_counter()
    train_df = generate_tickets(train_size, seed)
    holdout_df = generate_tickets(holdout_size, seed + 1_000_003)  # another seed: unseen tickets
    pipeline = build_pipeline(seed)
    pipeline.fit(to_matrix(train_df), train_df["severity"].to_numpy())
    fit_seconds = time.perf_counter() - started

    y_true = holdout_df["severity"].to_numpy()
    y_pred = pipeline.predict(to_matrix(holdout_df))
    labels = list(SEVERITIES)
    oracle_codes = np.searchsorted(np.asarray(SEVERITY_CUTS), latent_score(holdout_df), side="right")
    oracle = np.asarray(SEVERITIES)[oracle_codes]
    per_class = f1_score(y_true, y_pred, labels=labels, average=None)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro")),
        "f1_per_class": {c: float(v) for c, v in zip(labels, per_class, strict=True)},
        "confusion_matrix": {
            "labels": labels,
            "rows_true_cols_predicted": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "oracle_accuracy": float(accuracy_score(y_true, oracle)),
        "majority_class_accuracy": float(holdout_df["severity"].value_counts(normalize=True).max()),
    }

    reference = train_df.loc[: reference_size - 1, list(FEATURES)].copy()
    reference["prediction"] = pipeline.predict(to_matrix(reference))

    trained_at = datetime.now(UTC)
    version = "sev-" + trained_at.strftime("%Y%m%dT%H%M%S") + f"{trained_at.microsecond // 1000:03d}Z"
    clf = pipeline.named_steps["clf"]
    card: dict[str, Any] = {
        "name": "ticket-severity",
        "version": version,
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "model_type": "StandardScaler + multinomial LogisticRegression on engineered features",
        "engineered_features": list(ENGINEERED),
        "features": list(FEATURES),
        "feature_ranges": {
            name: {"min": r.minimum, "max": r.maximum, "type": r.kind.__name__, "unit": r.unit}
            for name, r in FEATURE_RANGES.items()
        },
        "classes": [str(c) for c in clf.classes_],
        "metrics": metrics,
        "training": {
            "size": train_size,
            "seed": seed,
            "holdout_size": holdout_size,
            "holdout_seed": seed + 1_000_003,
            "class_balance": {
                k: float(v) for k, v in train_df["severity"].value_counts(normalize=True).sort_index().items()
            },
            "fit_seconds": round(fit_seconds, 3),
        },
        "label_rule": LABEL_RULE,
        "reference": {"rows": len(reference), "file": "reference.csv", "with_predictions": True},
        "library_versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    }
    path = write_artifact(model_dir, version, pipeline, card, reference)
    log.info("trained %s in %.2fs: accuracy=%.4f macro_f1=%.4f -> %s", version, fit_seconds,
             metrics["accuracy"], metrics["macro_f1"], path)  # fmt: skip
    return load_model(model_dir, version)


def ensure_model(settings: MLSettings) -> LoadedModel:
    """The latest artifact; trained first when there is none (and `auto_train` is on)."""
    model_dir = Path(settings.model_dir)
    if latest_version(model_dir) is not None:
        return load_model(model_dir)
    if not settings.auto_train:
        raise FileNotFoundError(f"no model artifact in {model_dir} and ML_AUTO_TRAIN is off")
    with TrainLock(model_dir):
        if latest_version(model_dir) is not None:  # another worker trained it while we waited
            return load_model(model_dir)
        return train(
            model_dir,
            train_size=settings.train_size,
            holdout_size=settings.holdout_size,
            reference_size=settings.reference_size,
            seed=settings.train_seed,
        )


def main(argv: list[str] | None = None) -> int:
    settings = MLSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=settings.model_dir)
    parser.add_argument("--train-size", type=int, default=settings.train_size)
    parser.add_argument("--holdout-size", type=int, default=settings.holdout_size)
    parser.add_argument("--reference-size", type=int, default=settings.reference_size)
    parser.add_argument("--seed", type=int, default=settings.train_seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with TrainLock(args.model_dir):
        model = train(
            args.model_dir,
            train_size=args.train_size,
            holdout_size=args.holdout_size,
            reference_size=args.reference_size,
            seed=args.seed,
        )
    m = model.card["metrics"]
    print(f"version         {model.version}")
    print(f"artifact        {model.path}")
    print(f"train / holdout {args.train_size} / {args.holdout_size} tickets")
    print(f"accuracy        {m['accuracy']:.4f}  (label-rule oracle {m['oracle_accuracy']:.4f}, "
          f"majority class {m['majority_class_accuracy']:.4f})")  # fmt: skip
    print(f"macro-F1        {m['macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
