"""Fixtures shared by the test modules (helpers to import live in tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

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


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    """Both services' apps in the lab profile, never started (no lifespan): for what needs no model or index
    (docs, routing, request metrics, validation). Imported here: most test modules need neither app."""
    from ml_api.app import create_app as create_ml_app
    from ml_api.settings import MLSettings
    from rag_api.app import create_app as create_rag_app
    from rag_api.settings import RAGSettings

    tmp = tmp_path_factory.mktemp("apps")
    lab = {"lab_profile": True, "admin_token": None}
    return {
        "ml_api": create_ml_app(MLSettings(model_dir=tmp / "m", **lab)),
        "rag_api": create_rag_app(RAGSettings(chroma_path=tmp / "c", **lab)),
    }


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """LiteLLM's proxy with mock models (tests/support/litellm_proxy.py), started once for the whole run."""
    proxy = LiteLLMProxy(needs_litellm(), tmp_path_factory.mktemp("litellm")).start()
    yield proxy
    proxy.stop()
