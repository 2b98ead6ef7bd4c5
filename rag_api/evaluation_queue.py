"""Background quality scoring: a bounded queue and one worker, so that /chat never waits for the scorer.

A full queue drops the answer (counted as `dropped`) instead of blocking the request. The scorer is blocking
and CPU-heavy (mostly pure Python: it would hold the GIL against the request path), so by default it runs in
one child process at a lower CPU priority (`EvaluatorProcess`); an evaluator object handed in directly runs
in a thread. A failed evaluation is counted as `failed` and records no score: a made-up 0 would look like a
terrible answer.

Evaluations wait in threads of their own (`concurrency` of them), never in the default executor that
retrieval uses, and give up after `timeout` seconds: a hung scorer costs `evaluate=sync` callers at most the
timeout and never holds up other requests. A timeout counts as `failed` and in
`llm_evaluation_timeouts_total`; `llm_evaluation_stuck` (and /ready's `evaluation`) says that the last
evaluation timed out. A hung child process is killed and replaced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab_common.faults import FaultRegistry
from rag_api import metrics
from rag_api.evaluation import EvaluationError, Evaluator, Scores, build_evaluator
from rag_api.usage import UsageMeter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationJob:
    question: str
    contexts: list[str]
    answer: str
    tenant: str = "default"  # the judge's calls are priced to the tenant whose answer they score
    answer_id: str | None = None  # the answer's record, which the queue's scores update (`on_scored`)


class EvaluationTimeout(EvaluationError):
    """The evaluator did not answer within the timeout."""


class _Attempt:
    """One evaluation's outcome is recorded once: by its scoring thread or its timeout, whichever is first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled = False

    def settle(self) -> bool:
        """True for the first caller only."""
        with self._lock:
            first, self._settled = not self._settled, True
            return first


_child_evaluator: Evaluator | None = None
STARTUP_SECONDS = 120.0  # the child imports TruLens and the scorer: seconds, or a minute on a starved machine


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when the service dies, even by SIGKILL (no orphaned scorers)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _child_init(evaluator_kwargs: dict[str, Any], niceness: int) -> None:
    global _child_evaluator
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(niceness)  # scoring yields the CPU to the requests
    _child_evaluator = build_evaluator(**evaluator_kwargs)


def _child_score(question: str, contexts: list[str], answer: str) -> Scores:
    assert _child_evaluator is not None
    return _child_evaluator.score(question, contexts, answer)  # with the judge's calls, for the parent


class EvaluatorProcess:
    """The Evaluator interface, served by `build_evaluator(**kwargs)` in one low-priority child process.

    Created lazily and recreated when the child dies. `score` is blocking, like any Evaluator.
    """

    def __init__(
        self, evaluator_kwargs: dict[str, Any], *, niceness: int = 10, timeout: float = 30.0
    ) -> None:
        self.evaluator_kwargs = evaluator_kwargs
        self.niceness = niceness
        self.timeout = timeout
        self.provider_name = (
            "openai" if evaluator_kwargs.get("api_key") or evaluator_kwargs.get("base_url") else "offline"
        )
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._started: concurrent.futures.Future[int] | None = None  # done once the child has started
        self._hung: weakref.WeakSet[concurrent.futures.ProcessPoolExecutor] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _executor(self) -> tuple[concurrent.futures.ProcessPoolExecutor, concurrent.futures.Future[int]]:
        with self._lock:
            if self._pool is None or self._started is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
                    initializer=_child_init,
                    initargs=(self.evaluator_kwargs, self.niceness),
                )
                self._started = self._pool.submit(int)
            return self._pool, self._started

    def start(self) -> None:
        """Spawn the child now (it imports the scorer, a few seconds) rather than on the first answer."""
        self._executor()

    def started(self) -> concurrent.futures.Future[int]:
        """Done once the current child has started (spawning one if there is none)."""
        return self._executor()[1]

    def score(self, question: str, contexts: list[str], answer: str) -> Scores:
        """Blocking. The child's start-up (imports) has STARTUP_SECONDS, each evaluation `timeout` seconds:
        a child that misses either is killed and replaced."""
        pool, started = self._executor()
        try:
            started.result(timeout=STARTUP_SECONDS)
            scores = pool.submit(_child_score, question, contexts, answer).result(timeout=self.timeout)
        except TimeoutError as exc:
            self._hung.add(pool)
            self._discard(pool)  # hung (or far too slow): the next evaluation gets a new child
            self.start()
            raise EvaluationTimeout(
                f"evaluation timed out: the evaluator process did not answer within {self.timeout:g} s"
            ) from exc
        except (concurrent.futures.process.BrokenProcessPool, concurrent.futures.CancelledError) as exc:
            if pool in self._hung:  # another caller found the child hung and killed it
                raise EvaluationTimeout("evaluation timed out: the evaluator process hung") from exc
            self._discard(pool)
            raise EvaluationError(f"the evaluator process died: {exc or type(exc).__name__}") from exc
        return scores

    def close(self) -> None:
        """Stop now: a running evaluation is abandoned (its caller gets EvaluationError), none awaited."""
        with self._lock:
            pool = self._pool
        if pool is not None:
            self._discard(pool)

    def _discard(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Forget `pool` (if still current) and kill its child: SIGKILL, since a stopped child ignores SIGTERM
        until it is continued."""
        with self._lock:
            if self._pool is pool:
                self._pool = self._started = None
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()


class EvaluationQueue:
    def __init__(
        self,
        evaluator: Evaluator | EvaluatorProcess,
        *,
        size: int,
        sample_rate: float,
        faults: FaultRegistry | None = None,
        rng: random.Random | None = None,
        timeout: float = 30.0,
        concurrency: int = 2,
        usage: UsageMeter | None = None,
        on_scored: Callable[[str, Scores], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.usage = usage
        # Called (in a thread: it may write a file) with the answer_id and the scores of every queued job
        # scored: /chat has long returned, so this is how the scores reach the answer's record.
        self.on_scored = on_scored
        self.provider = evaluator.provider_name
        self.size = size
        self.sample_rate = sample_rate
        self.faults = faults
        self.timeout = timeout
        self.concurrency = concurrency
        self.stuck = False  # the last evaluation that ended timed out
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[EvaluationJob] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None

    # -- lifecycle (inside the running event loop) -----------------------------------------------------
    def start(self) -> None:
        if isinstance(self.evaluator, EvaluatorProcess):
            self.evaluator.start()
        self._queue = asyncio.Queue(maxsize=self.size)
        self._worker = asyncio.create_task(self._run(), name="evaluation-worker")
        metrics.EVALUATION_QUEUE_DEPTH.set(0)
        metrics.EVALUATION_STUCK.set(0)

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if isinstance(self.evaluator, EvaluatorProcess):
            self.evaluator.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)  # a hung scorer thread is not waited for
            self._threads = None
        metrics.EVALUATION_QUEUE_DEPTH.set(0)

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def join(self) -> None:
        """Wait until every queued answer has been scored (tests, graceful shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    # -- producer side: the request path ---------------------------------------------------------------
    def submit(self, job: EvaluationJob) -> str:
        """ "queued", "sampled_out" or "dropped" (queue full or not started). Never blocks."""
        if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
            return "sampled_out"
        if self._queue is None:
            metrics.EVALUATIONS.labels("dropped").inc()
            return "dropped"
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            metrics.EVALUATIONS.labels("dropped").inc()
            return "dropped"
        metrics.EVALUATION_QUEUE_DEPTH.set(self._queue.qsize())
        return "queued"

    async def score_inline(self, job: EvaluationJob) -> tuple[Scores | None, str | None]:
        """Score now, recording the metrics as the worker would: `evaluate=sync`. Waits `timeout` at most."""
        return await self._score_bounded(job)

    async def _score_bounded(self, job: EvaluationJob) -> tuple[Scores | None, str | None]:
        """`score` in the evaluation threads; after `timeout` seconds the caller gets a timeout, and what the
        scorer returns later is discarded (a job still waiting for a thread never starts)."""
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="evaluation"
            )
        await self._evaluator_started()
        attempt = _Attempt()
        running = asyncio.get_running_loop().run_in_executor(self._threads, self.score, job, attempt)
        try:
            return await asyncio.wait_for(running, self.timeout)
        except TimeoutError:
            message = f"evaluation timed out after {self.timeout:g} s"
            if attempt.settle():
                self._record_timeout(message)
            return None, message

    async def _evaluator_started(self) -> None:
        """An evaluator child still starting (imports: seconds, a minute on a starved machine) is waited for
        apart, up to STARTUP_SECONDS: its start-up does not count against the evaluation timeout."""
        if not isinstance(self.evaluator, EvaluatorProcess):
            return
        started = self.evaluator.started()
        if not started.done():
            # shield: a caller giving up must not cancel the start-up that other callers wait for
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(started)), STARTUP_SECONDS)

    # -- consumer side -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            metrics.EVALUATION_QUEUE_DEPTH.set(self._queue.qsize())
            try:
                scores, _ = await self._score_bounded(job)
                if scores is not None and job.answer_id is not None and self.on_scored is not None:
                    await asyncio.to_thread(self.on_scored, job.answer_id, scores)
            except Exception:  # score() records failures itself; this guards the worker's life
                log.exception("evaluation worker error")
            finally:
                self._queue.task_done()
                metrics.EVALUATION_QUEUE_DEPTH.set(self._queue.qsize())

    def _record_calls(self, calls: tuple[Any, ...], tenant: str) -> None:
        """The judge's LLM calls cost tokens whatever became of the evaluation: always priced."""
        if self.usage is not None:
            for call in calls:
                self.usage.record(call, tenant)

    def score(self, job: EvaluationJob, attempt: _Attempt | None = None) -> tuple[Scores | None, str | None]:
        """Blocking: score one answer and record it. Returns (scores, None) or (None, error). Nothing is
        recorded when `attempt` was already settled (its caller timed out and counted it)."""
        attempt = attempt or _Attempt()
        start = time.perf_counter()
        try:
            if self.faults is not None and self.faults.fires("evaluation_failure", self._rng):
                raise EvaluationError("injected evaluation failure (fault evaluation_failure)")
            raw = self.evaluator.score(job.question, job.contexts, job.answer)
            # Re-built, hence re-clamped: an evaluator handed in may return any object with these fields.
            self._record_calls(getattr(raw, "calls", ()), job.tenant)
            scores = Scores(raw.groundedness, raw.context_relevance, raw.answer_relevance)
        except EvaluationTimeout as exc:
            if attempt.settle():
                self._record_timeout(str(exc))
            return None, str(exc)
        except Exception as exc:  # any scorer failure: counted, and no score recorded
            self._record_calls(getattr(exc, "calls", ()), job.tenant)
            if attempt.settle():
                metrics.EVALUATIONS.labels("failed").inc()
                log.warning("evaluation failed: %s", exc)
            return None, str(exc) or type(exc).__name__
        if attempt.settle():
            self._set_stuck(False)
            self._record(scores, time.perf_counter() - start)
        return scores, None

    def _record(self, scores: Scores, seconds: float) -> None:
        metrics.EVALUATION_DURATION.labels(self.provider).observe(seconds)
        metrics.GROUNDEDNESS.observe(scores.groundedness)
        metrics.HALLUCINATION.observe(1.0 - scores.groundedness)
        metrics.CONTEXT_RELEVANCE.observe(scores.context_relevance)
        metrics.ANSWER_RELEVANCE.observe(scores.answer_relevance)
        metrics.EVALUATIONS.labels("ok").inc()

    def _record_timeout(self, message: str) -> None:
        metrics.EVALUATIONS.labels("failed").inc()
        metrics.EVALUATION_TIMEOUTS.inc()
        self._set_stuck(True)
        log.warning("%s", message)

    def _set_stuck(self, stuck: bool) -> None:
        self.stuck = stuck
        metrics.EVALUATION_STUCK.set(1 if stuck else 0)
