"""How well do the safety detectors separate human-labelled unsafe text, and what do they cost?

    python -m benchmarks.safety [--data ../shared/data/safety/safety_dev.jsonl] [--task T] [--limit N]

Scores every row through the batch scorer's own code path (`rag_api.safety.__main__.score_rows`) and
prints, per task (never pooled): AUROC, precision and recall at the shipped thresholds, the best recall at
precision ≥ 0.90, the reference baselines computed in the same run (a keyword list for injection, a plain
regex set for PII), PII recall per entity type, and ms per text. Then the flags raised on the lab's own
healthy traffic (question sets, knowledge-base paragraphs = the offline answers) and the per-/chat chain cost
(input with the query embedding rag_api already has, output pure text). Nothing is tuned here: it measures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import ROOT, auroc, shared_data

CHECKS = ("prompt_injection", "toxicity", "pii")
# The data set's entity names → ours.
ENTITY_NAMES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN"}

# Reference baselines, deliberately plain (the "keyword list" and "naive regex set").
INJECTION_KEYWORDS = ("ignore", "forget", "previous instructions", "act as", "disregard", "pretend",
                      "vergiss", "ignoriere", "system prompt", "jailbreak")  # fmt: skip
NAIVE_PII = {
    "EMAIL": re.compile(r"\S+@\S+\.\w+"),
    "PHONE": re.compile(r"\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}"),
    "CREDIT_CARD": re.compile(r"\b(?:\d{4}[- ]?){3}\d{4}\b"),
    "US_SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "IBAN": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b"),
    "IP_ADDRESS": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
}


def precision_recall(labels: list[int], flags: list[bool]) -> tuple[float, float]:
    tp = sum(1 for y, f in zip(labels, flags, strict=True) if y and f)
    fp = sum(1 for y, f in zip(labels, flags, strict=True) if not y and f)
    fn = sum(1 for y, f in zip(labels, flags, strict=True) if y and not f)
    return (tp / (tp + fp) if tp + fp else float("nan")), (tp / (tp + fn) if tp + fn else float("nan"))


def recall_at_precision(labels: list[int], scores: list[float], target: float = 0.90) -> float:
    """Best recall over the cut-offs with precision ≥ target (a property of the ranking, not a setting)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    y = np.asarray(labels)[order]
    s = np.asarray(scores, dtype=float)[order]
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    best = 0.0
    for i in range(len(y)):
        last_of_tie = i == len(y) - 1 or s[i + 1] != s[i]
        if last_of_tie and precision[i] >= target:
            best = max(best, tp[i] / max(int(y.sum()), 1))
    return float(best)


def keyword_baseline(text: str) -> float:
    lowered = text.lower()
    return float(any(k in lowered for k in INJECTION_KEYWORDS))


def naive_pii_types(text: str) -> set[str]:
    return {name for name, pattern in NAIVE_PII.items() if pattern.search(text)}


def lab_texts() -> dict[str, list[str]]:
    """The lab's own healthy traffic: questions it is asked and the texts its answers are made of."""
    from labctl.traffic import in_domain_questions

    questions = list(in_domain_questions())
    questions += _lines(ROOT / "tests" / "data" / "out_of_domain_questions.txt")
    for line in _lines(ROOT / "tests" / "data" / "retrieval_questions.jsonl"):
        row = json.loads(line)
        questions += [v for k, v in row.items() if isinstance(v, str) and k in ("question", "query", "text")]
    answers = []
    for path in sorted((ROOT / "rag_api" / "knowledge").glob("*.md")):
        answers += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return {"questions": questions, "answers": answers}


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def load_rows(path: Path, limit: int | None) -> dict[str, list[dict[str, Any]]]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if limit is None or len(by_task[row["task"]]) < limit:
                by_task[row["task"]].append(row)
    return by_task


def report_task(task: str, rows: list[dict], records: list[dict], seconds: float, pure: list[dict]) -> None:
    """`pure` is `records` itself when no embedder was used."""
    labels = [int(r["label"]) for r in rows]
    scores = [rec[task] for rec in records]
    p, r = precision_recall(labels, [rec["flagged"][task] for rec in records])
    print(f"\n== {task} ({len(rows)} rows: {labels.count(0)} safe / {labels.count(1)} unsafe)")
    print(f"{'scorer':34} {'AUROC':>6} {'P@thr':>6} {'R@thr':>6} {'R@P≥.9':>7}")
    print(f"{'detector (shipped threshold)':34} {auroc(labels, scores):6.3f} {p:6.3f} {r:6.3f}"
          f" {recall_at_precision(labels, scores):7.3f}")  # fmt: skip
    if pure is not records:
        pure_scores = [rec[task] for rec in pure]
        pp, pr = precision_recall(labels, [rec["flagged"][task] for rec in pure])
        print(f"{'  pure-text part only':34} {auroc(labels, pure_scores):6.3f} {pp:6.3f} {pr:6.3f}"
              f" {recall_at_precision(labels, pure_scores):7.3f}")  # fmt: skip
    if task == "prompt_injection":
        base = [keyword_baseline(row["text"]) for row in rows]
        bp, br = precision_recall(labels, [b > 0 for b in base])
        print(f"{'baseline: keyword list':34} {auroc(labels, base):6.3f} {bp:6.3f} {br:6.3f}")
    if task == "pii":
        report_pii(rows, records)
    how = "MiniLM embeddings of text and sentences included" if pure is not records else "text only"
    print(f"cost: {seconds / max(len(rows), 1) * 1000:.2f} ms per text, all three checks ({how})")


def report_pii(rows: list[dict], records: list[dict]) -> None:
    labels = [int(r["label"]) for r in rows]
    naive = [naive_pii_types(row["text"]) for row in rows]
    bp, br = precision_recall(labels, [bool(n) for n in naive])
    print(f"{'baseline: naive regex set':34} {'':6} {bp:6.3f} {br:6.3f}")
    print(f"{'entity type':20} {'rows':>5} {'recall':>7} {'naive':>7}")
    expected_types: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        for name in set(row.get("entities") or ()):
            expected_types[ENTITY_NAMES.get(name, name)].append(index)
    for kind, indexes in sorted(expected_types.items()):
        found = sum(1 for i in indexes if kind in records[i]["pii_entities"])
        naive_found = sum(1 for i in indexes if kind in naive[i])
        print(f"{kind:20} {len(indexes):5d} {found / len(indexes):7.3f} {naive_found / len(indexes):7.3f}")


def report_lab_traffic(detectors: dict, embedder: Any) -> None:
    """Questions go through the input checks, answers through the output ones (pii, toxicity), batch path."""
    from rag_api.safety.__main__ import score_rows

    texts = lab_texts()
    stages = {"questions": CHECKS, "answers": ("pii", "toxicity")}
    print("\n== lab's own healthy traffic (false flags, batch scorer path)")
    for kind, items in texts.items():
        records = score_rows([{"id": i, "text": t} for i, t in enumerate(items)], detectors, embedder)
        flags = {c: sum(r["flagged"][c] for r in records) for c in stages[kind]}
        any_flag = sum(any(r["flagged"][c] for c in stages[kind]) for r in records)
        detail = ", ".join(f"{c} {n}" for c, n in flags.items())
        print(f"{kind:10} {len(items):5d} texts: {detail}; any flag {any_flag / max(len(items), 1):.1%}")
    from rag_api.safety.detectors import build_detectors

    report_chain_cost(build_detectors(None), embedder, texts)


def report_chain_cost(detectors: dict, embedder: Any, texts: dict[str, list[str]]) -> None:
    """Input checks with the precomputed query embedding + output checks pure text, per /chat.

    `detectors` are built without an embedder, as the chain uses them: a vector is used when one is passed.
    """
    questions, answers = texts["questions"], texts["answers"]
    from rag_api.safety.__main__ import embed_by_length

    vectors = embed_by_length(embedder, questions) if embedder is not None else None  # as retrieval does
    wall, cpu = [], []
    for i in range(max(len(questions), 300)):
        question, answer = questions[i % len(questions)], answers[i % len(answers)]
        vector = None if vectors is None else vectors[i % len(questions)]
        tick, tick_cpu = time.perf_counter(), time.thread_time()
        for check in CHECKS:
            detectors[check].score(question, vector)
        detectors["pii"].score(answer)
        detectors["toxicity"].score(answer)
        wall.append(time.perf_counter() - tick)
        cpu.append(time.thread_time() - tick_cpu)
    print("chain per /chat (input: 3 checks, query embedding given; output: pii + toxicity, text only):")
    for label, values in (("wall", wall), ("cpu", cpu)):
        p50, p99 = np.percentile(np.asarray(values) * 1000, (50, 99))
        print(f"  {label:4} p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(values)} chats")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data("safety/safety_dev.jsonl"))
    parser.add_argument("--limit", type=int, default=None, help="score at most N rows per task")
    parser.add_argument("--no-embeddings", action="store_true", help="pure-text detectors only")
    parser.add_argument("--task", choices=CHECKS, action="append", help="only these tasks (default: all)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"benchmark data not found: {args.data}\n(expected the read-only shared/data/safety/ beside "
              "the repository; pass --data PATH)", file=sys.stderr)  # fmt: skip
        return 2

    from rag_api.safety.__main__ import score_rows
    from rag_api.safety.detectors import build_detectors

    embedder = None
    if not args.no_embeddings:
        from rag_api.embeddings import get_embedder

        embedder = get_embedder()
    detectors = build_detectors(embedder)
    text_only = build_detectors(None)
    for task, rows in load_rows(args.data, args.limit).items():
        if args.task and task not in args.task:
            continue
        started = time.perf_counter()
        records = score_rows(rows, detectors, embedder)
        seconds = time.perf_counter() - started
        pure = score_rows(rows, text_only, None) if embedder is not None else records
        report_task(task, rows, records, seconds, pure)
    report_lab_traffic(detectors, embedder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
