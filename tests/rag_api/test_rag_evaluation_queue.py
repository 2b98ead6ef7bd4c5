"""The bounded evaluation queue: drops instead of blocking, counts failures, never records a fake score."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_api.app import create_app
from rag_api.evaluation import EvaluationError, Scores
from rag_api.evaluation_queue import EvaluationJob, EvaluationQueue
from tests.support.metrics import sample
from tests.support.rag import copy_index, offline_settings

JOB = EvaluationJob(
    "How do I reset my password?", ["Click Forgot password? on the sign-in page."], "Click it."
)
SCORE_COUNTS = [
    "llm_groundedness_score_count",
    "llm_hallucination_score_count",
    "llm_context_relevance_score_count",
    "llm_answer_relevance_score_count",
]


class SlowEvaluator:
    """Implements the Evaluator interface: sleeps, then returns fixed (out-of-range) scores."""

    provider_name = "offline"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.lock = threading.Lock()

    def score(self, question: str, contexts: list[str], answer: str) -> Scores:
        time.sleep(self.seconds)
        with self.lock:
            self.calls += 1
        # Deliberately outside [0, 1] on one side: the queue must clamp what it records.
        return _raw_scores(1.7, 0.5, -0.2)


def _raw_scores(groundedness: float, context: float, answer: float) -> Scores:
    scores = object.__new__(Scores)  # bypass the scorer's own clamping to prove the queue clamps too
    object.__setattr__(scores, "groundedness", groundedness)
    object.__setattr__(scores, "context_relevance", context)
    object.__setattr__(scores, "answer_relevance", answer)
    return scores


class FailingEvaluator:
    provider_name = "offline"

    def score(self, question: str, contexts: list[str], answer: str) -> Scores:
        raise EvaluationError("judge unreachable")


def test_full_queue_drops_without_blocking_and_depth_stays_bounded() -> None:
    async def scenario() -> tuple[list[str], list[float], float]:
        evaluator = SlowEvaluator(0.3)
        queue = EvaluationQueue(evaluator, size=1, sample_rate=1.0)
        queue.start()
        outcomes, depths = [], []
        start = time.perf_counter()
        for _ in range(6):
            outcomes.append(queue.submit(JOB))
            depths.append(sample("llm_evaluation_queue_depth"))
            await asyncio.sleep(0.01)  # let the worker take the first job
        submit_seconds = time.perf_counter() - start
        await queue.join()
        await queue.stop()
        assert evaluator.calls == outcomes.count("queued")
        return outcomes, depths, submit_seconds

    dropped_before = sample("llm_evaluations_total", {"result": "dropped"})
    ok_before = sample("llm_evaluations_total", {"result": "ok"})
    outcomes, depths, submit_seconds = asyncio.run(scenario())
    assert submit_seconds < 0.25  # submitting never waited for the 0.3 s evaluations
    assert outcomes.count("dropped") >= 3 and outcomes.count("queued") >= 1
    assert max(depths) <= 1
    assert sample("llm_evaluations_total", {"result": "dropped"}) - dropped_before == outcomes.count(
        "dropped"
    )
    assert sample("llm_evaluations_total", {"result": "ok"}) - ok_before == outcomes.count("queued")
    assert sample("llm_evaluation_queue_depth") == 0


def test_recorded_scores_are_clamped_to_the_unit_interval() -> None:
    queue = EvaluationQueue(SlowEvaluator(0.0), size=1, sample_rate=1.0)
    top_before = sample("llm_groundedness_score_bucket", {"le": "1.0"})
    low_before = sample("llm_answer_relevance_score_bucket", {"le": "0.1"})
    sum_before = sample("llm_groundedness_score_sum")
    scores, error = queue.score(JOB)
    assert error is None and scores is not None
    assert (scores.groundedness, scores.context_relevance, scores.answer_relevance) == (1.0, 0.5, 0.0)
    assert sample("llm_groundedness_score_sum") - sum_before == pytest.approx(1.0)
    assert sample("llm_groundedness_score_bucket", {"le": "1.0"}) == top_before + 1
    assert sample("llm_answer_relevance_score_bucket", {"le": "0.1"}) == low_before + 1


def test_failed_evaluation_is_counted_and_records_no_score() -> None:
    async def scenario() -> None:
        queue = EvaluationQueue(FailingEvaluator(), size=5, sample_rate=1.0)
        queue.start()
        for _ in range(3):
            assert queue.submit(JOB) == "queued"
        await queue.join()
        await queue.stop()

    counts_before = [sample(name) for name in SCORE_COUNTS]
    duration_before = sample("llm_evaluation_duration_seconds_count", {"provider": "offline"})
    failed_before = sample("llm_evaluations_total", {"result": "failed"})
    asyncio.run(scenario())
    assert sample("llm_evaluations_total", {"result": "failed"}) == failed_before + 3
    assert [sample(name) for name in SCORE_COUNTS] == counts_before
    assert sample("llm_evaluation_duration_seconds_count", {"provider": "offline"}) == duration_before


def test_sample_rate_zero_skips_evaluation_silently() -> None:
    queue = EvaluationQueue(FailingEvaluator(), size=5, sample_rate=0.0)
    totals_before = [sample("llm_evaluations_total", {"result": r}) for r in ("ok", "failed", "dropped")]
    assert queue.submit(JOB) == "sampled_out"
    assert [
        sample("llm_evaluations_total", {"result": r}) for r in ("ok", "failed", "dropped")
    ] == totals_before


def test_chat_never_waits_for_a_slow_evaluator(tmp_path: Path) -> None:
    settings = offline_settings(copy_index(tmp_path / "chroma"), evaluation_queue_size=1)
    dropped_before = sample("llm_evaluations_total", {"result": "dropped"})
    with TestClient(create_app(settings, evaluator=SlowEvaluator(2.0))) as client:
        client.post("/chat", json={"query": "warm up", "evaluate": "off"})
        outcomes = []
        for _ in range(5):
            start = time.perf_counter()
            response = client.post("/chat", json={"query": "How do I reset my password?"})
            assert response.status_code == 200
            assert time.perf_counter() - start < 1.5  # far less than the 2 s evaluation
            outcomes.append(response.json()["evaluation"])
        assert outcomes.count("dropped") >= 3, outcomes
        assert sample("llm_evaluations_total", {"result": "dropped"}) - dropped_before == outcomes.count(
            "dropped"
        )
        assert sample("llm_evaluation_queue_depth") <= 1


def _stat_state(pid: int) -> str:
    """The process state letter from /proc (T = stopped, Z = zombie); "gone" once reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def _sync_chat_until_scored(client: TestClient, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = client.post("/chat", json={"query": QUESTION, "evaluate": "sync"}).json()
        if body["evaluation"] == "ok" or time.monotonic() > deadline:
            return body


QUESTION = "How do I reset my password?"  # pragma: allowlist secret (a question)
# The evaluation timeout of the hung-child test: long enough that an evaluate=off call, even on a loaded
# machine, is answered before the eight stopped evaluations time out.
TIMEOUT = 20


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_hung_evaluator_child_costs_only_the_sync_callers_their_timeout(tmp_path: Path) -> None:
    """Issue 11 #9: the scorer's child stopped (SIGSTOP) with 8 `evaluate=sync` calls in flight."""
    settings = offline_settings(
        copy_index(tmp_path / "chroma"), evaluation_in_process=True, evaluation_timeout_seconds=TIMEOUT
    )
    with TestClient(create_app(settings)) as client:
        assert _sync_chat_until_scored(client, 90)["evaluation"] == "ok"  # the child is up
        evaluator = client.app.state.rag.evaluator
        (pid,) = [process.pid for process in evaluator._pool._processes.values()]
        timeouts_before = sample("llm_evaluation_timeouts_total")
        os.kill(pid, signal.SIGSTOP)
        callers = concurrent.futures.ThreadPoolExecutor(9)
        try:
            hung = [
                callers.submit(client.post, "/chat", json={"query": QUESTION, "evaluate": "sync"})
                for _ in range(8)
            ]
            time.sleep(0.5)  # all eight are waiting for the stopped child
            off = callers.submit(client.post, "/chat", json={"query": QUESTION, "evaluate": "off"})
            # Before the fix it was never answered while the child was stopped. Now it is answered while the
            # eight still wait: an order, not a speed (the wait below only keeps a regression from hanging).
            assert off.result(timeout=4 * TIMEOUT).status_code == 200
            assert not any(future.done() for future in hung)
            answers = [future.result(timeout=4 * TIMEOUT).json() for future in hung]
        finally:
            # Never leave a stopped process behind (the service may have killed and replaced it already).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            callers.shutdown(wait=True)
        assert {a["evaluation"] for a in answers} == {"failed"}
        assert all("timed out" in a["evaluation_error"] for a in answers), answers[0]
        assert sample("llm_evaluation_timeouts_total") - timeouts_before == 8
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["evaluation"] == "stuck"
        assert sample("llm_evaluation_stuck") == 1

        deadline = time.monotonic() + 10
        while _stat_state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stat_state(pid) in ("gone", "Z")  # the hung child was killed...
        assert _sync_chat_until_scored(client, 90)["evaluation"] == "ok"  # ...and a new one scores
        assert client.get("/ready").json()["evaluation"] == "ok"
        assert sample("llm_evaluation_stuck") == 0
