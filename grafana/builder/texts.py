"""A dashboard's words, kept as prose in texts/<uid>.md: `# Title`, the dashboard's description, then one
`## Panel title` section per panel with its description (paragraph lines are joined by spaces)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

TEXT_DIR = Path(__file__).resolve().parent / "texts"


@dataclass(frozen=True)
class Texts:
    title: str
    description: str
    panels: dict[str, str]  # panel title -> description


def parse(markdown: str) -> Texts:
    title, current = "", ""
    sections: dict[str, list[str]] = {"": []}
    for line in markdown.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip()
            if current in sections:
                raise ValueError(f"panel {current!r} described twice")
            sections[current] = []
        elif line.strip():
            sections[current].append(line.strip())
    joined = {name: " ".join(lines) for name, lines in sections.items()}
    return Texts(title=title, description=joined.pop(""), panels=joined)


@cache
def texts(uid: str) -> Texts:
    return parse((TEXT_DIR / f"{uid}.md").read_text(encoding="utf-8"))
