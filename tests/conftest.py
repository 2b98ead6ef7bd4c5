"""Fixtures shared by the test modules (helpers to import live in tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_api.model import LoadedModel, load_model
from ml_api.train import train
from tests.support.litellm_proxy import LiteLLMProxy, needs_litellm
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


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """LiteLLM's proxy with mock models (tests/support/litellm_proxy.py), started once for the whole run."""
    proxy = LiteLLMProxy(needs_litellm(), tmp_path_factory.mktemp("litellm")).start()
    yield proxy
    proxy.stop()
