"""Settings every service shares. Service settings subclass `LabSettings` with their own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class LabSettings(BaseSettings):
    """Shared knobs. They read un-prefixed env vars (LAB_PROFILE, ADMIN_TOKEN, ...) in every service."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # The lab profile favours teaching: fault injection on, admin endpoints open on localhost.
    lab_profile: bool = Field(default=False, validation_alias=_env("LAB_PROFILE", "lab_profile"))
    # None = follow the profile (on in the lab, off otherwise).
    faults_enabled: bool | None = Field(
        default=None, validation_alias=_env("FAULTS_ENABLED", "faults_enabled")
    )
    # Required for admin endpoints (faults, reload, reset) when the lab profile is off.
    admin_token: str | None = Field(default=None, validation_alias=_env("ADMIN_TOKEN", "admin_token"))
    log_level: str = Field(default="INFO", validation_alias=_env("LOG_LEVEL", "log_level"))
    # Requests with a larger body are refused with 413 before they are parsed.
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, validation_alias=_env("MAX_BODY_BYTES", "max_body_bytes")
    )
    # The longest a fault may be switched on for: every fault expires.
    max_fault_seconds: float = Field(
        default=900.0, gt=0, validation_alias=_env("MAX_FAULT_SECONDS", "max_fault_seconds")
    )

    @property
    def faults_active(self) -> bool:
        return self.lab_profile if self.faults_enabled is None else self.faults_enabled

    @property
    def admin_open(self) -> bool:
        """Admin endpoints need no token only in the lab profile with no token configured."""
        return self.lab_profile and not self.admin_token
