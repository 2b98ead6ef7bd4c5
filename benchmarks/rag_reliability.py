"""Issue 11's rag_api findings (9, 11, 12, 16, 17's stats path and evaluation CLI) reproduced against rag_api.

    python -m benchmarks.rag_reliability --rag URL [--knowledge-dir DIR] [--evaluation-timeout 30] CHECK...

CHECK: evaluator-hang (#9: SIGSTOP of the evaluator child with 8 `evaluate=sync` calls in flight),
reload-kill (#11: kill -9 during /knowledge/reload, then the restart's chunks against the corpus; needs a
supervisor such as `labctl up` that restarts rag_api), corpus (#12: missing or empty knowledge directory, an
article with invalid UTF-8 or bad front matter), cache (#16: the scorer's embedding cache, and the batch
scorer over --data), stats-path (#17), eval-cli (#17: null fields). Each prints PASS/FAIL and its figures;
`all` runs every check; exit 1 if any failed.

reload-kill and corpus edit the knowledge directory the service reads (and restore it): start the lab with
RAG_KNOWLEDGE_DIR pointing at a copy (`cp -r rag_api/knowledge /tmp/k`) and pass it as --knowledge-dir; the
repository's own directory is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.probes import (
    Verdicts,
    children,
    cmdline,
    metric,
    pid_on_port,
    port_of,
    run_commands,
    wait_until,
)
from benchmarks.stats import shared_data
from rag_api.settings import DEFAULT_KNOWLEDGE_DIR

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How do I reset my password?"
PROBE = "\n\nReliability probe paragraph: this sentence was added by benchmarks.rag_reliability.\n"


def _chat(base: str, evaluate: str, timeout: float = 120) -> tuple[int, float, dict[str, Any]]:
    start = time.monotonic()
    answer = httpx.post(f"{base}/chat", json={"query": QUESTION, "evaluate": evaluate}, timeout=timeout)
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    return answer.status_code, time.monotonic() - start, body


def _ready(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/ready", timeout=10).json()


def _evaluator_child(rag_pid: int) -> int:
    found = [
        p for p in children(rag_pid) if "spawn_main" in cmdline(p) and "resource_tracker" not in cmdline(p)
    ]
    if not found:
        raise SystemExit("rag_api has no evaluator child (RAG_EVALUATION_IN_PROCESS=false?)")
    return found[0]


def evaluator_hang(args: argparse.Namespace, v: Verdicts) -> None:
    base, limit = args.rag, args.evaluation_timeout
    code, _, body = _chat(base, "sync")  # the child exists and has scored once
    child = _evaluator_child(pid_on_port(port_of(base)))
    timeouts = metric(base, "llm_evaluation_timeouts_total")
    sync: list[tuple[int, float, str]] = []

    def call_sync() -> None:
        code, seconds, body = _chat(base, "sync", timeout=limit * 4)
        sync.append((code, seconds, body.get("evaluation", "?")))

    os.kill(child, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=call_sync) for _ in range(8)]
        for t in threads:
            t.start()
        off, seen = _off_chats(base, seconds=limit + 5)
        for t in threads:
            t.join()
    finally:
        if Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGCONT)
    slowest_off = max(s for _, s in off)
    v.check(
        "#9 evaluate=off answers meanwhile",
        all(c == 200 for c, _ in off),
        f"{len(off)} calls, codes {sorted({c for c, _ in off})}, slowest {slowest_off:.2f} s",
    )
    slowest = max(s for _, s, _ in sync)
    v.check(
        "#9 sync calls end after the timeout",
        all(c == 200 and e == "failed" for c, _, e in sync) and slowest < limit * 2,
        f"8 x {sorted({(c, e) for c, _, e in sync})}, slowest {slowest:.1f} s (timeout {limit:g} s)",
    )
    counted = metric(base, "llm_evaluation_timeouts_total") - timeouts
    v.check(
        "#9 stuck is visible",
        "stuck" in seen and counted > 0,
        f"/ready evaluation seen: {sorted(seen)}; llm_evaluation_timeouts_total +{counted:.0f}",
    )
    wait_until("a new evaluator child", lambda: _child_replaced(base, child), 180, every=2)
    code, seconds, body = _chat(base, "sync")
    state = _ready(base).get("evaluation")
    v.check(
        "#9 recovers",
        code == 200 and body.get("evaluation") == "ok" and state == "ok",
        f"next sync call {code} evaluation={body.get('evaluation')} in {seconds:.1f} s; /ready {state}",
    )


def _child_replaced(base: str, old: int) -> bool:
    try:
        return _evaluator_child(pid_on_port(port_of(base))) != old
    except SystemExit:
        return False


def _off_chats(base: str, seconds: float) -> tuple[list[tuple[int, float]], set[str]]:
    """evaluate=off calls one after the other for `seconds`; also what /ready says about evaluation."""
    calls: list[tuple[int, float]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            code, took, _ = _chat(base, "off", timeout=20)
        except httpx.TimeoutException:
            code, took = 0, 20.0
        calls.append((code, took))
        seen.add(str(_ready(base).get("evaluation")))
        time.sleep(0.5)
    return calls, seen


# ---- the knowledge directory -------------------------------------------------------------------------------


def _knowledge(args: argparse.Namespace) -> Path:
    directory = args.knowledge_dir
    if directory is None or directory.resolve() == DEFAULT_KNOWLEDGE_DIR.resolve():
        raise SystemExit(
            "--knowledge-dir: a copy the lab reads (RAG_KNOWLEDGE_DIR), not the repository's own"
        )
    return directory


def _expected(directory: Path) -> tuple[int, int]:
    """(articles, distinct chunks) the service should hold for `directory` (its default chunk sizes)."""
    from rag_api.settings import RAGSettings
    from rag_api.store import load_knowledge

    settings = RAGSettings()
    articles, records = load_knowledge(directory, settings.chunk_size, settings.chunk_overlap)
    return len(articles), len({r.id for r in records})


def _stats(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/knowledge/stats", timeout=30).json()


def _reload(base: str, args: argparse.Namespace, timeout: float = 300) -> httpx.Response:
    headers = {"X-Admin-Token": args.admin_token} if args.admin_token else {}
    return httpx.post(f"{base}/knowledge/reload", headers=headers, timeout=timeout)


def _edit_articles(directory: Path, add: bool) -> None:
    for path in sorted(directory.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        text = path.read_text(encoding="utf-8")
        path.write_text(text + PROBE if add else text.replace(PROBE, ""), encoding="utf-8")


def reload_kill(args: argparse.Namespace, v: Verdicts) -> None:
    directory = _knowledge(args)
    for delay in args.kill_after:
        _edit_articles(directory, add=not _has_probe(directory))
        wanted = _expected(directory)
        answered: list[int] = []
        thread = threading.Thread(target=lambda done=answered: done.append(_try_reload(args)))
        thread.start()
        time.sleep(delay)
        os.kill(pid_on_port(port_of(args.rag)), signal.SIGKILL)
        thread.join()
        took = wait_until(
            "rag_api back", lambda: httpx.get(f"{args.rag}/ready", timeout=5).status_code == 200, 600
        )
        stats = _stats(args.rag)
        code, _, _ = _chat(args.rag, "off")
        during = "reload cut short" if answered == [0] else f"reload answered {answered} before the kill"
        figure = (
            f"kill -9 {delay:g} s into the reload ({during}); ready {took:.0f} s later with "
            f"{stats['articles']} articles / {stats['chunks']} chunks, corpus {wanted[0]} / {wanted[1]}; "
            f"/chat {code}"
        )
        v.check(
            f"#11 kill after {delay:g} s",
            (stats["articles"], stats["chunks"]) == wanted and code == 200,
            figure,
        )
    _edit_articles(directory, add=False)
    restored = _reload(args.rag, args)
    v.check(
        "#11 corpus restored",
        restored.status_code == 200 and _stats(args.rag)["chunks"] == _expected(directory)[1],
        f"reload {restored.status_code} {restored.text[:120]}",
    )


def _has_probe(directory: Path) -> bool:
    return any(PROBE in p.read_text(encoding="utf-8") for p in directory.glob("*.md"))


def _try_reload(args: argparse.Namespace) -> int:
    try:
        return _reload(args.rag, args).status_code
    except httpx.TransportError:
        return 0  # the connection died with the process


def corpus(args: argparse.Namespace, v: Verdicts) -> None:
    directory = _knowledge(args)
    kept = _stats(args.rag)["chunks"]
    away = directory.with_name(directory.name + ".away")
    directory.rename(away)
    try:
        _refusal(args, v, "missing directory", 409, None, kept)
        directory.mkdir()
        _refusal(args, v, "empty directory", 409, None, kept)
        directory.rmdir()
    finally:
        if directory.exists():
            shutil.rmtree(directory)
        away.rename(directory)
    bad = {
        "zz-bad-bytes.md": b"# Title\n\nA caf\xe9 in Latin-1.\n",
        "zz-bad-front-matter.md": b"---\ntitle: [unclosed\n---\n\n# Title\n\nText.\n",
    }
    for name, content in bad.items():
        path = directory / name
        path.write_bytes(content)
        try:
            _refusal(args, v, name, 422, name, kept)
        finally:
            path.unlink()
    code, _, _ = _chat(args.rag, "off")
    v.check("#12 still serving", code == 200, f"/chat {code}")


def _refusal(
    args: argparse.Namespace, v: Verdicts, case: str, status: int, field: str | None, kept: int
) -> None:
    answer = _reload(args.rag, args)
    chunks = _stats(args.rag)["chunks"]
    named = field is None or field in answer.text
    ok = answer.status_code == status and named and chunks == kept
    v.check(f"#12 {case}", ok, f"{answer.status_code} {answer.text[:110]}; chunks {kept} -> {chunks}")


# ---- no lab needed ---------------------------------------------------------------------------------------


def cache(args: argparse.Namespace, v: Verdicts) -> None:
    from rag_api.evaluation import evaluator_from_env, score_rows
    from rag_api.text import EmbeddingCache

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[float(len(t))] for t in texts])

    small = EmbeddingCache(embed, maxsize=2)
    small.embed(["a", "bb"])
    try:
        rows = len(small.embed(["a", "ccc", "dddd"]))  # "a" is found, then evicted by the same call
        v.check(
            "#16 hit evicted by its own call", rows == 3, f"{rows} rows for 3 texts, cache size {len(small)}"
        )
    except KeyError as exc:
        v.check("#16 hit evicted by its own call", False, f"KeyError {exc}")
    data = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = data[: args.limit] if args.limit else data
    start, reported = time.perf_counter(), []
    try:
        reported = [
            f"{r['id']}: {r['error']}" for r in score_rows(data, evaluator_from_env()) if "error" in r
        ]
        crashed = ""
    except Exception as exc:  # the old cache's KeyError escaped score_rows and ended the run
        crashed = f"; crashed: {type(exc).__name__} {exc}"
    seconds = time.perf_counter() - start
    # A row the scorer cannot score (an empty question) is reported in its output line: that is no failure.
    v.check(
        "#16 batch scorer",
        not crashed,
        f"{len(data)} rows of {args.data.name} in {seconds:.0f} s, "
        f"{len(reported)} reported {reported[:3]}{crashed}",
    )


def stats_path(args: argparse.Namespace, v: Verdicts) -> None:
    shown = _stats(args.rag).get("knowledge_dir", "")
    ok = not os.path.isabs(shown) and os.path.expanduser("~") not in shown and str(ROOT) not in shown
    v.check("#17 /knowledge/stats path", ok, f"knowledge_dir = {shown!r}")


def eval_cli(args: argparse.Namespace, v: Verdicts) -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": "ok",
            "context": "Passwords are reset from the sign-in page.",
            "question": "How?",
            "answer": "From the sign-in page.",
        },
        {"id": "null-answer", "context": "Some text.", "question": "Q?", "answer": None},
        {"id": "null-context", "context": None, "question": "Q?", "answer": "A."},
        {"id": "true-question", "context": "Some text.", "question": True, "answer": "A."},
        {"id": "null-in-list", "context": ["Some text.", None], "question": "Q?", "answer": "A."},
    ]
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "rows.jsonl", Path(tmp) / "scores.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
        run = subprocess.run(
            [sys.executable, "-m", "rag_api.evaluation", "--input", str(source), "--output", str(output)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    reported = [r["id"] for r in lines if r.get("error") and r.get("groundedness") is None]
    scored = [r["id"] for r in lines if r.get("groundedness") is not None]
    ok = scored == ["ok"] and reported == [r["id"] for r in rows[1:]] and run.returncode == 1
    v.check("#17 evaluation CLI nulls", ok, f"exit {run.returncode}; scored {scored}, reported {reported}")


CHECKS = {
    "evaluator-hang": evaluator_hang,
    "reload-kill": reload_kill,
    "corpus": corpus,
    "cache": cache,
    "stats-path": stats_path,
    "eval-cli": eval_cli,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rag", default="", help="rag_api's URL (every check but cache and eval-cli)")
    parser.add_argument("--knowledge-dir", type=Path, help="the RAG_KNOWLEDGE_DIR the service reads (a copy)")
    parser.add_argument("--admin-token", default=os.environ.get("ADMIN_TOKEN"), help="for /knowledge/reload")
    parser.add_argument(
        "--evaluation-timeout", type=float, default=30.0, help="its RAG_EVALUATION_TIMEOUT_SECONDS"
    )
    parser.add_argument(
        "--kill-after", type=float, nargs="+", default=[1.0, 4.0], help="seconds into the reload"
    )
    parser.add_argument(
        "--data", type=Path, default=shared_data("groundedness_dev.jsonl"), help="cache: rows"
    )
    parser.add_argument("--limit", type=int, default=0, help="cache: score the first N rows only (0: all)")
    run_commands(parser, CHECKS)


if __name__ == "__main__":
    main()
