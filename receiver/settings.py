"""Receiver settings: every knob an env var (`RECEIVER_...`) with a safe default.

The shared knobs (LAB_PROFILE, ADMIN_TOKEN, MAX_BODY_BYTES, LOG_LEVEL) come from `LabSettings`, un-prefixed.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from lab_common.endpoints import default_port, local_url
from lab_common.settings import LabSettings

ROOT = Path(__file__).resolve().parents[1]


class ReceiverSettings(LabSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIVER_", env_file=None, extra="ignore")

    # 127.0.0.1 in native mode; compose sets 0.0.0.0 so Alertmanager's container can reach it.
    host: str = "127.0.0.1"
    http_port: int = Field(default=default_port("receiver_http"), ge=0, le=65535)
    smtp_port: int = Field(default=default_port("receiver_smtp"), ge=0, le=65535)
    # Every notification is appended here as one JSON line; the file is rotated at `log_max_bytes` and
    # `log_backups` rotated files are kept (`.1` is the newest). What rotation deletes is counted.
    log: Path = Path("var/receiver/notifications.jsonl")
    log_max_bytes: int = Field(default=20 * 1024 * 1024, ge=4096)
    log_backups: int = Field(default=3, ge=0, le=100)
    # Answer 500 on the Slack endpoints for this long after start (the fault can also be set at run time).
    fail_seconds: float = Field(default=0.0, ge=0)
    # The inbox in memory (GET /notifications, the inbox page): at most this many notifications and bytes;
    # the oldest are evicted first (and counted), the archive on disk keeps them.
    max_kept: int = Field(default=10_000, ge=1)
    max_kept_bytes: int = Field(default=64 * 1024 * 1024, ge=65536)
    # Alertmanager retries a notification it could not confirm (timeout, receiver paused), within a flush
    # and again at the next group_interval (10 s lab, 5 min production): the same group, status and content
    # arriving again within this window is a duplicate, answered `ok` and counted, not stored. With the lab's
    # templates the content is the group's alerts, each with its start time: Alertmanager itself repeats an
    # unchanged group only after repeat_interval (1 h lab, 4 h production); a changed group (new alert,
    # resolved, an alert firing again, even after a crash of Alertmanager lost the resolution in between)
    # is always stored.
    dedup_seconds: float = Field(default=600.0, ge=0, le=86_400)
    # Slack payloads nested deeper than this are refused (400): Alertmanager's are 4 levels deep.
    max_payload_depth: int = Field(default=32, ge=4, le=256)
    # The inbox page lists Alertmanager's alerts and silences from its API v2; empty = not shown.
    alertmanager_url: str = local_url("alertmanager")
    alertmanager_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Seconds between the inbox page's automatic reloads (0 = never).
    page_refresh_seconds: int = Field(default=5, ge=0, le=3600)
    # The runbooks served as HTML at /runbooks.
    runbooks: Path = ROOT / "docs" / "runbooks.md"
    # Print one readable block per notification on stdout.
    echo: bool = True

    @field_validator("alertmanager_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("RECEIVER_ALERTMANAGER_URL must be an http(s):// URL or empty")
        return value
