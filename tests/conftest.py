"""Fixtures shared by the test modules (helpers to import live in tests/support/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_api.model import LoadedModel, load_model
from ml_api.train import train
from tests.support.ml import TRAINING


@pytest.fixture(scope="session")
def ml_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained ml_api model for the whole run; tests only read it (settings keep auto_train off)."""
    path = tmp_path_factory.mktemp("ml_models")
    train(path, **TRAINING)
    return path


@pytest.fixture(scope="session")
def trained_model(ml_model_dir: Path) -> LoadedModel:
    return load_model(ml_model_dir)
