"""The safety chain around /chat and /monitor/inference: every check of a stage, its outcome, its metrics.

Input stage (the user's message): prompt_injection, pii, toxicity. Output stage (the answer): pii, toxicity,
canary_leak. Each check gives a score in [0, 1], is flagged at its detector's threshold, names a category from
the detector's fixed list and, when flagged, a severity:

- pii: by the most sensitive entity found: HIGH for CREDIT_CARD, US_SSN, IBAN, SECRET; MEDIUM for EMAIL,
  PHONE, US_DRIVER_LICENSE; LOW for IP_ADDRESS;
- canary_leak: always HIGH (the generation prompt reached the user);
- prompt_injection, toxicity: by score: HIGH at 0.9 or more, MEDIUM at 0.7 or more, else LOW.

Outcomes (llm_safety_checks_total{outcome}): `pass`; `flagged` (monitor mode: recorded, the text goes on);
`blocked` (enforce: the input is refused, or the answer replaced by the refusal); `redacted` (enforce, PII in
an answer: replaced by [REDACTED_<TYPE>]); `error` (the check raised; see SafetySettings.fail_mode).
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lab_common.faults import FaultRegistry
from rag_api import metrics
from rag_api.safety.detectors import (
    Detector,
    DetectorResult,
    InjectionDetector,
    PIIDetector,
    ToxicityDetector,
    build_detectors,
)
from rag_api.safety.detectors.head import Embedder
from rag_api.safety.settings import STAGE_CHECKS, SafetySettings

CHECKS = ("prompt_injection", "pii", "toxicity", "canary_leak")
OUTCOMES = ("pass", "flagged", "blocked", "redacted", "error")
SEVERITIES = ("LOW", "MEDIUM", "HIGH")
SOURCES = ("chat", "external")  # chat: rag_api's own /chat; external: posted to /monitor/inference
PII_SEVERITY = {
    "CREDIT_CARD": "HIGH", "US_SSN": "HIGH", "IBAN": "HIGH", "SECRET": "HIGH",  # pragma: allowlist secret
    "EMAIL": "MEDIUM", "PHONE": "MEDIUM", "US_DRIVER_LICENSE": "MEDIUM", "IP_ADDRESS": "LOW",
}  # fmt: skip


class CanaryDetector:
    """A secret token planted in the generation prompt: found in an answer, the prompt leaked."""

    name = "canary_leak"
    threshold = 0.5
    categories = ("none", "prompt_leak")

    def __init__(self, canary: str) -> None:
        self.canary = canary.lower()

    def score(self, text: str, embedding: np.ndarray | None = None) -> DetectorResult:
        if self.canary in text.lower():
            return DetectorResult(1.0, "prompt_leak")
        return DetectorResult(0.0, "none")


CATEGORIES: dict[str, tuple[str, ...]] = {
    "prompt_injection": InjectionDetector.categories,
    "pii": PIIDetector.categories,
    "toxicity": ToxicityDetector.categories,
    "canary_leak": CanaryDetector.categories,
}


def severity(check: str, result: DetectorResult) -> str:
    """LOW/MEDIUM/HIGH of a flagged result, by the rules in the module docstring."""
    if check == "canary_leak":
        return "HIGH"
    if check == "pii":
        levels = [PII_SEVERITY.get(e.type, "HIGH") for e in result.entities] or ["LOW"]
        return max(levels, key=SEVERITIES.index)
    return "HIGH" if result.score >= 0.9 else "MEDIUM" if result.score >= 0.7 else "LOW"


def category(check: str, result: DetectorResult) -> str:
    """The detector's category; for pii the type of the most sensitive entity (so it matches severity)."""
    if check != "pii" or not result.entities:
        return result.category
    top = max(result.entities, key=lambda e: SEVERITIES.index(PII_SEVERITY.get(e.type, "HIGH")))
    return top.type.lower()


def _severities(check: str, category: str) -> tuple[str, ...]:
    """The severities a flag of this category can have (for metric initialisation)."""
    if check == "canary_leak":
        return ("HIGH",)
    if check == "pii":
        return (PII_SEVERITY[category.upper()],)
    return SEVERITIES


def initialise_metrics() -> None:
    """Every reachable label combination at 0: `increase()` then sees the very first flag."""
    for stage, checks in STAGE_CHECKS.items():
        for check in checks:
            for source in SOURCES:
                for outcome in OUTCOMES:
                    metrics.SAFETY_CHECKS.labels(check, stage, outcome, source)
                for category in CATEGORIES[check][1:]:  # "none" is never flagged
                    for level in _severities(check, category):
                        metrics.SAFETY_FLAGS.labels(check, stage, category, level, source)
            metrics.SAFETY_DURATION.labels(check)


@dataclass(frozen=True)
class CheckResult:
    check: str
    stage: str
    score: float | None  # None when the check failed
    flagged: bool
    category: str
    severity: str | None  # None unless flagged
    outcome: str
    entities: tuple[str, ...] = ()  # PII types found (never the values)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entities"] = list(self.entities)
        data["score"] = None if self.score is None else round(self.score, 4)
        return data


@dataclass(frozen=True)
class Verdict:
    """One stage's results and the text that goes on (the answer, redacted or replaced by the refusal)."""

    stage: str
    text: str
    results: tuple[CheckResult, ...]
    blocked_by: str | None  # the first check that blocked (flagged in enforce, or failed closed)
    seconds: float

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "blocked_by": self.blocked_by,
            "latency_ms": round(self.seconds * 1000, 3),
            "checks": [r.as_dict() for r in self.results],
        }


class SafetyBlocked(Exception):
    """An enforced input check refused the message; the route answers 400 (flag) or 503 (check failed)."""

    def __init__(self, verdict: Verdict, answer_id: str | None = None) -> None:
        self.verdict = verdict
        self.answer_id = answer_id  # the refusal's answer record, when one was kept
        result = next(r for r in verdict.results if r.check == verdict.blocked_by)
        self.failed = result.outcome == "error"
        self.result = result
        super().__init__(f"blocked by safety check {verdict.blocked_by}")

    def body(self) -> dict[str, Any]:
        reason = "could not be checked" if self.failed else "was flagged"
        return {
            "detail": f"message refused: safety check `{self.result.check}` {reason}",
            "check": self.result.check,
            "category": self.result.category,
            "severity": self.result.severity,
            "safety": {"input": self.verdict.as_dict()},
            **({"answer_id": self.answer_id} if self.answer_id else {}),
        }


class SafetyChain:
    """Runs the checks of a stage, decides outcomes by mode and fail mode, records the metrics."""

    def __init__(
        self,
        settings: SafetySettings,
        *,
        detectors: dict[str, Detector] | None = None,
        embedder: Embedder | None = None,
        faults: FaultRegistry | None = None,
    ) -> None:
        self.settings = settings
        # Random per process unless configured: each worker plants and checks its own.
        self.canary = settings.canary or f"NIMBUS-CANARY-{secrets.token_hex(8)}"
        built = detectors if detectors is not None else build_detectors(embedder, settings.thresholds)
        self.detectors: dict[str, Any] = {**built, "canary_leak": CanaryDetector(self.canary)}
        self.faults = faults
        self._rng = random.Random()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def scan_input(
        self, text: str, embedding: np.ndarray | None = None, *, source: str = "chat", enforce: bool = True
    ) -> Verdict:
        """`embedding`: the query's MiniLM vector rag_api computed for retrieval (spares a second one)."""
        return self._scan("input", text, embedding, source, enforce)

    def scan_output(
        self, text: str, *, source: str = "chat", enforce: bool = True, canary: str | None = None
    ) -> Verdict:
        """Answers are not embedded (that would cost more than the rest of the chain): text signals only.
        `canary`: another app's own token to look for instead of rag_api's."""
        detectors = {"canary_leak": CanaryDetector(canary)} if canary else {}
        return self._scan("output", text, None, source, enforce, detectors)

    def _scan(
        self,
        stage: str,
        text: str,
        embedding: np.ndarray | None,
        source: str,
        enforce: bool,
        overrides: dict[str, Any] | None = None,
    ) -> Verdict:
        if source not in SOURCES:
            raise ValueError(f"source {source!r} not in {SOURCES}")
        start = time.perf_counter()
        results: list[CheckResult] = []
        raw: dict[str, DetectorResult] = {}
        detectors = {**self.detectors, **(overrides or {})}
        for check in STAGE_CHECKS[stage]:
            enforced = enforce and self.settings.mode_for(stage, check) == "enforce"
            result, detected = self._check(detectors[check], stage, text, embedding, enforced)
            results.append(result)
            if detected is not None:
                raw[check] = detected
        blocked_by = next((r.check for r in results if self._blocks(r, enforce)), None)
        passed_on = self._passed_on(stage, text, results, raw, blocked_by)
        for result in results:
            self._record(result, source)
        return Verdict(stage, passed_on, tuple(results), blocked_by, time.perf_counter() - start)

    def _check(
        self, detector: Any, stage: str, text: str, embedding: np.ndarray | None, enforced: bool
    ) -> tuple[CheckResult, DetectorResult | None]:
        check = detector.name
        start = time.perf_counter()
        try:
            if self.faults is not None and self.faults.fires("safety_error", self._rng):
                raise RuntimeError("injected scanner failure (fault safety_error)")
            detected: DetectorResult = detector.score(text, embedding)
        except Exception as exc:  # a failing scanner is counted and follows fail_mode; never a 500
            metrics.SAFETY_DURATION.labels(check).observe(time.perf_counter() - start)
            error = f"{type(exc).__name__}: {exc}"[:200]
            return CheckResult(check, stage, None, False, "none", None, "error", error=error), None
        metrics.SAFETY_DURATION.labels(check).observe(time.perf_counter() - start)
        score = min(max(float(detected.score), 0.0), 1.0)
        flagged = score >= detector.threshold
        if not flagged:
            outcome = "pass"
        elif not enforced:
            outcome = "flagged"
        else:
            outcome = "redacted" if (stage, check) == ("output", "pii") else "blocked"
        return CheckResult(
            check,
            stage,
            score,
            flagged,
            category(check, detected) if flagged else "none",
            severity(check, detected) if flagged else None,
            outcome,
            tuple(dict.fromkeys(e.type for e in detected.entities)),
        ), detected

    def _blocks(self, result: CheckResult, enforce: bool) -> bool:
        if result.outcome == "blocked":
            return True
        enforced = enforce and self.settings.mode_for(result.stage, result.check) == "enforce"
        return result.outcome == "error" and enforced and self.settings.fail_mode == "closed"

    def _passed_on(
        self,
        stage: str,
        text: str,
        results: list[CheckResult],
        raw: dict[str, DetectorResult],
        blocked_by: str | None,
    ) -> str:
        if stage == "output" and blocked_by is not None:
            return self.settings.refusal
        if any(r.outcome == "redacted" for r in results):
            return PIIDetector.redact(text, raw["pii"].entities)
        return text

    def describe(self) -> dict[str, Any]:
        s = self.settings
        modes = {f"{st}.{c}": s.mode_for(st, c) for st, checks in STAGE_CHECKS.items() for c in checks}
        return {"enabled": s.enabled, "modes": modes, "fail_mode": s.fail_mode}

    def redact(self, text: str) -> str:
        """`text` with every PII entity the detector finds replaced by [REDACTED_<TYPE>]."""
        return PIIDetector.redact(text, self.detectors["pii"].score(text).entities)

    @staticmethod
    def _record(result: CheckResult, source: str) -> None:
        metrics.SAFETY_CHECKS.labels(result.check, result.stage, result.outcome, source).inc()
        if result.score is not None:
            metrics.SAFETY_SCORE.labels(result.check, result.stage, source).observe(result.score)
        if result.flagged:
            metrics.SAFETY_FLAGS.labels(
                result.check, result.stage, result.category, result.severity, source
            ).inc()
