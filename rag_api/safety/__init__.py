"""LLM safety signals for rag_api: detectors (rag_api.safety.detectors) and the batch scorer (__main__)."""

from rag_api.safety.detectors import (
    PII_TYPES,
    DetectorResult,
    InjectionDetector,
    PIIDetector,
    PIIEntity,
    ToxicityDetector,
    build_detectors,
)

__all__ = [
    "PII_TYPES",
    "DetectorResult",
    "InjectionDetector",
    "PIIDetector",
    "PIIEntity",
    "ToxicityDetector",
    "build_detectors",
]
