"""The RAG quality scorer: offline evidence scores, the TruLens judge path over a real local OpenAI-compatible
server, and the batch CLI."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rag_api.evaluation import SCORE_FIELDS, EvaluationError, Evaluator, Scores, build_evaluator, score_rows
from rag_api.scoring import first_person, groundedness
from tests.support.openai_server import OpenAICompatibleServer, last_user_message

ROOT = Path(__file__).resolve().parents[2]

CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower. "
    "It was constructed from 1887 to 1889 as the centerpiece of the 1889 World's Fair. "
    "The tower is 330 metres tall and was the tallest man-made structure in the world for 41 years."
)
QUESTION = "Who built the Eiffel Tower and when was it constructed?"
UNRELATED_CONTEXT = (
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen. It takes place mainly in the chloroplasts of leaf cells."
)


@pytest.fixture(scope="module")
def offline() -> Evaluator:
    evaluator = build_evaluator(api_key=None, base_url=None, model="unused", timeout=5.0, max_retries=0)
    assert evaluator.provider_name == "offline"
    return evaluator


# -- offline sanity cases -----------------------------------------------------------------------------------


def test_verbatim_copy_of_the_context_is_grounded(offline: Evaluator) -> None:
    scores = offline.score(QUESTION, [CONTEXT], CONTEXT)
    assert scores.groundedness >= 0.95
    assert scores.hallucination == pytest.approx(1.0 - scores.groundedness)


def test_facts_and_numbers_absent_from_the_context_are_not_grounded(offline: Evaluator) -> None:
    faithful = offline.score(
        QUESTION, [CONTEXT], "Gustave Eiffel's company built it; it was constructed from 1887 to 1889."
    )
    invented = offline.score(
        QUESTION,
        [CONTEXT],
        "Jacques Moreau's firm erected it between 1901 and 1907 for 12 million francs.",
    )
    assert faithful.groundedness >= 0.8
    assert invented.groundedness <= 0.4
    assert faithful.groundedness - invented.groundedness >= 0.4


def test_off_topic_answer_is_neither_grounded_nor_relevant(offline: Evaluator) -> None:
    on_topic = offline.score(QUESTION, [CONTEXT], "Gustave Eiffel's company built it from 1887 to 1889.")
    off_topic = offline.score(
        QUESTION, [CONTEXT], "My favourite pizza topping is pineapple with extra mozzarella cheese."
    )
    assert off_topic.groundedness <= 0.3
    assert off_topic.answer_relevance <= 0.3
    assert on_topic.answer_relevance - off_topic.answer_relevance >= 0.3


def test_relevant_context_scores_higher_than_unrelated_context(offline: Evaluator) -> None:
    answer = "Gustave Eiffel's company built it."
    relevant = offline.score(QUESTION, [CONTEXT], answer)
    unrelated = offline.score(QUESTION, [UNRELATED_CONTEXT], answer)
    mixed = offline.score(QUESTION, [CONTEXT, UNRELATED_CONTEXT], answer)
    assert relevant.context_relevance >= 0.6
    assert unrelated.context_relevance <= 0.3
    assert unrelated.context_relevance < mixed.context_relevance < relevant.context_relevance


def test_recombined_context_words_score_lower_than_the_stated_fact(offline: Evaluator) -> None:
    # Every word is in the context, but the pairing is invented: the word-pair view must notice.
    stated = offline.score(QUESTION, [CONTEXT], "The tower is 330 metres tall.")
    recombined = offline.score(QUESTION, [CONTEXT], "The Fair is 41 metres tall and designed Paris.")
    assert stated.groundedness > recombined.groundedness


def test_bare_yes_or_no_is_judged_through_the_question(offline: Evaluator) -> None:
    # "Yes." states nothing itself: it asserts the question's proposition, so the context must support that.
    stated = offline.score("Was the tower built for the 1889 World's Fair in Paris?", [CONTEXT], "Yes.")
    absent = offline.score("Was the tower painted by Claude Monet in Venice?", [CONTEXT], "Yes.")
    assert stated.groundedness >= 0.85
    assert stated.groundedness - absent.groundedness >= 0.3


def test_first_person_opinion_is_not_attributable_to_the_passage() -> None:
    plain = groundedness([CONTEXT], "The tower is 330 metres tall.")[0]
    personal, detail = groundedness([CONTEXT], "I love that the tower is 330 metres tall.")
    assert plain - personal >= 0.3
    assert detail[0].first_person == 1.0
    # Not when the context itself speaks in the first person, nor for "World War I" or "the US".
    assert groundedness([CONTEXT + " I visited it in 1990."], "I visited it in 1990.")[0] >= 0.95
    assert first_person("World War I ended. The US team won.") == set()
    assert first_person("Sure. I'm sure my dad agrees.") == {"i", "my"}
    assert first_person("Elizabeth I ruled. Then I left.") == {"i"}


def test_morphological_variants_count_as_support_but_echoing_the_question_does_not() -> None:
    variants = groundedness([CONTEXT], "The towers were designed by the engineer's companies.")[0]
    invented = groundedness([CONTEXT], "The towers were painted by the mayor's nephews.")[0]
    assert variants - invented >= 0.2
    question = "Which engineer from Lyon designed the tower?"
    right = groundedness([CONTEXT], "Gustave Eiffel.", question)[0]
    echo = groundedness([CONTEXT], "The engineer from Lyon designed the tower.", question)[0]
    assert right >= 0.9
    assert right - echo >= 0.2  # "engineer from Lyon" comes from the question, not the context


def test_nothing_to_score_raises(offline: Evaluator) -> None:
    with pytest.raises(EvaluationError):
        offline.score(QUESTION, [], "Gustave Eiffel.")
    with pytest.raises(EvaluationError):
        offline.score(QUESTION, ["   "], "Gustave Eiffel.")
    with pytest.raises(EvaluationError):
        offline.score(QUESTION, [CONTEXT], "  ")


def test_scores_are_clamped_and_nan_is_refused() -> None:
    scores = Scores(groundedness=1.7, context_relevance=-0.2, answer_relevance=0.25)
    assert (scores.groundedness, scores.context_relevance, scores.answer_relevance) == (1.0, 0.0, 0.25)
    assert scores.hallucination == 0.0
    with pytest.raises(EvaluationError):
        Scores(groundedness=math.nan, context_relevance=0.5, answer_relevance=0.5)


def test_offline_scores_stay_in_range(offline: Evaluator) -> None:
    cases = [
        ("?", ["a"], "b"),
        ("What is 2 + 2?", ["2 + 2 = 4"], "4"),
        (QUESTION, [CONTEXT * 20], "Paris! " * 200),
    ]
    for question, contexts, answer in cases:
        scores = offline.score(question, contexts, answer)
        for value in (scores.groundedness, scores.context_relevance, scores.answer_relevance):
            assert 0.0 <= value <= 1.0


# -- the TruLens LLM-judge path against a real local OpenAI-compatible server -------------------------------


def judge_responder(request: dict[str, Any]) -> str:
    """A deterministic judge speaking TruLens's prompt formats: splits statements one per line, grades a
    statement 3 if it mentions Eiffel else 0, context relevance 2 and answer relevance 1 (all on 0-3)."""
    system = str(request["messages"][0].get("content", ""))
    user = last_user_message(request)
    if system.startswith("Split the following statement"):
        return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", user.strip()) if s)
    if "STATEMENT:" in user:
        statement = user.split("STATEMENT:", 1)[1].split("\n", 1)[0].strip()
        score = 3 if "Eiffel" in statement else 0
        return json.dumps({"criteria": statement, "supporting_evidence": "NOTHING FOUND", "score": score})
    if "SEARCH RESULT:" in user:
        return json.dumps({"criteria": "relevance", "supporting_evidence": "ok", "score": 2})
    if "RESPONSE:" in user:
        return json.dumps({"criteria": "relevance", "supporting_evidence": "ok", "score": 1})
    return "unexpected prompt"


def judge(srv: OpenAICompatibleServer, **overrides: Any) -> Evaluator:
    options: dict[str, Any] = {
        "api_key": None,
        "base_url": srv.base_url,
        "model": "test-model",
        "timeout": 5.0,
        "max_retries": 0,
    }
    options.update(overrides)
    return build_evaluator(**options)


def test_judge_path_goes_through_the_server_and_parses_scores() -> None:
    with OpenAICompatibleServer(responder=judge_responder) as srv:
        evaluator = judge(srv)
        assert evaluator.provider_name == "openai"
        answer = "Gustave Eiffel's company built it. It opened to visitors on the moon."
        scores = evaluator.score(QUESTION, [CONTEXT, UNRELATED_CONTEXT], answer)
        requests = srv.requests
    # Two statements graded 3/3 and 0/3 → 0.5; two chunks at 2/3; answer relevance 1/3.
    assert scores.groundedness == pytest.approx(0.5)
    assert scores.context_relevance == pytest.approx(2 / 3)
    assert scores.answer_relevance == pytest.approx(1 / 3)
    assert all(r["model"] == "test-model" for r in requests)
    users = [last_user_message(r) for r in requests]
    assert sum("STATEMENT:" in u for u in users) == 2
    assert sum("SEARCH RESULT:" in u for u in users) == 2
    assert any(UNRELATED_CONTEXT in u for u in users)
    assert any(answer in u and "RESPONSE:" in u for u in users)


def test_unparseable_judge_output_raises() -> None:
    with OpenAICompatibleServer(responder=lambda request: "I would rather not say, honestly.") as srv:
        evaluator = judge(srv, api_key="sk-test")
        with pytest.raises(EvaluationError):
            evaluator.score(QUESTION, [CONTEXT], "Gustave Eiffel's company built it.")
        assert srv.requests, "the judge was never asked"
        headers = {k.lower(): v for k, v in srv.headers[0].items()}
        assert headers.get("authorization") == "Bearer sk-test"


def test_judge_server_failure_raises() -> None:
    with OpenAICompatibleServer(responder=judge_responder) as srv:
        evaluator = judge(srv)
        srv.fail_next(50, "error")
        with pytest.raises(EvaluationError):
            evaluator.score(QUESTION, [CONTEXT], "Gustave Eiffel's company built it.")
        srv.reset()
        srv.fail_next(50, "malformed")
        with pytest.raises(EvaluationError):
            evaluator.score(QUESTION, [CONTEXT], "Gustave Eiffel's company built it.")


# -- the batch CLI -------------------------------------------------------------------------------------------


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(extra)
    return env


def test_batch_cli_writes_one_score_line_per_row_in_order(tmp_path: Path) -> None:
    rows = [
        {"id": "copy", "context": CONTEXT, "question": QUESTION, "answer": CONTEXT, "label": 0},
        {
            "id": 17,
            "context": CONTEXT,
            "question": QUESTION,
            "answer": "Jacques Moreau's firm erected it in 1907.",
            "source": "x",
        },
        {"id": "off", "context": UNRELATED_CONTEXT, "question": QUESTION, "answer": "Pizza is tasty."},
    ]
    source, target = tmp_path / "in.jsonl", tmp_path / "out" / "scores.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rag_api.evaluation", "--input", str(source), "--output", str(target)],
        cwd=ROOT,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    out = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [o["id"] for o in out] == ["copy", 17, "off"]
    for o in out:
        assert set(o) == {"id", "groundedness", "context_relevance", "answer_relevance"}
        assert all(0.0 <= o[k] <= 1.0 for k in o if k != "id")
    assert out[0]["groundedness"] > 0.9 > out[1]["groundedness"]
    assert out[2]["context_relevance"] < out[0]["context_relevance"]


def test_batch_cli_rejects_a_row_without_an_answer(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "context": "c", "question": "q"}) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rag_api.evaluation", "--input", str(source), "--output", str(tmp_path / "o")],
        cwd=ROOT,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "answer" in result.stderr


def test_batch_rows_with_null_or_non_text_fields_are_reported_not_scored(offline: Evaluator) -> None:
    # Issue 11 #17: str(None) used to be scored as the answer "None".
    rows = [
        {"id": "ok", "context": CONTEXT, "question": QUESTION, "answer": "Gustave Eiffel's company."},
        {"id": "no-answer", "context": CONTEXT, "question": QUESTION, "answer": None},
        {"id": "no-question", "context": [CONTEXT], "question": None, "answer": "Gustave Eiffel."},
        {"id": "null-context", "context": [CONTEXT, None], "question": QUESTION, "answer": "Eiffel."},
        {"id": "flag", "context": CONTEXT, "question": QUESTION, "answer": True},
        {"id": "year", "context": CONTEXT, "question": "When was it finished?", "answer": 1889},
    ]
    out = {record["id"]: record for record in score_rows(rows, offline)}
    assert out["ok"]["groundedness"] is not None and "error" not in out["ok"]
    assert out["no-answer"]["error"] == "field 'answer' is null, not text"
    assert out["no-question"]["error"] == "field 'question' is null, not text"
    assert out["null-context"]["error"] == "field 'context' is null, not text"
    assert out["flag"]["error"] == "field 'answer' is bool, not text"
    for name in ("no-answer", "no-question", "null-context", "flag"):
        assert all(out[name][field] is None for field in SCORE_FIELDS), out[name]
    assert out["year"]["groundedness"] == 1.0  # a number is read as its digits, found in the context
