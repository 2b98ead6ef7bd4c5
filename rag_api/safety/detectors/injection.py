"""Prompt injection and jailbreak attempts in a user's message (English and German; common French, Spanish).

Two signals: hand-written phrase patterns (lexicons/injection.tsv: instruction override, role play, prompt
extraction, jailbreak, task switch), and, when an embedding is available, a logistic head over MiniLM
sentence embeddings trained on the project's own written corpus (corpus/README.md). Score = noisy-OR.
"""

from __future__ import annotations

from rag_api.safety.detectors.head import LexiconHeadDetector
from rag_api.safety.detectors.patterns import load_lexicon

PATTERNS = load_lexicon("injection")


class InjectionDetector(LexiconHeadDetector):
    name = "prompt_injection"
    categories = ("none", "instruction_override", "role_play", "prompt_extraction", "jailbreak", "semantic")
    patterns = PATTERNS
