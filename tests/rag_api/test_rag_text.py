"""rag_api.text: the one LRU embedding cache, sentence splitter, stop list and clamp of the RAG modules."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from rag_api.text import EmbeddingCache, clamp01, content_words, sentences, stem


class CountingEmbed:
    """A deterministic embed function (a vector from the text's hash) that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.vstack([self.vector(t) for t in texts])

    @staticmethod
    def vector(text: str) -> np.ndarray:
        digest = hashlib.sha256(text.encode()).digest()
        return np.frombuffer(digest, dtype=np.uint8).astype(np.float32)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def test_a_hit_evicted_by_the_same_calls_insertions_is_still_returned() -> None:
    # Issue 11 #16: "a" is found in the cache, then inserting "c" and "d" pushes it out before the answer is
    # assembled; the old cache re-read it from its dict and raised KeyError.
    embed = CountingEmbed()
    cache = EmbeddingCache(embed, maxsize=2)
    cache.embed(["a", "b"])
    vectors = cache.embed(["a", "c", "d"])
    assert [v.tolist() for v in vectors] == [embed.vector(t).tolist() for t in ("a", "c", "d")]
    assert len(cache) == 2 and cache.evictions == 2


def test_a_hit_becomes_the_most_recently_used_entry() -> None:
    embed = CountingEmbed()
    cache = EmbeddingCache(embed, maxsize=2)
    cache.embed(["a", "b"])
    cache.embed(["a"])  # a hit: "b" is now the least recently used
    cache.embed(["c"])  # evicts "b", not "a"
    cache.embed(["a"])
    assert embed.embedded == ["a", "b", "c"]
    cache.embed(["b"])
    assert embed.embedded == ["a", "b", "c", "b"]


def test_a_call_larger_than_the_cache_returns_every_row_and_stays_bounded() -> None:
    embed = CountingEmbed()
    cache = EmbeddingCache(embed, maxsize=3)
    texts = [f"text {i}" for i in range(10)] + ["text 0"]
    vectors = cache.embed(texts)
    assert vectors.shape == (11, 32)
    assert np.array_equal(vectors[0], vectors[10])
    assert embed.embedded == texts[:10]  # each distinct text embedded once
    assert len(cache) == 3 and cache.missing(["text 9", "text 0"]) == ["text 0"]


def test_warm_embeds_only_what_is_missing_shortest_first() -> None:
    embed = CountingEmbed()
    cache = EmbeddingCache(embed, maxsize=10)
    cache.embed(["cached"])
    assert cache.warm(["a longer one", "cached", "short"]) == 2
    assert embed.calls[-1] == ["short", "a longer one"]
    assert cache.warm(["short"]) == 0


def test_prose_sentences_keep_a_lowercase_continuation_after_a_question_mark() -> None:
    line = "Click Forgot password? under the password field. Then open the ? menu."
    assert sentences(line, prose=True) == ["Click Forgot password? under the password field.", line[49:]]
    # Answers and questions are often written in lower case: every mark ends a sentence there.
    assert sentences("yes , i love it . it has a grain of salt") == [
        "yes , i love it .",
        "it has a grain of salt",
    ]
    assert sentences("one\n\ntwo -- ...") == ["one", "two -- ..."]
    assert sentences(" ... ") == []


def test_one_stop_list_and_stemmer() -> None:
    assert content_words("How can I reset the passwords, please?") == {"reset", "passwords"}
    assert stem("passwords") == stem("password") and stem("policies") == stem("policy")


def test_clamp_limits_to_the_unit_interval_and_refuses_nan() -> None:
    assert (clamp01(1.7), clamp01(-0.2), clamp01(0.25)) == (1.0, 0.0, 0.25)
    with pytest.raises(ValueError):
        clamp01(math.nan)
