"""User feedback on answers: `POST /feedback`, its metrics, and a CLI that submits and exports.

A vote names an answer by the `answer_id` /chat returned; unknown or expired ids (past the records' retention)
are 404s. A second vote on the same answer replaces the first in the records; both are counted in
`llm_user_feedback_total` and the replaced one in `llm_user_feedback_replaced_total`, so nothing is hidden.
`llm_user_feedback_verdicts_total{evaluator_verdict,user_rating}` sets the automatic verdict on the answer
beside the user's: the disagreement between judge and people.

    python -m rag_api.feedback submit ANSWER_ID down --reason wrong --comment "the steps are for iOS"
    python -m rag_api.feedback export --out var/feedback.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rag_api import metrics
from rag_api.records import DB_HELP, AnswerRecords

AnswerId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$", strict=True)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000, strict=True)]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: AnswerId = Field(description="The `answer_id` of a /chat response.")
    rating: Literal["up", "down"]
    reason: Literal["wrong", "irrelevant", "unsafe", "slow", "other"] = "other"
    comment: Comment | None = Field(
        default=None, description="Free text (kept in the records, never a label)."
    )


class FeedbackResponse(BaseModel):
    answer_id: str
    rating: str
    reason: str
    replaced: str | None = Field(description="The rating this vote replaced, if the answer had one.")
    evaluator_verdict: str


def record_feedback(records: AnswerRecords, body: FeedbackRequest) -> dict[str, Any]:
    """Store the vote and count it; KeyError when the answer is unknown or expired."""
    record = records.get(body.answer_id)
    if record is None:
        raise KeyError(body.answer_id)
    records.set_feedback(body.answer_id, body.rating, body.reason, body.comment)
    previous = record["rating"]
    if previous is not None:
        metrics.USER_FEEDBACK_REPLACED.labels(previous).inc()
    metrics.USER_FEEDBACK.labels(body.rating, body.reason).inc()
    metrics.FEEDBACK_VERDICTS.labels(record["evaluator_verdict"], body.rating).inc()
    return {
        "answer_id": body.answer_id,
        "rating": body.rating,
        "reason": body.reason,
        "replaced": previous,
        "evaluator_verdict": record["evaluator_verdict"],
    }


def feedback_router(records_of: Callable[[], AnswerRecords | None]) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    unknown: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown or expired answer_id"}}

    @router.post("/feedback", response_model=FeedbackResponse, responses=unknown)
    def feedback(body: FeedbackRequest) -> Any:
        records = records_of()
        if records is None:
            raise HTTPException(404, "answer records are off (RAG_RECORDS_ENABLED=false): no answer to rate")
        try:
            return record_feedback(records, body)
        except KeyError:
            raise HTTPException(404, f"unknown or expired answer_id {body.answer_id!r}") from None

    return router


def _submit(args: argparse.Namespace) -> int:
    import httpx

    body = {"answer_id": args.answer_id, "rating": args.rating, "reason": args.reason}
    if args.comment:
        body["comment"] = args.comment
    response = httpx.post(f"{args.url.rstrip('/')}/feedback", json=body, timeout=10)
    print(response.text)
    return 0 if response.is_success else 1


def _export(args: argparse.Namespace) -> int:
    from rag_api.settings import RAGSettings

    settings = RAGSettings()
    db = args.db or settings.records_path
    if not db.exists():
        print(f"no records file at {db}", file=sys.stderr)
        return 2
    store = AnswerRecords(
        db,
        retention_seconds=settings.records_retention_hours * 3600,
        max_records=settings.records_max,
        salt=settings.records_user_salt,
    )
    fields = (
        "id",
        "created",
        "tenant",
        "query",
        "rating",
        "reason",
        "comment",
        "evaluator_verdict",
        "scores",
        "safety_action",
    )
    lines = [json.dumps({k: r[k] for k in fields}, ensure_ascii=False) for r in store.rows("any")]
    store.close()
    text = "".join(line + "\n" for line in lines)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"{len(lines)} votes written to {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag_api.feedback", description="Submit or export feedback."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="POST one vote to a running rag_api")
    submit.add_argument("answer_id")
    submit.add_argument("rating", choices=("up", "down"))
    submit.add_argument(
        "--reason", choices=("wrong", "irrelevant", "unsafe", "slow", "other"), default="other"
    )
    submit.add_argument("--comment")
    submit.add_argument("--url", default="http://127.0.0.1:8001")
    export = sub.add_parser("export", help="write every rated answer as JSONL (from the records file)")
    export.add_argument("--db", type=Path, default=None, help=DB_HELP)
    export.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    return _submit(args) if args.command == "submit" else _export(args)


if __name__ == "__main__":
    raise SystemExit(main())
