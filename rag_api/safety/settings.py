"""Safety chain settings: env vars `RAG_SAFETY_*`, each with a safe default (record only, fail open)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["monitor", "enforce"]

# Which checks run at which stage: the canary can only leak out, injection only comes in.
STAGE_CHECKS: dict[str, tuple[str, ...]] = {
    "input": ("prompt_injection", "pii", "toxicity"),
    "output": ("pii", "toxicity", "canary_leak"),
}

DEFAULT_REFUSAL = (
    "I can't share that answer: it did not pass the assistant's safety checks. Please rephrase your "
    "question or contact support."
)


class SafetySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_SAFETY_", env_file=None, extra="ignore")

    enabled: bool = True
    # `monitor`: record only. `enforce`: block a flagged input (400 naming the check), replace a flagged
    # answer with `refusal`, redact PII in answers. `modes` overrides one check at one stage:
    # RAG_SAFETY_MODES='{"output.pii": "enforce"}'.
    mode: Mode = "monitor"
    modes: dict[str, Mode] = Field(default_factory=dict)
    # A check that raises is counted (outcome `error`). `open`: the text passes. `closed`: an enforced
    # check that fails blocks like a flag (input 503, answer refused). Monitor-mode checks never block.
    fail_mode: Literal["open", "closed"] = "open"
    # Planted in the generation prompt; seen in an answer = the prompt leaked. None: random per process.
    canary: str | None = Field(default=None, min_length=8, max_length=128)
    refusal: str = Field(default=DEFAULT_REFUSAL, min_length=1, max_length=1000)
    # Per-check flag thresholds over the detectors' documented defaults (0.5), e.g.
    # RAG_SAFETY_THRESHOLDS='{"prompt_injection": 0.7}'. Measure first: `python -m benchmarks.safety`.
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, thresholds: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(thresholds) - {"prompt_injection", "toxicity", "pii"})
        if unknown:
            raise ValueError(f"unknown check {unknown}; thresholds exist for prompt_injection, toxicity, pii")
        if any(not 0 < t <= 1 for t in thresholds.values()):
            raise ValueError("thresholds are in (0, 1]")
        return thresholds

    @field_validator("modes")
    @classmethod
    def _known_checks(cls, modes: dict[str, Mode]) -> dict[str, Mode]:
        known = {f"{stage}.{check}" for stage, checks in STAGE_CHECKS.items() for check in checks}
        unknown = sorted(set(modes) - known)
        if unknown:
            raise ValueError(f"unknown stage.check {unknown}; expected some of {sorted(known)}")
        return modes

    def mode_for(self, stage: str, check: str) -> Mode:
        return self.modes.get(f"{stage}.{check}", self.mode)
