"""How well does the hallucination score (1 - groundedness) separate human-labelled answers?

    python -m benchmarks.groundedness [--data ../shared/data/groundedness_dev.jsonl] [--limit N] [--judge]

Runs the batch CLI's own code path (`rag_api.evaluation.score_rows` over a TruLens-driven Evaluator; offline
unless --judge, which uses OPENAI_* like the CLI) and prints, per source: rows, AUROC of our hallucination
score, AUROC of the token-overlap baseline computed in the same run, the difference, and seconds per row.
Then two guards against leaning on answer length (in HaluEval QA right answers are short entities and
hallucinated ones long sentences): the AUROC of answer length alone, and our AUROC within answer-length
strata of halueval_qa, plus the rank correlation of our score with length inside each label.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.stats import auroc, shared_data

DEFAULT_DATA = shared_data("groundedness_dev.jsonl")
LENGTH_STRATA = ((1, 2), (3, 4), (5, 7), (8, 11), (12, 10_000))  # answer length in words


Scores = dict[str, dict[str, list[Any]]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="score at most N rows per source")
    parser.add_argument("--judge", action="store_true", help="use the OPENAI_* judge like the CLI would")
    args = parser.parse_args(argv)

    from rag_api.evaluation import build_evaluator, evaluator_from_env, read_rows

    if not args.data.is_file():
        print(
            f"no labelled data at {args.data}: this benchmark needs a JSONL file the repository "
            "does not ship. "
            'Pass one with --data PATH; each line: {"id", "source", "question", "context", '
            '"answer", "label"} with label 1 for a hallucinated answer, 0 for a grounded one '
            "(docs/benchmarks.md, 'Groundedness scorer', names the public sets the figures come from).",
            file=sys.stderr,
        )
        return 2
    rows = _limit_rows(read_rows(args.data), args.limit)
    started = time.perf_counter()
    evaluator = (
        evaluator_from_env()
        if args.judge
        else build_evaluator(api_key=None, base_url=None, model="offline", timeout=1.0, max_retries=0)
    )
    print(f"provider: {evaluator.provider_name} (set up in {time.perf_counter() - started:.1f} s)")
    by_source, failures = _score_by_source(rows, evaluator)
    _print_table(by_source)
    _print_halves(by_source)
    if halu := by_source.get("halueval_qa"):
        _print_length_strata(halu)
    if failures:
        print(f"\n{failures} rows failed to score", file=sys.stderr)
    return 0


def _limit_rows(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most `limit` rows per source, in file order."""
    if not limit:
        return rows
    kept: dict[str, int] = defaultdict(int)
    limited = []
    for row in rows:
        if kept[row["source"]] < limit:
            kept[row["source"]] += 1
            limited.append(row)
    return limited


def _score_by_source(rows: list[dict[str, Any]], evaluator: Any) -> tuple[Scores, int]:
    """Per source: labels, our hallucination score, the overlap baseline's, answer length, seconds, half."""
    from rag_api import scoring
    from rag_api.evaluation import score_rows
    from rag_api.text import words

    by_source: Scores = defaultdict(lambda: defaultdict(list))
    failures = 0
    scored = score_rows(rows, evaluator)
    for row in rows:
        tick = time.perf_counter()
        record = next(scored)
        elapsed = time.perf_counter() - tick
        if record["groundedness"] is None:
            failures += 1
            continue
        data = by_source[row["source"]]
        data["label"].append(int(row["label"]))
        data["ours"].append(1.0 - record["groundedness"])
        data["baseline"].append(1.0 - scoring.token_overlap_baseline(row["context"], row["answer"]))
        data["length"].append(len(words(row["answer"])))
        data["seconds"].append(elapsed)
        data["half"].append(int(hashlib.md5(str(row["id"]).encode()).hexdigest(), 16) % 2)
    return by_source, failures


def _print_table(by_source: Scores) -> None:
    header = f"{'source':<15}{'rows':>6}{'ours':>8}{'overlap':>9}{'diff':>8}{'length':>8}{'s/row':>8}"
    print(header)
    print("-" * len(header))
    for source in sorted(by_source):
        data = by_source[source]
        ours, base = auroc(data["label"], data["ours"]), auroc(data["label"], data["baseline"])
        length = auroc(data["label"], data["length"])
        seconds = float(np.mean(data["seconds"]))
        print(
            f"{source:<15}{len(data['label']):>6}{ours:>8.3f}{base:>9.3f}{ours - base:>+8.3f}"
            f"{length:>8.3f}{seconds:>8.3f}"
        )
    print("ours = AUROC of 1 - groundedness; overlap = token-overlap baseline; length = answer length alone")


def _print_halves(by_source: Scores) -> None:
    """Cross-check for choices made while building the scorer: variants were compared on half A (ids hashed)
    and only then measured on half B; a choice overfit to A would show a gap here."""
    print("\nsplit halves (md5 of id, even = A): ours / overlap per half")
    for source in sorted(by_source):
        data = by_source[source]
        cells = []
        for half in (0, 1):
            idx = [i for i, h in enumerate(data["half"]) if h == half]
            labels = [data["label"][i] for i in idx]
            ours = auroc(labels, [data["ours"][i] for i in idx])
            base = auroc(labels, [data["baseline"][i] for i in idx])
            cells.append(f"{'AB'[half]}: {ours:.3f} / {base:.3f} ({ours - base:+.3f})")
        print(f"{source:<15}" + "   ".join(cells))


def _print_length_strata(halu: dict[str, list[Any]]) -> None:
    print("\nhalueval_qa within answer-length strata (a length-driven score would fall to ~0.5 here):")
    print(f"{'words':<10}{'rows':>6}{'label=1':>9}{'ours':>8}{'overlap':>9}")
    lengths = np.asarray(halu["length"])
    for low, high in LENGTH_STRATA:
        mask = (lengths >= low) & (lengths <= high)
        labels = [y for y, m in zip(halu["label"], mask, strict=True) if m]
        ours = [v for v, m in zip(halu["ours"], mask, strict=True) if m]
        base = [v for v, m in zip(halu["baseline"], mask, strict=True) if m]
        name = f"{low}-{high}" if high < 10_000 else f"{low}+"
        print(
            f"{name:<10}{len(labels):>6}{int(sum(labels)):>9}"
            f"{auroc(labels, ours):>8.3f}{auroc(labels, base):>9.3f}"
        )
    for label in (0, 1):
        idx = [i for i, y in enumerate(halu["label"]) if y == label]
        rho = spearmanr([halu["ours"][i] for i in idx], [halu["length"][i] for i in idx]).statistic
        print(f"spearman(score, length) among label={label} rows: {rho:+.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
