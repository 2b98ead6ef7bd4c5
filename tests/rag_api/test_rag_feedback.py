"""/feedback and the answer records on a real app, index and SQLite file; the records export CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from rag_api import records as records_cli
from rag_api.app import create_app
from rag_api.records import AnswerRecord, AnswerRecords
from tests.support.rag import copy_index, offline_settings

QUESTION = "How do I reset my password?"


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rag-feedback")


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = offline_settings(copy_index(root / "chroma"), records_path=root / "records.sqlite")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def chat(client: TestClient, **extra: object) -> dict:
    response = client.post("/chat", json={"query": QUESTION, "evaluate": "off", **extra})
    assert response.status_code == 200, response.text
    return response.json()


def vote(client: TestClient, answer_id: str, rating: str, reason: str = "other", **extra: object):
    return client.post(
        "/feedback", json={"answer_id": answer_id, "rating": rating, "reason": reason, **extra}
    )


def test_chat_answers_are_recorded_with_hashed_users(client: TestClient) -> None:
    body = chat(client, session_id="user-42")
    record = client.app.state.rag.records.get(body["answer_id"])
    assert record is not None
    assert record["query"] == QUESTION and record["answer"] == body["answer"]
    assert record["tenant"] == "default" and record["evaluator_verdict"] == "unscored"
    assert [s["id"] for s in record["sources"]] == [s["id"] for s in body["sources"]]
    assert record["user_hash"] and "user-42" not in record["user_hash"] and len(record["user_hash"]) == 64


def test_a_vote_is_counted_and_a_second_vote_replaces_the_first(client: TestClient) -> None:
    answer_id = chat(client, evaluate="sync")["answer_id"]
    down_before = sample("llm_user_feedback_total", {"rating": "down", "reason": "wrong"})
    replaced_before = sample("llm_user_feedback_replaced_total", {"rating": "down"})
    verdict_before = sample(
        "llm_user_feedback_verdicts_total", {"evaluator_verdict": "grounded", "user_rating": "up"}
    )

    first = vote(client, answer_id, "down", "wrong", comment="the steps are for iOS")
    assert first.status_code == 200, first.text
    assert first.json()["replaced"] is None and first.json()["evaluator_verdict"] == "grounded"
    second = vote(client, answer_id, "up")
    assert second.status_code == 200 and second.json()["replaced"] == "down"

    record = client.app.state.rag.records.get(answer_id)
    assert (record["rating"], record["reason"], record["comment"]) == ("up", "other", None)
    assert sample("llm_user_feedback_total", {"rating": "down", "reason": "wrong"}) == down_before + 1
    assert sample("llm_user_feedback_replaced_total", {"rating": "down"}) == replaced_before + 1
    after = sample("llm_user_feedback_verdicts_total", {"evaluator_verdict": "grounded", "user_rating": "up"})
    assert after == verdict_before + 1
    assert "the steps are for iOS" not in client.get("/metrics").text


def test_an_unknown_answer_id_is_a_404(client: TestClient) -> None:
    response = vote(client, "0" * 32, "up")
    assert response.status_code == 404 and "answer_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"answer_id": "not-an-id", "rating": "up"}, "answer_id"),
        ({"answer_id": "a" * 32, "rating": "meh"}, "rating"),
        ({"answer_id": "a" * 32, "rating": "down", "reason": "boring"}, "reason"),
        ({"answer_id": "a" * 32, "rating": "down", "comment": "x" * 1001}, "comment"),
        ({"answer_id": "a" * 32, "rating": "down", "extra": 1}, "extra"),
        ({"rating": "down"}, "answer_id"),
    ],
)
def test_bad_feedback_is_a_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["detail"]}, response.json()


def test_expired_records_are_404_and_pruned_records_are_counted(tmp_path: Path) -> None:
    store = AnswerRecords(tmp_path / "r.sqlite", retention_seconds=60, max_records=10, salt="s")
    old = AnswerRecord("a" * 32, "default", "q", "a", [], None, "unscored", created=time.time() - 120)
    store.add(old)
    assert store.get(old.id) is None  # past the retention: expired even before a pruning pass
    retention_before = sample("llm_answer_records_pruned_total", {"reason": "retention"})
    size_before = sample("llm_answer_records_pruned_total", {"reason": "size"})
    for i in range(15):
        store.add(
            AnswerRecord(f"{i:032x}", "default", "q", "a", [], None, "unscored", created=time.time() + i)
        )
    store.prune()
    assert store.count() == 10
    assert sample("llm_answer_records_pruned_total", {"reason": "retention"}) == retention_before + 1
    assert sample("llm_answer_records_pruned_total", {"reason": "size"}) == size_before + 5
    assert store.get(f"{14:032x}") is not None and store.get(f"{0:032x}") is None  # the oldest went
    store.close()


def test_the_export_writes_down_voted_answers_as_eval_cases(
    client: TestClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = chat(client)
    up = chat(client)
    assert (
        vote(client, down["answer_id"], "down", "irrelevant", comment="not what I asked").status_code == 200
    )
    assert vote(client, up["answer_id"], "up").status_code == 200
    out = root / "cases.jsonl"
    code = records_cli.main(
        ["export", "--db", str(root / "records.sqlite"), "--feedback", "down", "--out", str(out)]
    )
    assert code == 0
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    ids = {case["id"] for case in cases}
    assert f"feedback-{down['answer_id']}" in ids and f"feedback-{up['answer_id']}" not in ids
    case = next(c for c in cases if c["id"] == f"feedback-{down['answer_id']}")
    assert case["query"] == QUESTION and case["must_not_equal"] == down["answer"]
    assert case["user_reason"] == "irrelevant" and case["user_comment"] == "not what I asked"
    assert case["must_cite"] and case["must_cite"][0] in {s["title"] for s in down["sources"]}
