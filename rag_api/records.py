"""Answer records: every served answer kept in SQLite (bounded), with its scores and the user's feedback.

Every /chat answer is kept, the safety chain's too: an input refused in enforce mode (no answer; the 400 names
the record's id), an answer replaced by the refusal or with its PII redacted (the text as served, never the
original) — `safety_action` says which, `safety` holds every check's outcome, score and category. Scores
that arrive later (`evaluate=async`: the evaluation queue scores after /chat returned) update the record.

Bounded twice: records older than the retention are deleted, and past `max_records` the oldest go; both are
counted in `llm_answer_records_pruned_total{reason}`. The user id (the request's `session_id`) is stored only
as a salted SHA-256. Texts stay here, never in a metric.

    python -m rag_api.records export --feedback down --out var/eval_cases.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_api import metrics

PRUNE_EVERY = 50  # inserts between two pruning passes (a DELETE is cheap, not free)
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    tenant TEXT NOT NULL,
    user_hash TEXT,
    query TEXT NOT NULL,
    answer TEXT NOT NULL,
    sources TEXT NOT NULL,
    scores TEXT,
    evaluator_verdict TEXT NOT NULL,
    rating TEXT,
    reason TEXT,
    comment TEXT,
    feedback_at REAL,
    safety TEXT,
    safety_action TEXT
);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created);
"""
# Columns added after the first files were written: a file without them gets them (ALTER TABLE) when opened.
LATER_COLUMNS = {"safety": "TEXT", "safety_action": "TEXT"}
# The CLIs' default file is the one rag_api writes: the same setting, whose default is the lab's state dir.
DB_HELP = (
    "records file (default: RAG_RECORDS_PATH, else the lab's var/records/answers.sqlite; LABCTL_VAR moves it)"
)
# What the safety chain did to an answer, when anything (NULL: served as generated).
SAFETY_ACTIONS = ("input_blocked", "output_blocked", "redacted")


@dataclass(frozen=True)
class AnswerRecord:
    id: str
    tenant: str
    query: str
    answer: str
    sources: list[dict[str, Any]]
    scores: dict[str, float] | None
    evaluator_verdict: str  # "grounded" | "ungrounded" | "unscored"
    user: str | None = None  # hashed before it is stored
    created: float = 0.0  # time.time(); 0 = now
    safety: dict[str, Any] | None = None  # {"input": verdict, "output": verdict} as /chat returns them
    safety_action: str | None = None  # one of SAFETY_ACTIONS, or None

    def __post_init__(self) -> None:
        if self.safety_action not in (None, *SAFETY_ACTIONS):
            raise ValueError(f"safety_action {self.safety_action!r} not in {SAFETY_ACTIONS}")


def verdict(scores: dict[str, float] | None, threshold: float) -> str:
    """The automatic evaluator's verdict on an answer, as a bounded label value."""
    if scores is None:
        return "unscored"
    return "grounded" if scores["groundedness"] >= threshold else "ungrounded"


class AnswerRecords:
    """A SQLite file of answers. Thread-safe (one connection behind a lock); every call is short."""

    def __init__(self, path: Path, *, retention_seconds: float, max_records: int, salt: str) -> None:
        self.path = path
        self.retention_seconds = retention_seconds
        self.max_records = max_records
        self._salt = salt.encode()
        self._lock = threading.Lock()
        self._inserts = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            present = {row["name"] for row in self._db.execute("PRAGMA table_info(answers)")}
            for column, kind in LATER_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE answers ADD COLUMN {column} {kind}")
        self.prune()

    def hash_user(self, user: str | None) -> str | None:
        return hashlib.sha256(self._salt + user.encode()).hexdigest() if user else None

    def add(self, record: AnswerRecord) -> None:
        row = (
            record.id,
            record.created or time.time(),
            record.tenant,
            self.hash_user(record.user),
            record.query,
            record.answer,
            json.dumps(record.sources),
            json.dumps(record.scores) if record.scores is not None else None,
            record.evaluator_verdict,
            json.dumps(record.safety) if record.safety is not None else None,
            record.safety_action,
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (id, created, tenant, user_hash, query, answer, sources,"
                " scores, evaluator_verdict, safety, safety_action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            self._inserts += 1
            due = self._inserts % PRUNE_EVERY == 0
        if due:
            self.prune()

    def get(self, answer_id: str) -> dict[str, Any] | None:
        """The record, or None when unknown or past the retention (expired)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM answers WHERE id = ? AND created >= ?", (answer_id, self._oldest())
            ).fetchone()
        return _decode(row) if row is not None else None

    def set_scores(self, answer_id: str, scores: dict[str, float], evaluator_verdict: str) -> bool:
        """Scores that arrived after the answer was recorded; False when the record is gone (pruned)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE answers SET scores = ?, evaluator_verdict = ? WHERE id = ?",
                (json.dumps(scores), evaluator_verdict, answer_id),
            )
        return cursor.rowcount > 0

    def set_feedback(self, answer_id: str, rating: str, reason: str, comment: str | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE answers SET rating = ?, reason = ?, comment = ?, feedback_at = ? WHERE id = ?",
                (rating, reason, comment, time.time(), answer_id),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def prune(self) -> None:
        """Delete what is past the retention, then the oldest beyond the size bound; count both."""
        with self._lock:
            expired = self._db.execute("DELETE FROM answers WHERE created < ?", (self._oldest(),)).rowcount
            excess = self._db.execute(
                "DELETE FROM answers WHERE id IN"
                " (SELECT id FROM answers ORDER BY created DESC LIMIT -1 OFFSET ?)",
                (self.max_records,),
            ).rowcount
            remaining = int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        metrics.RECORDS_PRUNED.labels("retention").inc(max(expired, 0))
        metrics.RECORDS_PRUNED.labels("size").inc(max(excess, 0))
        metrics.RECORDS.set(remaining)

    def rows(self, feedback: str | None = None) -> Iterator[dict[str, Any]]:
        """Records oldest first; `feedback` "up"/"down" keeps those rated so, "any" those rated at all."""
        query = "SELECT * FROM answers"
        args: tuple[str, ...] = ()
        if feedback == "any":
            query += " WHERE rating IS NOT NULL"
        elif feedback is not None:
            query, args = query + " WHERE rating = ?", (feedback,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        yield from (_decode(row) for row in rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _oldest(self) -> float:
        return time.time() - self.retention_seconds


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["sources"] = json.loads(record["sources"])
    record["scores"] = json.loads(record["scores"]) if record["scores"] else None
    record["safety"] = json.loads(record["safety"]) if record["safety"] else None
    return record


def eval_case(record: dict[str, Any]) -> dict[str, Any]:
    """A down-voted answer as an eval case: the question, what was wrong, and what the answer must not be."""
    return {
        "id": f"feedback-{record['id']}",
        "kind": "feedback",
        "query": record["query"],
        "must_cite": sorted({s["title"] for s in record["sources"]})[:1],
        "must_not_equal": record["answer"],
        "user_reason": record["reason"],
        "user_comment": record["comment"],
        "evaluator_verdict": record["evaluator_verdict"],
    }


def main(argv: list[str] | None = None) -> int:
    from rag_api.settings import RAGSettings

    settings = RAGSettings()
    parser = argparse.ArgumentParser(prog="python -m rag_api.records", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write records as eval cases (JSONL)")
    export.add_argument("--db", type=Path, default=settings.records_path, help=DB_HELP)
    export.add_argument("--feedback", choices=("up", "down", "any"), default="down")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if not args.db.exists():
        print(f"no records file at {args.db}", file=sys.stderr)
        return 2
    store = AnswerRecords(
        args.db,
        retention_seconds=settings.records_retention_hours * 3600,
        max_records=settings.records_max,
        salt=settings.records_user_salt,
    )
    lines = [json.dumps(eval_case(r), ensure_ascii=False) for r in store.rows(args.feedback)]
    store.close()
    text = "".join(line + "\n" for line in lines)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"{len(lines)} eval cases written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
