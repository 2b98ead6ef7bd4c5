"""Text helpers shared by chunking, generation and scoring: one tokeniser, one stop-word list, one stemmer,
one sentence splitter, one bounded LRU embedding cache and one clamp.

Chunking (`rag_api.store`), the offline generator (`rag_api.llm`) and the scorer (`rag_api.scoring`) all read
text through these, so a word, a stop word or a sentence means the same thing everywhere.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
# In edited prose a sentence starts with a capital, a digit, a quote or a bracket.
_PROSE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[*`])|\n+")

# Only pure function words: conversational words ("think", "love", "guess") stay, because in dialogue an
# opinion or anecdote the passage does not state is exactly the unattributable content the scorer must notice.
_FUNCTION_WORDS = """a an the and or but of to in on at for with by from is are was were be been it this that
i you he she we they my your his her its our their me him them as so do does did not no yes"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())
# What a text is about leaves out conversational filler and question words too.
_FILLER = """what which who whom whose when where why how is there any can could would should will about
tell me know think like really just also some much many more most other please"""
STOP_WORDS = FUNCTION_WORDS | frozenset(_FILLER.split())

STEM_LETTERS = 5  # a word's stem is its first five letters: "garments" ~ "garment", "varies" ~ "vary"


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits, in order."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A crude stemmer: plural and tense endings fall away with everything past STEM_LETTERS letters."""
    return word[:STEM_LETTERS]


def content_words(text: str) -> set[str]:
    """The words of `text` that carry its topic (stop words removed), unstemmed."""
    return {w for w in words(text) if w not in STOP_WORDS}


def sentences(text: str, *, prose: bool = False) -> list[str]:
    """Sentences and lines of `text`: split after . ! ? followed by white space, and at line breaks; parts
    without a letter or digit (stray punctuation) are dropped.

    prose: `text` is edited writing (the knowledge articles), where a sentence starts with a capital, digit,
    quote or bracket, so a lowercase word after the mark continues the sentence ("Click Forgot password?
    under the field", "the ? menu"). Answers and questions are scored without it: dialogue is often written
    in lower case, where case says nothing about sentence ends.
    """
    parts = (p.strip() for p in (_PROSE_BREAK if prose else _BREAK).split(text))
    return [p for p in parts if _WORD.search(p.lower())]


def clamp01(value: float) -> float:
    """`value` limited to [0, 1]. NaN raises ValueError: a score that is not a number never becomes 0."""
    value = float(value)
    if math.isnan(value):
        raise ValueError("not a number")
    return min(1.0, max(0.0, value))


class EmbeddingCache:
    """Bounded, thread-safe, least-recently-used text → vector cache in front of an `embed` function.

    A lookup moves the entry to the most-recent end. A call returns every vector it asked for even when its
    own insertions evict older entries: the answer is built from what this call found or computed, never
    re-read from the cache after evicting.
    """

    def __init__(self, embed: Callable[[list[str]], np.ndarray], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._embed = embed
        self.maxsize = maxsize
        self.evictions = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The distinct texts not cached, in order (does not count as a use of the cached ones)."""
        with self._lock:
            return [t for t in dict.fromkeys(texts) if t not in self._items]

    def warm(self, texts: list[str]) -> int:
        """Embed the texts not cached yet, shortest first (a batch pads to its longest). Returns how many."""
        missing = sorted(self.missing(texts), key=len)
        if missing:
            self.embed(missing)
        return len(missing)

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order; only the texts not cached are embedded (once each)."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in dict.fromkeys(texts):
                vector = self._items.get(text)
                if vector is not None:
                    self._items.move_to_end(text)
                    found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self._embed(missing)
            found.update(zip(missing, vectors, strict=True))
            self._insert(missing, vectors)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([found[t] for t in texts])

    def _insert(self, texts: list[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._items[text] = vector
                self._items.move_to_end(text)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
                self.evictions += 1
