"""Batch scorer: one JSON line in ({id, text}, other fields ignored), one JSON line out per row.

    python -m rag_api.safety --input IN.jsonl --output OUT.jsonl [--no-embeddings] [--threshold CHECK=0.5]

Output rows: {id, prompt_injection, toxicity, pii} (scores in [0, 1]), pii_entities (types found, in text
order) and flagged ({check: score >= the detector's threshold}). Offline: the MiniLM model ships in a package.

The whole input is checked before anything is scored: a line that is not a JSON object or whose `text` is not
a string stops the run with every such line named (up to MAX_REPORTED) and OUT untouched, never half written.
A row without `id` is scored with `"id": null` (rows come out in input order) and named on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag_api.safety.detectors import Detector, build_detectors
from rag_api.safety.detectors.head import sentences

CHECKS = ("prompt_injection", "toxicity", "pii")
MAX_REPORTED = 20  # bad lines named in one error message; the count says how many more


class InputError(ValueError):
    pass


def parse_row(where: str, line: str | None) -> dict[str, Any]:
    """{id, text} of one input line (`where` = path:line, None: not UTF-8); InputError naming the line."""
    if line is None:
        raise InputError(f"{where}: not UTF-8 text")
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "text" not in row:
        raise InputError(f"{where}: field 'text' missing")
    if not isinstance(row["text"], str):
        raise InputError(f"{where}: field 'text' is {type(row['text']).__name__}, expected a string")
    return {"id": row.get("id"), "text": row["text"]}


def _lines(path: Path) -> Iterator[tuple[str, str | None]]:
    """(path:line, text) of each non-blank line; text None for a line that is not UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield f"{path}:{number}", raw.decode("utf-8")
            except UnicodeDecodeError:
                yield f"{path}:{number}", None


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    for where, line in _lines(path):
        yield parse_row(where, line)


def check_input(path: Path) -> list[str]:
    """The lines without an id of a usable input; InputError naming up to MAX_REPORTED unusable lines."""
    problems: list[str] = []
    missing_id: list[str] = []
    for where, line in _lines(path):
        try:
            if parse_row(where, line)["id"] is None:
                missing_id.append(where)
        except InputError as error:
            problems.append(str(error))
    if problems:
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        listed = "\n  ".join(problems[:MAX_REPORTED])
        raise InputError(f"{len(problems)} unusable line(s), nothing scored:\n  {listed}{more}")
    return missing_id


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


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, float]]:
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
    if not args.input.is_file():
        parser.error(f"--input {args.input}: no such file")
    if args.batch_size < 1:
        parser.error("--batch-size: at least 1")
    return args, thresholds


def score_file(args: argparse.Namespace, detectors: dict[str, Detector], embedder: Any) -> int:
    """Rows written. Into OUT.partial first, renamed to OUT at the end: OUT is whole or not there."""
    partial = args.output.with_name(args.output.name + ".partial")
    written = 0
    with partial.open("w", encoding="utf-8") as out:
        batch: list[dict[str, Any]] = []
        for row in read_rows(args.input):
            batch.append(row)
            if len(batch) >= args.batch_size:
                written += _write(out, score_rows(batch, detectors, embedder))
                batch = []
        written += _write(out, score_rows(batch, detectors, embedder))
    partial.replace(args.output)
    return written


def main(argv: list[str] | None = None) -> int:
    args, thresholds = _parse_args(argv)
    try:
        missing_id = check_input(args.input)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if missing_id:
        print(f"warning: {len(missing_id)} row(s) without 'id', written with id null (first: "
              f"{', '.join(missing_id[:5])})", file=sys.stderr)  # fmt: skip
    embedder = None
    if not args.no_embeddings:
        from rag_api.embeddings import get_embedder

        embedder = get_embedder()
    written = score_file(args, build_detectors(embedder, thresholds), embedder)
    print(f"scored {written} rows -> {args.output}", file=sys.stderr)
    return 0


def _write(out: Any, records: list[dict]) -> int:
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(records)


if __name__ == "__main__":
    sys.exit(main())
