"""RAG quality scores (groundedness, context relevance, answer relevance) as TruLens feedback functions.

Two providers behind one interface, both driven through TruLens `Metric` objects (`Metric.run`, no session or
database: nothing is recorded, so no `default.sqlite` appears and a row costs well under a millisecond of
TruLens overhead):

* "openai" — TruLens's built-in LLM-judge feedbacks (`groundedness_measure_with_cot_reasons`,
  `context_relevance`, `relevance`) over an OpenAI-compatible chat-completions server;
* "offline" — `rag_api.scoring`'s evidence scores (lexical support per answer sentence, MiniLM similarity),
  measured against human-labelled data by `python -m benchmarks.groundedness`.

A failed or unparseable judgement raises `EvaluationError`; a score is never invented.

Batch CLI (offline unless OPENAI_API_KEY / OPENAI_BASE_URL is set; RAG_JUDGE_MODEL names the judge):

    python -m rag_api.evaluation --input rows.jsonl --output scores.jsonl

reads `{id, context, question, answer}` rows and writes `{id, groundedness, context_relevance,
answer_relevance}` lines in the same order.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_common.jsonl import read_objects
from rag_api.text import clamp01

SCORE_FIELDS = ("groundedness", "context_relevance", "answer_relevance")
UNPARSABLE_SCORE = -1.0  # TruLens's sentinel for a judge reply it could not read


class EvaluationError(Exception):
    """The answer could not be scored (judge unreachable, unparseable reply, nothing to score...)."""


@dataclass(frozen=True)
class Scores:
    groundedness: float
    context_relevance: float
    answer_relevance: float
    # The judge's LLM calls (rag_api.usage.LLMCall) behind these scores: recorded by the evaluation queue.
    calls: tuple[Any, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        """Clamped to [0, 1] whoever built them (the scorer, a judge, the child process); NaN is refused."""
        for name in SCORE_FIELDS:
            try:
                object.__setattr__(self, name, clamp01(getattr(self, name)))
            except (TypeError, ValueError) as exc:
                raise EvaluationError(f"{name} is not a score: {getattr(self, name)!r}") from exc

    @property
    def hallucination(self) -> float:
        return 1.0 - self.groundedness


class Evaluator:
    """Scores one answer through three TruLens metrics built on `provider`'s feedback methods."""

    def __init__(self, provider_name: str, provider: Any, *, groundedness_configs: Any = None) -> None:
        from trulens.core import Metric

        self.provider_name = provider_name
        self.provider = provider
        self._groundedness = Metric(
            implementation=provider.groundedness_measure_with_cot_reasons,
            name="groundedness",
            groundedness_configs=groundedness_configs,
        )
        self._context_relevance = Metric(implementation=provider.context_relevance, name="context_relevance")
        self._answer_relevance = Metric(implementation=provider.relevance, name="answer_relevance")
        # TruLens's judge grades (source, statement) only; the offline provider also uses the question.
        signature = inspect.signature(provider.groundedness_measure_with_cot_reasons)
        self._groundedness_takes_question = "question" in signature.parameters

    def score(self, question: str, contexts: list[str], answer: str) -> Scores:
        """Blocking. Context relevance is the mean over the chunks (TruLens's default aggregation)."""
        chunks = [c for c in contexts if c and c.strip()]
        if not chunks:
            raise EvaluationError("no context to score the answer against")
        if not answer or not answer.strip():
            raise EvaluationError("empty answer")
        if not question or not question.strip():
            raise EvaluationError("empty question")
        try:
            scores = self._score(question, chunks, answer)
        except Exception as exc:
            exc.calls = self._drain_calls()  # type: ignore[attr-defined]  # failed scoring still cost tokens
            raise
        return dataclasses.replace(scores, calls=self._drain_calls())

    def _score(self, question: str, chunks: list[str], answer: str) -> Scores:
        extra = {"question": question} if self._groundedness_takes_question else {}
        groundedness = self._run(self._groundedness, source="\n\n".join(chunks), statement=answer, **extra)
        relevances = [self._run(self._context_relevance, question=question, context=c) for c in chunks]
        answer_relevance = self._run(self._answer_relevance, prompt=question, response=answer)
        return Scores(
            groundedness=groundedness,
            context_relevance=sum(relevances) / len(relevances),
            answer_relevance=answer_relevance,
        )

    def _drain_calls(self) -> tuple[Any, ...]:
        """The LLM judge's calls since the last drain (the offline provider makes none)."""
        drain = getattr(self.provider, "drain_calls", None)
        return tuple(drain()) if drain else ()

    @staticmethod
    def _run(metric: Any, **inputs: str) -> float:
        from trulens.core.schema.feedback import FeedbackResultStatus

        try:
            result = metric.run(**inputs)
        except Exception as exc:  # TruLens raised instead of recording a failed result
            raise EvaluationError(f"{metric.supplied_name}: {exc}") from exc
        if result.status != FeedbackResultStatus.DONE:
            raise EvaluationError(f"{metric.supplied_name} failed: {_root_cause(result.error)}")
        value = result.result
        if value is None or not isinstance(value, (int, float)):
            raise EvaluationError(f"{metric.supplied_name} returned no score ({value!r})")
        value = float(value)
        if math.isnan(value) or value == UNPARSABLE_SCORE:
            raise EvaluationError(f"{metric.supplied_name}: the judge's reply could not be parsed")
        return value


def _root_cause(error: str | None) -> str:
    """The last line of a TruLens-captured traceback: the original exception."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def build_evaluator(
    *, api_key: str | None, base_url: str | None, model: str, timeout: float, max_retries: int
) -> Evaluator:
    """The OpenAI judge when a key or a base URL is set, else the offline provider. Imports TruLens (~4 s)."""
    if api_key or base_url:
        import openai
        from trulens.core.metric.metric import GroundednessConfigs

        from rag_api.trulens_providers import OpenAIChatJudge

        client = openai.OpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        # use_sent_tokenize=False: the judge splits the answer into statements (NLTK's splitter would try to
        # download punkt_tab on every call). filter_trivial_statements=False: TruLens eval()s that step's
        # LLM output, and scores an answer it deems all-trivial as 0.0.
        configs = GroundednessConfigs(use_sent_tokenize=False, filter_trivial_statements=False)
        return Evaluator("openai", OpenAIChatJudge(client=client, model=model), groundedness_configs=configs)

    from rag_api.trulens_providers import OfflineEvidenceProvider

    # TruLens declares tru_class_info as a required pydantic field; its validator fills it in.
    return Evaluator("offline", OfflineEvidenceProvider())  # type: ignore[call-arg]


def evaluator_from_env() -> Evaluator:
    """`build_evaluator` configured like the service (OPENAI_API_KEY, OPENAI_BASE_URL, RAG_JUDGE_MODEL...)."""
    from rag_api.settings import RAGSettings

    settings = RAGSettings()
    return build_evaluator(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        model=settings.judge_model,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


# -- batch scoring (the CLI and the benchmark share this) ---------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for where, row in read_objects(path):
        for name in ("id", "context", "question", "answer"):
            if name not in row:
                raise ValueError(f"{where}: missing field {name!r}")
        rows.append(row)
    return rows


def _text(value: Any, field: str) -> str:
    """A field's text; numbers read as their digits. null, booleans, objects and lists are reported, not
    scored as the words "None", "True" or "{...}"."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = "null" if value is None else type(value).__name__
    raise EvaluationError(f"field {field!r} is {kind}, not text")


def _inputs(row: dict[str, Any]) -> tuple[str, list[str], str]:
    """(question, contexts, answer) of a row; `context` is one text or a list of texts."""
    context = row["context"]
    contexts = (
        [_text(c, "context") for c in context] if isinstance(context, list) else [_text(context, "context")]
    )
    return _text(row["question"], "question"), contexts, _text(row["answer"], "answer")


def score_rows(rows: Iterable[dict[str, Any]], evaluator: Evaluator) -> Iterator[dict[str, Any]]:
    """One output record per input row, in order: the three scores, or nulls and `error` on failure (a null
    or non-text field included)."""
    for row in rows:
        out: dict[str, Any] = {"id": row["id"]}
        try:
            scores = evaluator.score(*_inputs(row))
        except EvaluationError as exc:
            out.update(dict.fromkeys(SCORE_FIELDS))
            out["error"] = str(exc)
        else:
            out.update({name: round(getattr(scores, name), 6) for name in SCORE_FIELDS})
        yield out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag_api.evaluation", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--input", type=Path, required=True, help="JSONL rows {id, context, question, answer}"
    )
    parser.add_argument("--output", type=Path, required=True, help="JSONL scores, one line per input row")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.input)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    evaluator = evaluator_from_env()
    failed = 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as handle:
        for record in score_rows(rows, evaluator):
            failed += "error" in record
            handle.write(json.dumps(record) + "\n")
    elapsed = time.perf_counter() - start
    print(
        f"scored {len(rows) - failed}/{len(rows)} rows with the {evaluator.provider_name} provider "
        f"in {elapsed:.1f} s ({elapsed / max(len(rows), 1):.3f} s/row); {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
