"""Settings every service shares. Service settings subclass `LabSettings` with their own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab_common.cusum import CusumParams
from monitoring.anomaly import LATENCY_FLOOR

_CUSUM = CusumParams()


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


class ServiceSettings(LabSettings):
    """A served API's settings (ml_api, rag_api): where it listens, how many workers. A subclass sets its env
    prefix (`model_config = SettingsConfigDict(env_prefix="ML_")`) and its `port` default."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    # More than one uses prometheus-client's multiprocess mode (lab_common/serve.py); each worker then keeps
    # its own in-memory state (windows, queues).
    workers: int = Field(default=1, ge=1, le=32)

    # In-service CUSUM of the serving latency (lab_common/cusum.py; the `...CusumAnomaly` alerts read it): one
    # update per interval from the latency histogram, nothing per request. Production: an interval of the
    # scrape interval (15 s), a baseline of an hour, a warm-up of 30 minutes (the defaults off the lab
    # profile).
    cusum_enabled: bool = True
    cusum_interval_seconds: float = Field(default=5.0, ge=1, le=600)
    cusum_slack: float = Field(default=_CUSUM.slack, ge=0, le=10)  # k, in spreads
    cusum_decision: float = Field(default=_CUSUM.decision, gt=0, le=100)  # h, in spreads
    # None = follow the profile: 10 minutes in the lab (a run shows it), an hour otherwise.
    cusum_baseline_seconds: float | None = Field(default=None, gt=0, le=86_400)
    # None = follow the profile: 2 minutes in the lab, 30 otherwise. Nothing is scored before it.
    cusum_warmup_seconds: float | None = Field(default=None, gt=0, le=86_400)
    # The smallest latency spread worth an alarm (the PromQL latency anomaly's floor).
    cusum_floor_seconds: float = Field(default=LATENCY_FLOOR, ge=0, le=10)

    def cusum_params(self) -> CusumParams:
        lab = self.lab_profile
        baseline = self.cusum_baseline_seconds or (600.0 if lab else 3600.0)
        warmup = self.cusum_warmup_seconds or (120.0 if lab else 1800.0)
        points = max(2, min(round(baseline / self.cusum_interval_seconds), 10_000))
        return CusumParams(
            slack=self.cusum_slack,
            decision=self.cusum_decision,
            baseline_points=points,
            warmup_points=max(2, min(round(warmup / self.cusum_interval_seconds), points)),
            abs_floor=self.cusum_floor_seconds,
        )


class HTTPServerSettings(BaseSettings):
    """Limits of the HTTP server every lab process runs (ml_api, rag_api, receiver): un-prefixed env vars.

    uvicorn bounds neither the size of a request's head nor how long it may take to arrive: one client
    could hold megabytes of unfinished headers, or a silent connection, open for as long as it likes.
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # Request line + headers larger than this are answered 431 and the connection is closed.
    max_header_bytes: int = Field(
        default=65_536, ge=1024, le=16_777_216, validation_alias=_env("MAX_HEADER_BYTES", "max_header_bytes")
    )
    # A connection must deliver a complete request head this soon after opening (or after it starts the
    # next request), else it is answered 408 and closed.
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        validation_alias=_env("HEADER_TIMEOUT_SECONDS", "header_timeout_seconds"),
    )
