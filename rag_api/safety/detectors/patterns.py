"""Weighted phrase patterns (English and German, some French and Spanish) read from lexicons/*.tsv, noisy-OR.

Written by hand from the public descriptions of each attack or abuse family, not from any benchmark file. A
lexicon line is `category<TAB>weight<TAB>regex`; `@define NAME<TAB>regex` names a fragment used as {NAME}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rag_api.safety.detectors.base import noisy_or


@dataclass(frozen=True)
class WeightedPattern:
    category: str
    weight: float
    regex: re.Pattern[str]


LEXICONS_DIR = Path(__file__).resolve().parent / "lexicons"
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z_]*)\}")


def load_lexicon(name: str, directory: Path = LEXICONS_DIR) -> tuple[WeightedPattern, ...]:
    defines: dict[str, str] = {}
    patterns: list[WeightedPattern] = []
    path = directory / f"{name}.tsv"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        expand = lambda regex: _PLACEHOLDER.sub(lambda m: defines[m.group(1)], regex)  # noqa: E731
        if fields[0].startswith("@define ") and len(fields) == 2:
            defines[fields[0].removeprefix("@define ").strip()] = expand(fields[1])
        elif len(fields) == 3:
            patterns.append(WeightedPattern(fields[0], float(fields[1]), re.compile(expand(fields[2]), re.I)))
        else:
            raise ValueError(f"{path}:{number}: expected category<TAB>weight<TAB>regex")
    return tuple(patterns)


def match_patterns(text: str, patterns: tuple[WeightedPattern, ...]) -> tuple[float, str]:
    """(noisy-OR of the matched weights, category of the strongest match) or (0, "none")."""
    weights: list[float] = []
    best_category, best_weight = "none", 0.0
    for pattern in patterns:
        hits = len(pattern.regex.findall(text))
        if hits:
            weights.extend([pattern.weight] * min(hits, 3))
            if pattern.weight > best_weight:
                best_category, best_weight = pattern.category, pattern.weight
    return (noisy_or(*weights), best_category) if weights else (0.0, "none")
