"""The eval gate: the project's eval set through /chat with synchronous scoring, checked against floors.

Each row of the set (simulations/evalset/nimbus.jsonl: in-domain, out-of-domain and adversarial questions)
says what a good answer must show: titles it must cite, words it must (not) contain; every answer must also be
grounded (score at least `--min-groundedness`). The run's metrics — the share of rows passed and the mean
scores — are compared with floors; it writes a JUnit XML and a JSON report, pushes the figures to a Prometheus
Pushgateway when `--pushgateway-url` is given, and exits 1 when a metric is below its floor.

    python -m simulations eval --rag-url http://127.0.0.1:8001 --junit var/eval.xml --json var/eval.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_SET = Path(__file__).resolve().parent / "evalset" / "nimbus.jsonl"
# metric -> floor: the gate fails below any of them.
FLOORS = {"pass_rate": 0.8, "groundedness_mean": 0.6, "answer_relevance_mean": 0.2}
ROW_MIN_GROUNDEDNESS = 0.5
# What a run pushes to the Pushgateway (docs/metrics.md, "eval gate").
PUSHED_METRICS = (
    "llm_eval_score",
    "llm_eval_baseline_score",
    "llm_eval_passed",
    "llm_eval_cases",
    "llm_eval_last_run_timestamp_seconds",
)
Post = Callable[[str, dict[str, Any]], Any]  # (path, json body) -> response with .status_code and .json()


@dataclass
class CaseResult:
    row: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None
    seconds: float = 0.0


def load_set(path: Path = EVAL_SET) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        missing = {"id", "kind", "query", "good_answer"} - set(row)
        if missing:
            raise ValueError(f"{path}: row {row.get('id')!r} lacks {sorted(missing)}")
    return rows


def check(row: dict[str, Any], body: dict[str, Any], min_groundedness: float) -> list[str]:
    """What the answer fails of what the row says a good answer must show."""
    answer = body.get("answer", "")
    lower = answer.lower()
    failures = []
    if row.get("must_cite") and not any(f"[{title}]" in answer for title in row["must_cite"]):
        failures.append(f"cites none of {row['must_cite']}")
    failures += [f"lacks {word!r}" for word in row.get("must_include", []) if word.lower() not in lower]
    failures += [f"contains {word!r}" for word in row.get("must_not_include", []) if word.lower() in lower]
    scores = body.get("scores")
    if scores is None:
        failures.append(f"not scored ({body.get('evaluation_error') or body.get('evaluation')})")
    elif scores["groundedness"] < min_groundedness:
        failures.append(f"groundedness {scores['groundedness']:.2f} < {min_groundedness}")
    return failures


def run(
    post: Post, rows: list[dict[str, Any]], min_groundedness: float = ROW_MIN_GROUNDEDNESS
) -> list[CaseResult]:
    results = []
    for row in rows:
        start = time.perf_counter()
        response = post("/chat", {"query": row["query"], "evaluate": "sync"})
        result = CaseResult(row, seconds=time.perf_counter() - start)
        if response.status_code != 200:
            result.failures.append(f"/chat answered {response.status_code}")
        else:
            body = response.json()
            result.scores = body.get("scores")
            result.failures = check(row, body, min_groundedness)
        results.append(result)
    return results


def summarise(results: list[CaseResult]) -> dict[str, float]:
    scored = [r.scores for r in results if r.scores is not None]

    def mean(key: str) -> float:
        return statistics.fmean(s[key] for s in scored) if scored else 0.0

    return {
        "pass_rate": sum(not r.failures for r in results) / len(results) if results else 0.0,
        "groundedness_mean": mean("groundedness"),
        "context_relevance_mean": mean("context_relevance"),
        "answer_relevance_mean": mean("answer_relevance"),
    }


def below_floors(metrics: dict[str, float], floors: dict[str, float] = FLOORS) -> dict[str, float]:
    return {name: floor for name, floor in floors.items() if metrics[name] < floor}


def junit(results: list[CaseResult], metrics: dict[str, float], failed_floors: dict[str, float]) -> str:
    suite = ET.Element("testsuite", name="llm-eval", tests=str(len(results) + len(FLOORS)))
    failures = 0
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"eval.{r.row['kind']}", name=r.row["id"])
        case.set("time", f"{r.seconds:.3f}")
        if r.failures:
            failures += 1
            ET.SubElement(case, "failure", message="; ".join(r.failures)).text = r.row["good_answer"]
    for name, floor in FLOORS.items():
        case = ET.SubElement(suite, "testcase", classname="eval.floors", name=name)
        if name in failed_floors:
            failures += 1
            ET.SubElement(case, "failure", message=f"{metrics[name]:.3f} below the floor {floor}")
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def push(
    url: str,
    metrics: dict[str, float],
    passed: bool,
    cases: int,
    eval_set: str,
    baseline: dict[str, float] | None = None,
) -> None:
    """The run's figures as llm_eval_* gauges, one group per eval set (a push replaces the last one). The
    `service` label names what was evaluated: alerts route on it (Prometheus scrapes with honor_labels)."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    score = Gauge("llm_eval_score", "Eval metric of the last run.", ["metric"], registry=registry)
    for name, value in metrics.items():
        score.labels(name).set(value)
    if baseline:
        base = Gauge(
            "llm_eval_baseline_score", "The metric of the baseline run.", ["metric"], registry=registry
        )
        for name, value in baseline.items():
            base.labels(name).set(value)
    Gauge("llm_eval_passed", "1 when the last run met every floor.", registry=registry).set(int(passed))
    Gauge("llm_eval_cases", "Rows in the last run.", registry=registry).set(cases)
    Gauge(
        "llm_eval_last_run_timestamp_seconds", "When the last run ended.", registry=registry
    ).set_to_current_time()
    grouping = {"eval_set": eval_set, "service": "rag_api"}
    push_to_gateway(url, job="llm_eval", grouping_key=grouping, registry=registry, timeout=10)


def _read_baseline(path: Path | None) -> dict[str, float] | None:
    if path is None or not path.exists():
        return None
    values = json.loads(path.read_text(encoding="utf-8"))
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations eval", description=__doc__.split("\n")[0])
    parser.add_argument("--rag-url", default="http://127.0.0.1:8001")
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--junit", type=Path, default=Path("var/eval/junit.xml"))
    parser.add_argument("--json", type=Path, default=Path("var/eval/report.json"))
    parser.add_argument(
        "--pushgateway-url", default=None, help="e.g. http://127.0.0.1:9091 (default: no push)"
    )
    parser.add_argument("--min-groundedness", type=float, default=ROW_MIN_GROUNDEDNESS)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=Path("var/eval/baseline.json"),
        help="metrics of the last passing run (pushed beside this run's; rewritten when this run passes)",
    )
    args = parser.parse_args(argv)
    import httpx

    with httpx.Client(base_url=args.rag_url, timeout=120) as client:
        return gate(lambda path, body: client.post(path, json=body), args)


def gate(post: Post, args: argparse.Namespace) -> int:
    rows = load_set(args.eval_set)
    results = run(post, rows, args.min_groundedness)
    metrics = summarise(results)
    failed = below_floors(metrics)
    report = {
        "eval_set": args.eval_set.stem,
        "metrics": metrics,
        "floors": FLOORS,
        "below_floors": failed,
        "passed": not failed,
        "cases": [
            {"id": r.row["id"], "kind": r.row["kind"], "failures": r.failures, "scores": r.scores}
            for r in results
        ],
    }
    for path, text in (
        (args.json, json.dumps(report, indent=2)),
        (args.junit, junit(results, metrics, failed)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    baseline_path = getattr(args, "baseline", None)
    baseline = _read_baseline(baseline_path)
    if args.pushgateway_url:
        push(args.pushgateway_url, metrics, not failed, len(results), args.eval_set.stem, baseline)
    if baseline_path is not None and not failed:
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    for r in results:
        verdict = "FAIL" if r.failures else "PASS"
        print(f"{verdict} {r.row['kind']:13} {r.row['id']}: {'; '.join(r.failures)}")
    print(" ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    if failed:
        print(f"eval gate FAILED: below the floors {failed}", file=sys.stderr)
        return 1
    print("eval gate passed")
    return 0
