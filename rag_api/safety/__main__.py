"""Batch scorer: one JSON line in ({id, text}, other fields ignored), one JSON line out per row.

    python -m rag_api.safety --input IN.jsonl --output OUT.jsonl [--no-embeddings] [--threshold CHECK=0.5]

Output rows: {id, prompt_injection, toxicity, pii} (scores in [0, 1]), pii_entities (types found, in text
order) and flagged ({check: score >= the detector's threshold}). Offline: the MiniLM model ships in a package.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lab_common.jsonl import read_objects
from rag_api.safety.detectors import Detector, build_detectors
from rag_api.safety.detectors.head import sentences

CHECKS = ("prompt_injection", "toxicity", "pii")


class InputError(ValueError):
    pass


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    for where, row in read_objects(path, InputError):
        if "id" not in row:
            raise InputError(f"{where}: field 'id' missing")
        if not isinstance(row.get("text"), str):
            raise InputError(f"{where}: field 'text' missing or not a string")
        yield row


def score_row(
    row_id: Any,
    text: str,
    detectors: dict[str, Detector],
    embedding: np.ndarray | None = None,
    sentence_embeddings: np.ndarray | None = None,
) -> dict:
    results = {check: detectors[check].score(text, embedding, sentence_embeddings) for check in CHECKS}
    return {
        "id": row_id,
        **{check: round(results[check].score, 6) for check in CHECKS},
        "pii_entities": [entity.type for entity in results["pii"].entities],
        "flagged": {check: results[check].score >= detectors[check].threshold for check in CHECKS},
    }


def embed_by_length(embedder: Any, texts: list[str], batch: int = 32) -> np.ndarray:
    """Embeddings in input order, computed in batches of similar length (padding is most of a mixed batch)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = np.zeros((len(texts), 0), dtype=np.float32)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        embedded = embedder.embed([texts[i] for i in chunk])
        if vectors.shape[1] == 0:
            vectors = np.zeros((len(texts), embedded.shape[1]), dtype=np.float32)
        vectors[chunk] = embedded
    return vectors


def score_rows(
    rows: list[dict[str, Any]], detectors: dict[str, Detector], embedder: Any = None
) -> list[dict]:
    """With an embedder: each text and each of its sentences embedded once, in one length-sorted pass."""
    texts = [row["text"] for row in rows]
    if embedder is None or not texts:
        return [score_row(row["id"], row["text"], detectors) for row in rows]
    parts = [sentences(text) for text in texts]
    vectors = embed_by_length(embedder, texts + [s for p in parts for s in p])
    records, cursor = [], len(texts)
    for i, row in enumerate(rows):
        sentence_vectors = vectors[cursor : cursor + len(parts[i])] if parts[i] else None
        cursor += len(parts[i])
        records.append(score_row(row["id"], row["text"], detectors, vectors[i], sentence_vectors))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag_api.safety", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--no-embeddings", action="store_true", help="pure-text signals only (no MiniLM)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows embedded and written per step")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="CHECK=VALUE",
        help="flag threshold for one check (default 0.5 each), e.g. --threshold toxicity=0.7",
    )
    args = parser.parse_args(argv)
    thresholds = {}
    for item in args.threshold:
        check, _, value = item.partition("=")
        try:
            thresholds[check] = float(value)
        except ValueError:
            parser.error(f"--threshold {item}: expected CHECK=NUMBER")
        if check not in CHECKS or not 0.0 <= thresholds[check] <= 1.0:
            parser.error(f"--threshold {item}: CHECK is one of {', '.join(CHECKS)}, VALUE in [0, 1]")
    if not args.input.exists():
        parser.error(f"--input {args.input}: no such file")

    embedder = None
    if not args.no_embeddings:
        from rag_api.embeddings import get_embedder

        embedder = get_embedder()
    detectors = build_detectors(embedder, thresholds)
    written = 0
    try:
        with args.output.open("w", encoding="utf-8") as out:
            batch: list[dict[str, Any]] = []
            for row in read_rows(args.input):
                batch.append(row)
                if len(batch) >= args.batch_size:
                    written += _write(out, score_rows(batch, detectors, embedder))
                    batch = []
            written += _write(out, score_rows(batch, detectors, embedder))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"scored {written} rows -> {args.output}", file=sys.stderr)
    return 0


def _write(out: Any, records: list[dict]) -> int:
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(records)


if __name__ == "__main__":
    sys.exit(main())
