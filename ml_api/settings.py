"""ml_api settings: every knob is an env var with prefix `ML_` (shared ones un-prefixed, see LabSettings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lab_common.endpoints import default_port, local_url
from lab_common.settings import ServiceSettings


class MLSettings(ServiceSettings):
    """ML_WORKERS > 1: each worker keeps its own drift window."""

    model_config = SettingsConfigDict(env_prefix="ML_")

    port: int = Field(default=default_port("ml_api"), ge=1, le=65535)

    # Versioned artifacts live in <model_dir>/<version>/; <model_dir>/LATEST names the one to serve.
    model_dir: Path = Path("var/models")
    # Train at start-up when no artifact exists (with several workers, one trains and the others wait).
    auto_train: bool = True
    train_size: int = Field(default=20_000, ge=500, le=2_000_000)
    holdout_size: int = Field(default=5_000, ge=200, le=1_000_000)
    # Rows of training features kept as the drift reference (with the model's predictions on them).
    reference_size: int = Field(default=5_000, ge=100, le=100_000)
    train_seed: int = Field(default=42, ge=0)

    # Drift: a window of recent tickets (bounded by count and age) compared with the reference.
    drift_window_size: int = Field(default=500, ge=10, le=100_000)
    drift_max_age_seconds: float = Field(default=600.0, gt=0)
    # Below this many tickets nothing is judged: the drift gauges are absent and the status says so.
    drift_min_window: int = Field(default=100, ge=2, le=100_000)
    # The background evaluation period. 5 s keeps the lab responsive; 30-60 s is plenty in production
    # (Prometheus scrapes every 15 s and drift alerts wait minutes anyway).
    drift_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Family-wise false-alarm rate of one drift evaluation.
    drift_alpha: float = Field(default=0.005, gt=0, lt=1)

    # /triage asks rag_api for an explanation; past this timeout it answers with the ML part only.
    rag_url: str = local_url("rag_api")
    triage_rag_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    triage_top_k: int = Field(default=3, ge=1, le=10)
