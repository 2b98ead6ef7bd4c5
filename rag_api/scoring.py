"""Offline evidence scores for RAG answers: groundedness, context relevance, answer relevance (no LLM).

Groundedness asks whether the answer's claims are backed by the context. Each answer sentence is checked
against the context through four views of the same evidence, and their unsupported shares are averaged:

* surface copy — the share of the sentence's words (function words included) absent from the context;
  faithful dialogue and QA answers reuse the passage's wording, invented ones bring their own;
* content words — the same with function words removed, so "the/of/is" cannot vouch for a sentence;
* word pairs — the share of adjacent word pairs absent from the context, which catches claims that recombine
  context words into a fact the context does not state ("X directed Y" when X and Y appear apart). Pairs the
  answer copies from the question are left out: echoing the question is not evidence of support;
* first person — 1 when the sentence speaks in the first person ("I love", "my favourite", "we went") and
  the context does not: a personal opinion or anecdote cannot be attributed to a knowledge passage.

Words match on their first five letters, so morphological variants (garment/garments, vary/varies) of a
context word count as support. Polar particles (yes/no/yeah) are not claims and are skipped; a bare "yes" or
"no" asserts or denies the question's own proposition, so it is judged by how well the context supports the
question's words.

Sentences are weighted by their word count, so a long invented sentence cannot hide behind a short true one,
and the score is a share, not a count: a longer answer is not penalised for being long (see the benchmark's
length-strata check). Relevance scores combine MiniLM cosine similarity with lexical overlap.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from rag_api.text import (
    FUNCTION_WORDS,
    EmbeddingCache,
    clamp01,
    content_words,
    sentences,
    stem,
    words,
)

# Answer particles that assert or deny without stating anything checkable.
_POLAR = frozenset(["yes", "no", "yeah", "yep", "nope"])
_FIRST_PERSON = frozenset(["i", "me", "my", "mine", "myself", "we", "us", "our", "ours"])
_APOSTROPHE = re.compile("['\u2019]")  # I'm / I\u2019m
_SENTENCE_END = re.compile(r"[.!?:;]")
_CASED_WORD = re.compile("[A-Za-z]+(?:['\u2019][A-Za-z]+)?")

# MiniLM cosine between unrelated English texts sits around 0-0.15, between a question and a passage that
# answers it around 0.45-0.8: map [_COS_FLOOR, _COS_CEIL] linearly onto [0, 1].
_COS_FLOOR = 0.10
_COS_CEIL = 0.65


def first_person(text: str) -> set[str]:
    """The first-person pronouns `text` uses. Capital "I" right after a capitalised word inside a sentence is
    a numeral ("World War I", "Elizabeth I"); after a sentence-initial word ("Then I left") it is the
    pronoun. Capital "US" is the country."""
    found: set[str] = set()
    end = 0  # where the previous word ended
    name_before = False  # the previous word is capitalised and not the first of its sentence
    for match in _CASED_WORD.finditer(text):
        word = match.group()
        head = _APOSTROPHE.split(word)[0]
        starts_sentence = end == 0 or bool(_SENTENCE_END.search(text, end, match.start()))
        if head == "I":
            if starts_sentence or not name_before:
                found.add("i")
        elif head.lower() in _FIRST_PERSON and head != "US":
            found.add(head.lower())
        name_before = word[:1].isupper() and not starts_sentence and head != "I"
        end = match.end()
    return found


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str
    words: int
    unsupported_words: float  # share of all words absent from the context
    unsupported_content: float  # share of content words absent from the context
    unsupported_pairs: float  # share of adjacent word pairs absent from the context
    first_person: float  # 1.0 when the sentence speaks in the first person and the context does not

    @property
    def unsupported(self) -> float:
        views = (self.unsupported_words, self.unsupported_content, self.unsupported_pairs, self.first_person)
        return sum(views) / len(views)


class ContextIndex:
    """The context's word keys, key pairs and first-person pronouns, built once for every answer sentence."""

    def __init__(self, contexts: list[str], question: str = "") -> None:
        self.vocabulary: set[str] = set()
        self.pairs: set[tuple[str, str]] = set()
        self.first_person: set[str] = set()
        for text in contexts:
            keys = [stem(t) for t in words(text)]
            self.vocabulary.update(keys)
            self.pairs.update(itertools.pairwise(keys))
            self.first_person |= first_person(text)
        self.question_pairs = set(itertools.pairwise(stem(t) for t in words(question)))

    def support(self, sentence: str, *, echo_allowed: bool = False) -> SentenceSupport | None:
        """None when the sentence makes no checkable claim (no words, or only yes/no particles).
        echo_allowed: score pairs shared with the question too (when the question itself is the claim)."""
        tokens = [t for t in words(sentence) if t not in _POLAR]
        if not tokens:
            return None
        keys = [stem(t) for t in tokens]
        missing = [k not in self.vocabulary for k in keys]
        unsupported_words = sum(missing) / len(keys)
        content = [m for t, m in zip(tokens, missing, strict=True) if t not in FUNCTION_WORDS]
        # A sentence of function words only ("it is.") makes no checkable claim of content: fall back.
        unsupported_content = sum(content) / len(content) if content else unsupported_words
        # A pair the answer copies from the question is no evidence of support even if the context has it;
        # an echoed pair the context lacks still counts against the answer.
        pairs = [
            p
            for p in itertools.pairwise(keys)
            if echo_allowed or p not in self.question_pairs or p not in self.pairs
        ]
        unsupported_pairs = (
            sum(p not in self.pairs for p in pairs) / len(pairs) if pairs else unsupported_content
        )
        personal = float(bool(first_person(sentence) - self.first_person))
        return SentenceSupport(
            sentence, len(tokens), unsupported_words, unsupported_content, unsupported_pairs, personal
        )


def groundedness(contexts: list[str], answer: str, question: str = "") -> tuple[float, list[SentenceSupport]]:
    """1 - the word-weighted mean unsupported share of the answer's sentences, and the per-sentence detail.

    An answer with no checkable words makes no claim of its own: a bare yes/no is judged through the
    question's proposition; without a question it is vacuously grounded (1.0). Without any context nothing
    can be supported: every sentence counts as unsupported.
    """
    index = ContextIndex([c for c in contexts if c], question)
    detail = [s for s in (index.support(x) for x in (sentences(answer) or [answer])) if s is not None]
    if not detail and question.strip():
        claim = index.support(question, echo_allowed=True)
        detail = [claim] if claim is not None else []
    if not detail:
        return 1.0, []
    total = sum(s.words for s in detail)
    unsupported = sum(s.unsupported * s.words for s in detail) / total
    return clamp01(1.0 - unsupported), detail


def token_overlap_baseline(context: str, answer: str) -> float:
    """The reference baseline: share of the answer's content words (sklearn stop words) in the context."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    vocabulary = set(words(context))
    content = [w for w in words(answer) if w not in ENGLISH_STOP_WORDS]
    if not content:
        return 1.0
    return sum(w in vocabulary for w in content) / len(content)


def _embed(texts: list[str]) -> np.ndarray:
    from rag_api.embeddings import get_embedder  # imports Chroma's types: only once something is embedded

    return get_embedder().embed(texts)


# The three metrics of one answer embed the same texts.
_CACHE = EmbeddingCache(_embed, maxsize=2048)


def semantic_similarity(a: str, b: str) -> float:
    """MiniLM cosine mapped onto [0, 1] (see _COS_FLOOR/_COS_CEIL)."""
    if not a.strip() or not b.strip():
        return 0.0
    va, vb = _CACHE.embed([a, b])
    cosine = float(np.dot(va, vb))
    return clamp01((cosine - _COS_FLOOR) / (_COS_CEIL - _COS_FLOOR))


_WINDOW_WORDS = 60
_MAX_WINDOWS = 8  # bounds the embedding cost of one chunk: each window is one short MiniLM pass


def _windows(text: str) -> list[str]:
    """Consecutive sentences packed into passages of at most about _WINDOW_WORDS words (an over-long sentence
    is cut by words). Short passages embed fast; one 256-token text would cost as much as eight of them."""
    pieces: list[list[str]] = []
    for sentence in sentences(text) or [text]:
        tokens = sentence.split()
        pieces.extend(tokens[i : i + _WINDOW_WORDS] for i in range(0, len(tokens), _WINDOW_WORDS))
    out: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if current and len(current) + len(piece) > _WINDOW_WORDS:
            out.append(" ".join(current))
            current = []
        current.extend(piece)
    if current:
        out.append(" ".join(current))
    return out[:_MAX_WINDOWS]


def context_relevance(question: str, context: str) -> float:
    """How much one context chunk is about the question: 0.75 meaning + 0.25 share of the question's topic
    words the chunk contains. A long chunk is judged by its best-matching passage (runs of sentences of about
    _WINDOW_WORDS words): one relevant passage in a long chunk is what retrieval needs."""
    if not question.strip() or not context.strip():
        return 0.0
    vectors = _CACHE.embed([question, *(_windows(context) or [context])])
    cosines = vectors[1:] @ vectors[0]
    semantic = clamp01((float(cosines.max()) - _COS_FLOOR) / (_COS_CEIL - _COS_FLOOR))
    topic = content_words(question)
    lexical = len(topic & set(words(context))) / len(topic) if topic else semantic
    return clamp01(0.75 * semantic + 0.25 * lexical)


def answer_relevance(question: str, answer: str) -> float:
    """How much the answer addresses the question: 0.8 meaning + 0.2 shared topic words (a right answer is
    often a bare entity that shares no word with its question, so meaning carries most of the weight)."""
    if not question.strip() or not answer.strip():
        return 0.0
    semantic = semantic_similarity(question, answer)
    topic = content_words(question)
    lexical = len(topic & set(words(answer))) / len(topic) if topic else semantic
    return clamp01(0.8 * semantic + 0.2 * lexical)
