"""Receiver settings: every knob an env var (`RECEIVER_...`) with a safe default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIVER_", env_file=None, extra="ignore")

    # 127.0.0.1 in native mode; compose sets 0.0.0.0 so Alertmanager's container can reach it.
    host: str = "127.0.0.1"
    http_port: int = Field(default=9099, ge=0, le=65535)
    smtp_port: int = Field(default=2525, ge=0, le=65535)
    # Every notification is appended here as one JSON line.
    log: Path = Path("var/receiver/notifications.jsonl")
    # Answer 500 on the Slack endpoints for this long after start (the fault can also be set at run time).
    fail_seconds: float = Field(default=0.0, ge=0)
    # Notifications kept in memory for GET /notifications (the JSONL file keeps everything).
    max_kept: int = Field(default=10_000, ge=1)
    # Print one readable block per notification on stdout.
    echo: bool = True
    log_level: str = "INFO"
