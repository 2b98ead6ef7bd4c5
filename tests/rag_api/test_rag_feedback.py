"""/feedback and the answer records on a real app, index and SQLite file; the records export CLI."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from labctl.config import Ports
from labctl.plan import ml_rag_env
from rag_api import feedback as feedback_cli
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


def test_scores_that_arrive_after_the_answer_update_its_record(client: TestClient) -> None:
    """evaluate=async: /chat returns before the queue scores; the scores and verdict reach the record."""
    served = chat(client, evaluate="async")
    assert served["evaluation"] == "queued" and served["scores"] is None
    rag = client.app.state.rag
    client.portal.call(rag.evaluations.join)  # type: ignore[union-attr]  # the queue has scored it
    record = rag.records.get(served["answer_id"])
    # The offline generator and scorer are deterministic: the same question scored inline scores the same.
    inline = chat(client, evaluate="sync")
    assert inline["answer"] == served["answer"] and inline["scores"] is not None
    assert record["scores"] == inline["scores"]
    assert record["evaluator_verdict"] == "grounded"  # the offline answer is extracted from the context


def test_a_records_file_of_the_first_schema_gains_the_safety_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE answers (id TEXT PRIMARY KEY, created REAL NOT NULL, tenant TEXT NOT NULL,"
            " user_hash TEXT, query TEXT NOT NULL, answer TEXT NOT NULL, sources TEXT NOT NULL, scores TEXT,"
            " evaluator_verdict TEXT NOT NULL, rating TEXT, reason TEXT, comment TEXT, feedback_at REAL);"
        )
    store = AnswerRecords(path, retention_seconds=60, max_records=10, salt="s")
    flags = {"input": {"blocked_by": "pii", "checks": []}, "output": None}
    store.add(
        AnswerRecord(
            "b" * 32, "default", "q", "", [], None, "unscored", safety=flags, safety_action="input_blocked"
        )
    )
    record = store.get("b" * 32)
    store.close()
    assert record is not None and record["safety"] == flags and record["safety_action"] == "input_blocked"


def test_the_clis_read_the_native_labs_records_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --db and no RAG_RECORDS_PATH: the CLIs open the file the native lab's rag_api writes."""
    lab_var = tmp_path / "lab-var"
    written_by_the_lab = Path(ml_rag_env(lab_var, Ports.free())["RAG_RECORDS_PATH"])
    store = AnswerRecords(written_by_the_lab, retention_seconds=3600, max_records=10, salt="s")
    store.add(
        AnswerRecord("c" * 32, "default", QUESTION, "Use Settings.", [{"title": "T"}], None, "unscored")
    )
    store.set_feedback("c" * 32, "down", "wrong", None)
    store.close()
    monkeypatch.setenv("LABCTL_VAR", str(lab_var))
    monkeypatch.delenv("RAG_RECORDS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)  # not the repository: the default does not depend on the working directory

    assert records_cli.main(["export", "--feedback", "down"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == f"feedback-{'c' * 32}"
    assert feedback_cli.main(["export"]) == 0
    assert json.loads(capsys.readouterr().out)["rating"] == "down"
