#!/usr/bin/env python3
"""Move the flat tests/test_*.py into a tree that mirrors the packages (issue #10 item 7), and fix what moving
breaks.

    .venv/bin/python scripts/mirror_tests.py --dry-run   # print the plan, change nothing
    .venv/bin/python scripts/mirror_tests.py             # git mv, fix paths, imports, references; ruff
    # then: `pytest --collect-only -q` counts as many tests as before; review `git diff -M --stat`; commit.

The project's Python, so that ruff and `python -m monitoring.generate` are importable. It stages the moves
and the new __init__.py files (git mv / git add); the content fixes are left unstaged for review.

Where a file goes: the explicit TABLE for the files known when this was written, else the first PREFIXES rule
its name matches (so files added later by other branches still find their place), else it stays where it is
with a warning. tests/e2e/, tests/support/, tests/data/, tests/conftest.py (the shared fixtures) and the
helper modules at tests/ (tests/dashboards.py) stay.

What it fixes, in the moved files and everywhere else:
- `__init__.py` in tests/ and in every directory it moves tests into. Module names then become unique dotted
  names (tests.rag_api.test_rag_api): pytest's default "prepend" import mode would otherwise need every test
  basename to be unique, and a tests/rag_api/__init__.py without tests/__init__.py would shadow the real
  rag_api package. tests/ is then no longer on sys.path, so `from dashboards import ...` becomes
  `from tests.dashboards import ...` (and a test importing another test module gets its new dotted name);
- `Path(__file__)...parents[N]` / `.parent` in a moved file: N grows by how much deeper the file now sits;
  any other use of `__file__` there is reported, not guessed at;
- relative imports in a moved file (`from .x import`) become `from tests.x import` (x was its sibling);
- `tests/test_x.py` (and `tests.test_x`) in every tracked text file (docs, Makefile, pyproject, .ci, comments,
  other tests, the monitoring contract) names the file's new place; generated files are then re-rendered
  (`python -m monitoring.generate`) if the contract's sources changed;
- the Python files it touched get `ruff check --select I --fix` (import order) and `ruff format`.

Idempotent: a second run finds nothing to move and nothing to rewrite. It also repairs references that a
branch merged after the move still makes to a file's old place.

What it does not do: guess at `__file__` uses other than `Path(__file__)...parent(s)` (it names the line);
rewrite a test's bare basename without `tests/` (e.g. e2e/conftest.py's run-order note: e2e does not move);
rewrite references to a basename that exists in two test directories (it warns); wrap a line a longer path
made too long (it lists them). The run order of the modules changes with the tree (alphabetical by directory
now); no test is known to depend on it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = "tests"
# Directories of tests/ that are not package mirrors and keep their layout.
KEEP_DIRS = ("e2e", "support", "data")

# basename -> directory under tests/ for the files of today's flat tests/. "" = stays at tests/ on purpose
# (checks of the whole repository, not of one package).
TABLE: dict[str, str] = {
    # ml_api
    "test_ml_api.py": "ml_api",
    "test_ml_drift_report.py": "ml_api",
    "test_ml_model.py": "ml_api",
    "test_ml_triage.py": "ml_api",
    "test_drift.py": "ml_api",
    "test_cardinality.py": "ml_api",
    "test_multiworker.py": "ml_api",
    # rag_api
    "test_rag_api.py": "rag_api",
    "test_rag_chroma_server.py": "rag_api",
    "test_rag_drift.py": "rag_api",
    "test_rag_evaluation_queue.py": "rag_api",
    "test_rag_feedback.py": "rag_api",
    "test_rag_knowledge.py": "rag_api",
    "test_rag_openai.py": "rag_api",
    "test_rag_retrieval.py": "rag_api",
    "test_rag_text.py": "rag_api",
    "test_rag_usage.py": "rag_api",
    "test_evaluation.py": "rag_api",
    "test_safety_api.py": "rag_api/safety",
    "test_safety_chain.py": "rag_api/safety",
    "test_safety_detectors.py": "rag_api/safety",
    # lab_common: the serving layer both services share (server, metrics, faults, offline docs) and the
    # checks that run both services through it
    "test_deferred_metrics.py": "lab_common",
    "test_http_server.py": "lab_common",
    "test_api_docs.py": "lab_common",
    "test_fault_api.py": "lab_common",
    "test_request_labels.py": "lab_common",
    "test_fuzz.py": "lab_common",
    # the monitoring contract and what is rendered from it
    "test_contract.py": "monitoring",
    "test_anomaly.py": "monitoring",
    "test_dashboards_static.py": "grafana",
    "test_prometheus_config.py": "prometheus",
    "test_alertmanager_config.py": "alertmanager",
    # the lab toolkit
    "test_labctl.py": "labctl",
    "test_supervisor.py": "labctl",
    "test_lab_supervision.py": "labctl",
    "test_receiver.py": "receiver",
    "test_receiver_hypothesis.py": "receiver",
    "test_receiver_pages.py": "receiver",
    "test_simulations.py": "simulations",
    "test_simulation_chart.py": "simulations",
    "test_attack_simulation.py": "simulations",
    "test_cost_simulation.py": "simulations",
    "test_eval_gate.py": "simulations",
    # deployment files and docs
    "test_kubernetes.py": "deploy",
    "test_compose.py": "deploy",
    "test_docs.py": "docs",
    "test_docs_commands.py": "docs",
    # the whole repository
    "test_lint.py": "",
    "test_secrets.py": "",
}

# For files TABLE does not know: first matching name prefix wins (longer, more specific prefixes first).
PREFIXES: tuple[tuple[str, str], ...] = (
    ("test_rag_safety", "rag_api/safety"),
    ("test_safety", "rag_api/safety"),
    ("test_rag", "rag_api"),
    ("test_ml", "ml_api"),
    ("test_lab_common", "lab_common"),
    ("test_labctl", "labctl"),
    ("test_lab_", "labctl"),
    ("test_supervis", "labctl"),
    ("test_receiver", "receiver"),
    ("test_simulation", "simulations"),
    ("test_benchmark", "benchmarks"),
    ("test_bench", "benchmarks"),
    ("test_monitoring", "monitoring"),
    ("test_contract", "monitoring"),
    ("test_anomaly", "monitoring"),
    ("test_grafana", "grafana"),
    ("test_dashboard", "grafana"),
    ("test_prometheus", "prometheus"),
    ("test_promql", "prometheus"),
    ("test_alertmanager", "alertmanager"),
    ("test_kubernetes", "deploy"),
    ("test_k8s", "deploy"),
    ("test_deploy", "deploy"),
    ("test_compose", "deploy"),
    ("test_docker", "deploy"),
    ("test_docs", "docs"),
    ("test_openai", "rag_api"),
    ("test_litellm", "rag_api"),
    ("test_llm", "rag_api"),
    ("test_nab", "benchmarks"),
)

# Path(__file__)[.resolve()] then .parents[N] or a chain of .parent (one .parent is level 0).
FILE_PATH = re.compile(
    r"Path\(__file__\)(?P<resolve>\.resolve\(\))?(?:\.parents\[(?P<n>\d+)\]|(?P<chain>(?:\.parent(?!s))+))"
)
RELATIVE_IMPORT = re.compile(r"^(?P<indent>[ \t]*)from \.(?P<module>\w+) import", re.M)


@dataclass(frozen=True)
class Move:
    source: str  # repo-relative, e.g. tests/test_rag_api.py
    target: str  # repo-relative, e.g. tests/rag_api/test_rag_api.py

    @property
    def depth(self) -> int:
        """How many directories deeper the file sits after the move."""
        return self.target.count("/") - self.source.count("/")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def destination(name: str) -> str | None:
    """Directory under tests/ for a top-level test file ("" = stays), None when no rule knows it."""
    if name in TABLE:
        return TABLE[name]
    for prefix, directory in PREFIXES:
        if name.startswith(prefix):
            return directory
    return None


def plan_moves() -> list[Move]:
    tracked = set(git("ls-files", "--", TESTS).split())
    moves = []
    for path in sorted((ROOT / TESTS).glob("test_*.py")):
        source = f"{TESTS}/{path.name}"
        directory = destination(path.name)
        if directory is None:
            warn(f"{source}: no table entry or name rule knows where it belongs; left in place")
        elif directory and source not in tracked:
            warn(f"{source}: not tracked by git (git mv needs it committed); left in place")
        elif directory:
            target = f"{TESTS}/{directory}/{path.name}"
            if (ROOT / target).exists():
                warn(f"{source}: {target} already exists; left in place")
            else:
                moves.append(Move(source, target))
    return moves


def package_inits(moves: list[Move]) -> list[str]:
    """The __init__.py files the tree needs that do not exist yet: tests/ and every directory moved into."""
    needed = {f"{TESTS}/__init__.py"}
    for move in moves:
        parent = Path(move.target).parent
        while parent != Path(TESTS):
            needed.add(f"{parent}/__init__.py")
            parent = parent.parent
    return sorted(path for path in needed if not (ROOT / path).exists())


def test_locations(moves: list[Move]) -> dict[str, str]:
    """basename -> repo-relative path of each test module below tests/ after the moves (unique names only)."""
    paths = [p.relative_to(ROOT).as_posix() for p in (ROOT / TESTS).rglob("test_*.py")]
    moved = {move.source: move.target for move in moves}
    paths = [moved.get(path, path) for path in paths]
    locations: dict[str, str] = {}
    duplicates = set()
    for path in paths:
        name = Path(path).name
        if name in locations:
            duplicates.add(name)
        locations[name] = path
    for name in sorted(duplicates):
        warn(f"{name} exists in more than one test directory: references to tests/{name} left alone")
    return {name: path for name, path in locations.items() if name not in duplicates}


def dotted_name(path: str) -> str:
    """tests/rag_api/test_x.py -> tests.rag_api.test_x"""
    return path.removesuffix(".py").replace("/", ".")


def shift_file_paths(text: str, depth: int, where: str) -> str:
    """`Path(__file__)...` expressions of a file moved `depth` directories deeper, reaching the same place."""

    def shifted(match: re.Match[str]) -> str:
        level = int(match["n"]) if match["n"] is not None else len(match["chain"]) // len(".parent") - 1
        level += depth
        resolve = match["resolve"] or ""
        return f"Path(__file__){resolve}" + (".parent" if level == 0 else f".parents[{level}]")

    new = FILE_PATH.sub(shifted, text)
    for number, line in enumerate(new.splitlines(), 1):
        if "__file__" in FILE_PATH.sub("", line):
            warn(f"{where}:{number}: a use of __file__ this script cannot shift: {line.strip()}")
    return new


def absolute_relative_imports(text: str) -> str:
    """`from .x import` of a file that sat in tests/: x was its sibling there, tests.x wherever it goes."""
    return RELATIVE_IMPORT.sub(lambda m: f"{m['indent']}from {TESTS}.{m['module']} import", text)


def top_level_helpers() -> list[str]:
    """Modules and packages at tests/ that tests could import by bare name while tests/ was on sys.path
    (`from dashboards import`, `from support.ml import`)."""
    modules = [p.stem for p in (ROOT / TESTS).glob("*.py") if not p.name.startswith("test_")]
    packages = [name for name in KEEP_DIRS if (ROOT / TESTS / name / "__init__.py").exists()]
    return sorted(name for name in modules + packages if name != "__init__")


def rewrite_imports(text: str, helpers: list[str], locations: dict[str, str]) -> str:
    """Bare-name imports of tests/ modules -> dotted ones: tests/ is a package now, not a sys.path entry."""
    modules = {name: f"{TESTS}.{name}" for name in helpers}
    modules |= {Path(name).stem: dotted_name(path) for name, path in locations.items()}
    for bare, dotted in modules.items():
        # A trailing comment that explains the old sys.path trick is dropped with it.
        from_line = re.compile(
            rf"^([ \t]*)from {bare}((?:\.\w+)*) import ([^#\n]*?)[ \t]*(#.*sys\.path.*)?$", re.M
        )
        text = from_line.sub(rf"\1from {dotted}\2 import \3", text)  # dotted names hold no backslash
        package, _, module = dotted.rpartition(".")
        import_line = re.compile(rf"^([ \t]*)import {bare}[ \t]*$", re.M)
        text = import_line.sub(rf"\1from {package} import {module}", text)
    return text


def rewrite_references(text: str, locations: dict[str, str]) -> str:
    """`tests/test_x.py` and `tests.test_x` -> the file's place in the tree, where it left tests/."""
    for name, path in locations.items():
        old = f"{TESTS}/{name}"
        if path == old:
            continue
        text = re.sub(rf"(?<![\w.-]){re.escape(old)}(?!\w)", path, text)
        dotted_old = f"{TESTS}.{Path(name).stem}"
        text = re.sub(rf"(?<![\w.]){re.escape(dotted_old)}(?!\w)", dotted_name(path), text)
    return text


def text_files() -> list[str]:
    """Every tracked file but this script (whose docs name old places on purpose)."""
    itself = Path(__file__).resolve().relative_to(ROOT).as_posix()
    files = []
    for path in git("ls-files").split():
        if path != itself and (ROOT / path).is_file() and not (ROOT / path).is_symlink():
            files.append(path)
    return files


def read_text(path: str) -> str | None:
    try:
        return (ROOT / path).read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary or unreadable: nothing of ours to rewrite


def new_content(path: str, text: str, moves: dict[str, Move], context: Context) -> str:
    move = moves.get(path)
    if move is not None:
        text = absolute_relative_imports(text)
        text = shift_file_paths(text, move.depth, move.target)
    if path.endswith(".py") and path.startswith(f"{TESTS}/"):
        text = rewrite_imports(text, context.helpers, context.locations)
    return rewrite_references(text, context.locations)


@dataclass
class Context:
    helpers: list[str]
    locations: dict[str, str]


def rewrite_files(moves: list[Move], dry_run: bool) -> list[str]:
    """Apply every content fix; returns the files (by their new path) that changed."""
    context = Context(top_level_helpers(), test_locations(moves))
    by_source = {move.source: move for move in moves}
    by_target = {move.target: move for move in moves}
    changed = []
    for path in text_files():
        # After the git mv, git lists the new path; before it (dry run) the old one.
        move = by_target.get(path) or by_source.get(path)
        text = read_text(path)
        if text is None:
            continue
        new = new_content(move.source if move else path, text, by_source, context)
        if new != text:
            target = move.target if move else path
            changed.append(target)
            if not dry_run:
                (ROOT / path).write_text(new, encoding="utf-8")
    return changed


def apply_moves(moves: list[Move], inits: list[str]) -> None:
    for init in inits:
        (ROOT / init).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / init).write_text("", encoding="utf-8")
    if inits:
        git("add", "--", *inits)
    for move in moves:
        git("mv", move.source, move.target)


def tidy(python_files: list[str]) -> None:
    """Import order (bare `dashboards` was third-party, `tests.dashboards` is first-party), then format."""
    if not python_files:
        return
    ruff = [sys.executable, "-m", "ruff"]
    if subprocess.run([*ruff, "--version"], capture_output=True).returncode != 0:
        warn("ruff is not importable by this Python: run `ruff check --fix . && ruff format .` yourself")
        return
    subprocess.run([*ruff, "check", "--select", "I", "--fix", "--quiet", *python_files], cwd=ROOT)
    subprocess.run([*ruff, "format", "--quiet", *python_files], cwd=ROOT)
    # A longer path can push a docstring or string past the line length, which no formatter wraps.
    long_lines = subprocess.run(
        [*ruff, "check", "--select", "E501", "--output-format", "concise", *python_files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if long_lines.returncode != 0:
        warn("lines a new path made too long; wrap them by hand:\n" + long_lines.stdout.strip())


def regenerate(changed: list[str]) -> None:
    """Rendered files must still equal the contract's output when a reference in the contract changed."""
    if not (ROOT / "monitoring" / "generate.py").exists():
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    check = subprocess.run([sys.executable, "-m", "monitoring.generate", "--check"], cwd=ROOT, env=env)
    if check.returncode != 0:
        print("re-rendering the generated files (python -m monitoring.generate)")
        subprocess.run([sys.executable, "-m", "monitoring.generate"], cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the moves and fixes; change nothing")
    args = parser.parse_args(argv)
    moves = plan_moves()
    inits = package_inits(moves)
    for move in moves:
        print(f"move   {move.source} -> {move.target}")
    for init in inits:
        print(f"create {init}")
    if not args.dry_run:
        apply_moves(moves, inits)
    changed = rewrite_files(moves, args.dry_run)
    for path in changed:
        print(f"fix    {path}")
    if not moves and not changed:
        print("nothing to move or fix: the tests already mirror the packages")
    if not args.dry_run:
        tidy([path for path in changed if path.endswith(".py")])
        regenerate(changed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
