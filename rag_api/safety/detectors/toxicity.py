"""Toxic language (hate, insults, threats, profanity, sexual harassment) in a message or an answer.

Signals: a hand-written lexicon (lexicons/toxicity.tsv, English and German) matched after undoing common
obfuscation (f*ck, sh1t, fuuuck), and, when an embedding is available, a logistic head over MiniLM
embeddings trained on the project's own corpus. Score = noisy-OR.
"""

from __future__ import annotations

import re

from rag_api.safety.detectors.head import LexiconHeadDetector
from rag_api.safety.detectors.patterns import load_lexicon

_LEET = str.maketrans(
    {"@": "a", "4": "a", "$": "s", "5": "s", "0": "o", "1": "i", "!": "i", "3": "e", "7": "t"}
)
_MASKED = re.compile(r"(?<=[a-z])[*#%]+(?=[a-z])")  # f*ck, sh#t: the mask stands for vowels
_REPEATS = re.compile(r"([a-z])\1{2,}")

LEXICON = load_lexicon("toxicity")  # hate, threat, insult, profanity, sexual


def normalise(text: str) -> str:
    """Lower-case, undo leetspeak inside words and masks, squeeze letter runs (fuuuck → fuuck)."""
    lowered = text.lower()
    words = [w.translate(_LEET) if any(c.isalpha() for c in w) else w for w in lowered.split()]
    joined = _REPEATS.sub(r"\1\1", " ".join(words))
    if _MASKED.search(joined):  # the hidden vowel is unknown: read both "f*ck" → fuck and "sh*t" → shit
        joined = _MASKED.sub("u", joined) + "\n" + _MASKED.sub("i", joined)
    return joined


class ToxicityDetector(LexiconHeadDetector):
    name = "toxicity"
    categories = ("none", "hate", "threat", "insult", "profanity", "sexual", "semantic")
    patterns = LEXICON

    def normalise(self, text: str) -> str:
        return normalise(text)
