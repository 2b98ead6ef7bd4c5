"""ml_api data generator, training and the single-row fast path: real training into a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ml_api.data import FEATURE_RANGES, FEATURES, SEVERITIES, generate_tickets
from ml_api.model import CARD_FILE, LATEST_FILE, REFERENCE_FILE, LoadedModel, load_model, to_matrix
from ml_api.settings import MLSettings
from ml_api.train import ensure_model
from tests.support.ml import TRAINING


@pytest.fixture
def trained(trained_model: LoadedModel) -> LoadedModel:
    return trained_model


def test_generator_is_seeded_and_in_range() -> None:
    a, b, c = generate_tickets(3000, 7), generate_tickets(3000, 7), generate_tickets(3000, 8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == [*FEATURES, "severity"]
    for name, r in FEATURE_RANGES.items():
        assert a[name].between(r.minimum, r.maximum).all(), name
        if r.kind is int:
            assert pd.api.types.is_integer_dtype(a[name]), name
    assert set(a["severity"]) == set(SEVERITIES)
    # tiers skewed toward low tiers, lengths right-skewed
    tiers = a["customer_tier"].value_counts(normalize=True)
    assert tiers[1] > tiers[2] > tiers[3] > tiers[4] > tiers[5]
    assert a["ticket_length"].mean() > a["ticket_length"].median()


def test_labels_are_noisy_function_of_features() -> None:
    df = generate_tickets(20_000, 3)
    codes = df["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    # monotone in business impact, but not deterministic
    assert np.corrcoef(df["business_impact"], codes)[0, 1] > 0.4
    same = df[(df["business_impact"] == 5.0) & (df["customer_tier"] == 2)]
    assert same["severity"].nunique() > 1


def test_card_metrics_equal_what_training_measured(trained: LoadedModel) -> None:
    card = json.loads((trained.path / CARD_FILE).read_text())
    assert card == trained.card
    assert card["version"] == trained.version
    assert (trained.path.parent / LATEST_FILE).read_text().strip() == trained.version
    # re-measure independently on the held-out seed recorded in the card
    holdout = generate_tickets(card["training"]["holdout_size"], card["training"]["holdout_seed"])
    reloaded = load_model(trained.path.parent)
    pred = reloaded.pipeline.predict(to_matrix(holdout))
    assert card["metrics"]["accuracy"] == pytest.approx(accuracy_score(holdout["severity"], pred), abs=1e-12)
    assert card["metrics"]["macro_f1"] == pytest.approx(
        f1_score(holdout["severity"], pred, labels=list(SEVERITIES), average="macro"), abs=1e-12
    )
    # better than guessing the majority class, but not perfect (the label is noisy)
    assert card["metrics"]["majority_class_accuracy"] + 0.15 < card["metrics"]["accuracy"] < 0.95
    assert card["metrics"]["accuracy"] <= card["metrics"]["oracle_accuracy"] + 0.03
    assert card["training"]["size"] == TRAINING["train_size"]
    assert set(card["feature_ranges"]) == set(FEATURES)
    assert "severity" in card["label_rule"] or "critical" in card["label_rule"]
    assert card["trained_at"].endswith("+00:00")


def test_reference_sample_and_predictions(trained: LoadedModel) -> None:
    ref = pd.read_csv(trained.path / REFERENCE_FILE)
    assert (
        len(ref) == TRAINING["reference_size"] == len(trained.reference) == len(trained.reference_predictions)
    )
    assert list(trained.reference.columns) == list(FEATURES)
    expected = trained.pipeline.predict(to_matrix(trained.reference))
    assert list(expected) == trained.reference_predictions


def test_fast_predictor_equals_sklearn(trained: LoadedModel) -> None:
    frame = generate_tickets(2000, 11).loc[:, list(FEATURES)]
    # add the range corners: extreme values must match too
    corners = pd.DataFrame(
        [{f: FEATURE_RANGES[f].minimum for f in FEATURES}, {f: FEATURE_RANGES[f].maximum for f in FEATURES}]
    )
    frame = pd.concat([frame, corners], ignore_index=True)
    expected = trained.pipeline.predict_proba(to_matrix(frame))
    fast = np.array([trained.fast.predict_proba_one(*row) for row in to_matrix(frame)])
    assert trained.fast.classes == tuple(trained.pipeline.classes_)
    assert np.allclose(fast, expected, rtol=1e-9, atol=1e-12)
    # the serving path (LoadedModel.predict_one: the fast predictor, ordered) against scikit-learn, every row
    for row, p in zip(frame.to_dict("records"), expected, strict=True):
        severity, probs = trained.predict_one(row)
        assert severity == trained.classes[int(np.argmax(p))]
        assert list(probs) == list(SEVERITIES)
        assert [probs[c] for c in trained.classes] == pytest.approx(list(p), rel=1e-9, abs=1e-12)
    classes, proba = trained.predict_batch(frame)
    assert np.allclose(proba, expected)
    assert classes == [trained.classes[i] for i in expected.argmax(axis=1)]


def test_ensure_model_trains_once_then_loads(tmp_path: Path) -> None:
    settings = MLSettings(model_dir=tmp_path, train_size=1000, holdout_size=500, reference_size=200)
    first = ensure_model(settings)
    second = ensure_model(settings)
    assert first.version == second.version
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [first.version]
    with pytest.raises(FileNotFoundError):
        ensure_model(MLSettings(model_dir=tmp_path / "empty", auto_train=False))
