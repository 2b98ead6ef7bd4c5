"""Grade the lab's anomaly rules on labelled series (Numenta Anomaly Benchmark layout) with a real Prometheus.

    python -m benchmarks.anomaly --data ../shared/data/anomaly --output var/anomaly-results

DIR holds `<category>/<name>.csv` files (`timestamp,value`) and optionally `windows.json` (NAB's combined
labels: `"<category>/<name>.csv": [[start, end], ...]`; NAB's own `labels/combined_windows.json` is found too,
see LABEL_FILES). For every series:

1. its points are laid on a 5-minute grid (point i at T0 + i * 5 min: the `nab` profile's windows count points
   of 5-minute data, and NAB scores points, whatever their real spacing) and written, all series in one
   OpenMetrics file told apart by a `series` label, into a throwaway TSDB (`promtool tsdb create-blocks-from
   openmetrics`);
2. the `nab` profile's recording rules (what prometheus/rules/anomaly.yml holds for the lab profile, rendered
   by monitoring/anomaly.py for a signal `nab_value`; those `anomaly:detection` needs) are recorded round by
   round: a real Prometheus serves the TSDB and evaluates every rule of the round as a range query over all
   series at once (the values the rule would record at each step); the results are backfilled into the same
   TSDB and Prometheus restarts on it for the next round, whose rules read them. The last round's
   `anomaly:detection` is the output. (`score_expr`, the same maths inlined into one expression, nests every
   stage's subqueries inside the next: far too slow once each z is calibrated against a day of its own.)
3. OUTDIR/<category>/<name>.csv gets NAB's results format `timestamp,value,anomaly_score,label`, one row per
   input row: the score is the detection stream (the score at the alert's rising edges, else 0), label 1
   inside a window.

Printed per category: window recall at the alert threshold (ALERT_SCORE), false alarms outside windows per
1,000 points (detections >= ALERT_SCORE), median detection delay (points from a window's start to its first
detection) and seconds per series (wall time of the whole run / series). `python -m benchmarks.nab_score`
then computes NAB's standard-profile score of the files written here.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from lab_common.net import free_port
from monitoring.anomaly import ALERT_SCORE, ANOMALY_TYPES, PROFILES, Signal, seconds, signal_rules

PROFILE = "nab"
STEP = seconds(PROFILES[PROFILE].resolution)  # seconds between two points on the grid
T0 = 1_700_000_000 - 1_700_000_000 % 86_400  # a midnight: subquery steps align with the grid
METRIC = "nab_value"
# The benchmark's input as one more signal of the contract: its rules are the nab profile's recording rules.
SIGNAL = Signal(name="nab", expr=METRIC, guard="", abs_floor=1e-9, types=ANOMALY_TYPES)
DETECTION = "anomaly:detection"
# promtool's (hidden) flag: blocks of up to ~1,600 days instead of 2 hours; it re-reads its input once per
# block, so 2-hour blocks cost hundreds of passes over every round's file.
BLOCK_SPAN = "--max-block-duration=40000h"
MAX_STEPS = 10_000  # Prometheus refuses range queries of more than 11,000 points per series
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Series:
    key: str  # "<category>/<name>.csv", as in windows.json
    frame: pd.DataFrame  # timestamp (as written), value
    windows: list[tuple[int, int]]  # inclusive point indexes
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]


# Where a NAB-layout directory keeps its labels: ours, or NAB's file (DIR = NAB's `data/` or its root).
LABEL_FILES = ("windows.json", "combined_windows.json", "labels/combined_windows.json")


def labels_file(data: Path) -> Path | None:
    """The windows file of `data`, or None (no labels: every row gets label 0, no window is scored)."""
    for candidate in [data / name for name in LABEL_FILES] + [data.parent / LABEL_FILES[-1]]:
        if candidate.is_file():
            return candidate
    return None


def load_labels(data: Path) -> dict[str, list[list[str]]]:
    path = labels_file(data)
    return json.loads(path.read_text()) if path else {}


def read_series(path: Path) -> pd.DataFrame:
    """timestamp (as written) and value (float; NaN where missing or not a number) of one CSV. A file
    without a `value` column takes its last column; one without `timestamp`, its first."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    if frame.empty or not columns:
        return pd.DataFrame({"timestamp": pd.Series(dtype=str), "value": pd.Series(dtype=float)})
    stamp = "timestamp" if "timestamp" in columns else columns[0]
    value = "value" if "value" in columns else columns[-1]
    values = pd.to_numeric(frame[value].str.strip(), errors="coerce").astype(float)
    return pd.DataFrame({"timestamp": frame[stamp], "value": values})


def window_rows(stamps: pd.Series, spans: list[list[str]]) -> list[tuple[int, int]]:
    """Inclusive row indexes of each [start, end] span (rows whose timestamp does not parse are outside)."""
    try:
        parsed = pd.to_datetime(stamps)
    except (ValueError, TypeError):  # one format is inferred from the first row; mixed ones parse row by row
        parsed = pd.to_datetime(stamps, errors="coerce", format="mixed")
    out = []
    for start, end in spans:
        inside = np.flatnonzero((parsed >= pd.Timestamp(start)) & (parsed <= pd.Timestamp(end)))
        if inside.size:
            out.append((int(inside[0]), int(inside[-1])))
    return out


def load(data: Path) -> list[Series]:
    labels = load_labels(data)
    out = []
    for path in sorted(data.glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        frame = read_series(path)
        out.append(Series(key, frame, window_rows(frame["timestamp"], labels.get(key, []))))
    return out


def write_openmetrics(series: list[Series], path: Path) -> None:
    with path.open("w") as out:
        out.write(f"# TYPE {METRIC} gauge\n")
        for s in series:
            label = escape(s.key)
            values = s.frame["value"].to_numpy(float)
            stamps = range(T0, T0 + STEP * len(values), STEP)
            # A missing or infinite value is no sample: the point is absent, as a failed scrape leaves it.
            out.writelines(
                f'{METRIC}{{series="{label}"}} {v!r} {t}\n'
                for v, t in zip(values.tolist(), stamps, strict=True)
                if math.isfinite(v)
            )
        out.write("# EOF\n")


@contextmanager
def prometheus(tsdb: Path, workdir: Path) -> Iterator[str]:
    """A Prometheus with no scrape target over `tsdb`; yields its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1h\n")
    port = free_port()
    args = [
        shutil.which("prometheus") or "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        "--storage.tsdb.retention.time=100y",  # retention counts from the newest block, not from now
        f"--web.listen-address=127.0.0.1:{port}",
        "--query.timeout=30m",
        "--query.max-samples=2000000000",
        # Samples lie on the 5-minute grid: each is seen at its own step only, as a recorded series that goes
        # absent is (rules write staleness markers; backfilled blocks cannot).
        "--query.lookback-delta=4m",
        "--log.level=warn",
    ]
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@retry(stop=stop_after_delay(120), wait=wait_fixed(0.5), retry=retry_if_exception_type(httpx.HTTPError))
def wait_ready(url: str, process: subprocess.Popen) -> None:
    if process.poll() is not None:
        raise SystemExit(f"prometheus exited with {process.returncode} (see its log in the work directory)")
    httpx.get(f"{url}/-/ready", timeout=2).raise_for_status()


def query_range(client: httpx.Client, url: str, expr: str, points: int) -> Iterator[dict]:
    """The range query's result series over the grid's first `points` steps, MAX_STEPS steps at a time."""
    for first in range(0, points, MAX_STEPS):
        last = min(first + MAX_STEPS, points) - 1
        params = {"query": expr, "start": T0 + first * STEP, "end": T0 + last * STEP, "step": STEP}
        response = client.post(f"{url}/api/v1/query_range", data=params)
        body = response.json()
        if body.get("status") != "success":
            raise SystemExit(f"query failed: {body.get('error', response.text[:500])}")
        yield from body["data"]["result"]


def evaluate(url: str, series: list[Series], expr: str) -> None:
    """Range queries of `expr` over the whole grid; fills each series' scores (absent = 0)."""
    by_key = {s.key: s for s in series}
    for s in series:
        s.scores = np.zeros(len(s.frame))
    longest = max(len(s.frame) for s in series)
    with httpx.Client(timeout=None) as client:
        for result in query_range(client, url, expr, longest):
            target = by_key[result["metric"]["series"]]
            for stamp, value in result["values"]:
                index = (int(stamp) - T0) // STEP
                if index < len(target.scores):
                    target.scores[index] = float(value)
    for s in series:
        # NaN (0/0 on a flat start) is no evidence; the rules keep the score in [0, 1).
        s.scores = np.clip(np.nan_to_num(s.scores, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def rule_levels(rules: list[dict], goal: str) -> list[list[dict]]:
    """The rules `goal` needs, in evaluation rounds: a rule's round follows every round that records a series
    it reads (rules come in dependency order, so one pass suffices)."""
    reads: dict[str, set[str]] = defaultdict(set)  # a record's rules (one per anomaly type) read these
    for rule in rules:
        reads[rule["record"]] |= {o["record"] for o in rules if f"{o['record']}{{" in rule["expr"]}
    needed, todo = set(), [goal]
    while todo:
        record = todo.pop()
        if record not in needed:
            needed.add(record)
            todo.extend(reads[record])
    round_of: dict[str, int] = {}
    for rule in rules:
        after = [round_of[record] for record in reads[rule["record"]] if record in round_of]
        round_of[rule["record"]] = max(round_of.get(rule["record"], 0), 1 + max(after, default=-1))
    rounds: list[list[dict]] = [[] for _ in range(max(round_of.values()) + 1)]
    for rule in rules:
        if rule["record"] in needed:
            rounds[round_of[rule["record"]]].append(rule)
    return [rules for rules in rounds if rules]


def record_round(url: str, rules: list[dict], points: int, path: Path) -> None:
    """What Prometheus would record for `rules` at every grid step, as OpenMetrics (one family per record),
    streamed to `path`."""
    with httpx.Client(timeout=None) as client, path.open("w") as out:
        family = ""
        for rule in sorted(rules, key=lambda r: r["record"]):  # stable: a family's rules side by side
            if rule["record"] != family:
                family = rule["record"]
                out.write(f"# TYPE {family} gauge\n")
            for result in query_range(client, url, rule["expr"], points):
                labels = {k: v for k, v in result["metric"].items() if k != "__name__"} | rule["labels"]
                text = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
                out.writelines(f"{family}{{{text}}} {value} {stamp}\n" for stamp, value in result["values"])
        out.write("# EOF\n")


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def write_results(series: list[Series], output: Path) -> None:
    for s in series:
        label = np.zeros(len(s.frame), dtype=int)
        for start, end in s.windows:
            label[start : end + 1] = 1
        frame = pd.DataFrame(
            {
                "timestamp": s.frame["timestamp"],
                "value": s.frame["value"],
                "anomaly_score": s.scores,
                "label": label,
            }
        )
        target = output / s.key
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(target, index=False)


def category_figures(series: list[Series], threshold: float) -> dict[str, float]:
    windows = detected = points = false_alarms = 0
    delays: list[int] = []
    for s in series:
        hits = s.scores >= threshold
        inside = np.zeros(len(hits), dtype=bool)
        for start, end in s.windows:
            inside[start : end + 1] = True
            windows += 1
            found = np.flatnonzero(hits[start : end + 1])
            if found.size:
                detected += 1
                delays.append(int(found[0]))
        points += len(hits)
        false_alarms += int((hits & ~inside).sum())
    return {
        "series": len(series),
        "windows": windows,
        "recall": detected / windows if windows else float("nan"),
        "false_per_1000": 1000 * false_alarms / points if points else float("nan"),
        "median_delay": statistics.median(delays) if delays else float("nan"),
    }


def report(series: list[Series], elapsed: float, threshold: float) -> None:
    groups: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        groups[s.category].append(s)
    print(
        f"threshold {threshold} (the alert's), profile {PROFILE!r}, {elapsed / len(series):.2f} s per series"
    )
    print(f"{'category':26} {'series':>6} {'windows':>7} {'recall':>7} {'FA/1000':>8} {'delay (pts)':>11}")
    for name, members in sorted(groups.items()):
        f = category_figures(members, threshold)
        print(
            f"{name:26} {f['series']:6d} {f['windows']:7d} {f['recall']:7.2f} {f['false_per_1000']:8.2f}"
            f" {f['median_delay']:11.1f}"
        )


def run(data: Path, output: Path, workdir: Path) -> list[Series]:
    series = load(data)
    if not series:
        raise SystemExit(f"no <category>/<name>.csv under {data}")
    if not any(np.isfinite(s.frame["value"].to_numpy(float)).any() for s in series):
        for s in series:  # nothing to backfill: no Prometheus to ask, every score 0
            s.scores = np.zeros(len(s.frame))
        write_results(series, output)
        return series
    openmetrics = workdir / "series.om"
    write_openmetrics(series, openmetrics)
    tsdb = workdir / "tsdb"
    backfill(openmetrics, tsdb)
    points = max(len(s.frame) for s in series)
    *rounds, last = rule_levels(signal_rules(SIGNAL, PROFILES[PROFILE]), DETECTION)
    # Each round's rules evaluated over the whole grid and written back as blocks, then Prometheus restarted
    # on them: what the rules record live, without the cost of nesting every stage inside one expression.
    for number, rules in enumerate(rounds):
        started = time.monotonic()
        with prometheus(tsdb, workdir) as url:
            record_round(url, rules, points, openmetrics)
        backfill(openmetrics, tsdb)
        records = ", ".join(sorted({r["record"] for r in rules}))
        print(f"round {number + 1}/{len(rounds)} ({time.monotonic() - started:.0f} s): {records}", flush=True)
    (detection,) = [rule for rule in last if rule["record"] == DETECTION]
    with prometheus(tsdb, workdir) as url:
        evaluate(url, series, detection["expr"])
    write_results(series, output)
    return series


def backfill(openmetrics: Path, tsdb: Path) -> None:
    promtool = shutil.which("promtool") or "promtool"
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            BLOCK_SPAN,
            str(openmetrics),
            str(tsdb),
        ],
        check=True,
    )
    openmetrics.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NAB-layout directory")
    parser.add_argument("--output", type=Path, required=True, help="results directory (NAB format)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the TSDB and Prometheus log here (default: temporary)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        series = run(args.data, args.output, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="anomaly-bench-") as tmp:
            series = run(args.data, args.output, Path(tmp))
    report(series, time.monotonic() - started, ALERT_SCORE)
    print(f"wrote {len(series)} result files under {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
