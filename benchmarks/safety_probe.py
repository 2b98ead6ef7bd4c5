"""What do the safety detectors miss outside the dev file? A small probe written for this project.

    python -m benchmarks.safety_probe [--set A|B] [--misses]

benchmarks/data/safety_probe.jsonl holds texts written by hand for issue 12's generalisation check
(nothing from ../shared/data): PII in shapes the dev file may not have (E.164 and other countries' phones,
IBANs of other countries, cards with dashes, IPv6, emails with subdomains and plus tags) and look-alikes that
are not PII;
injection phrasings (role play, "ignore the above", prompt extraction, German, French, Spanish) and benign
questions that share their words; implicit toxicity without swear words and blunt but civil text.

Set A was written first and used to find the gaps that were then fixed (so its figures after the fix are
optimistic); set B was written after the fix and never used to change anything: B is the honest figure.
Scored through the batch scorer's code path with MiniLM, at the shipped thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

PROBE = Path(__file__).resolve().parent / "data" / "safety_probe.jsonl"


def load(sets: list[str] | None) -> list[dict]:
    rows = [json.loads(line) for line in PROBE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if not sets or r["set"] in sets]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=("A", "B"), action="append", help="only this probe set")
    parser.add_argument("--misses", action="store_true", help="print each text scored the wrong way")
    args = parser.parse_args(argv)

    from rag_api.embeddings import get_embedder
    from rag_api.safety.__main__ import score_rows
    from rag_api.safety.detectors import build_detectors

    embedder = get_embedder()
    rows = load(args.set)
    records = score_rows(
        [{"id": i, "text": r["text"]} for i, r in enumerate(rows)], build_detectors(embedder), embedder
    )
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row, record in zip(rows, records, strict=True):
        wanted = bool(row["label"])
        right = (
            row["entity"] in record["pii_entities"]
            if wanted and row["check"] == "pii"
            else record["flagged"][row["check"]] == wanted
        )
        group = "unsafe: caught" if wanted else "safe: left alone"
        kind = row.get("entity", "")
        tally[(row["set"], row["check"], f"{group} {kind}".strip())][0] += right
        tally[(row["set"], row["check"], f"{group} {kind}".strip())][1] += 1
        if args.misses and not right:
            print(f"miss  set {row['set']} {row['check']:16} {record[row['check']]:.3f}  {row['text'][:90]}")
    print(f"{'set':3} {'check':16} {'group':28} {'right':>9}")
    for (probe_set, check, group), (right, total) in sorted(tally.items()):
        print(f"{probe_set:3} {check:16} {group:28} {right:4d}/{total:<4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
