"""Capacity: CPU per request and series per replica, on the services as the production overlay runs them.

    python -m benchmarks.capacity [--ml-rps 20000] [--chat-rps 200] [--requests 2000]

Starts a Chroma server, `python -m rag_api` and `python -m ml_api` with 2 workers each (prometheus-client's
multiprocess mode), lab profile off, on free ports — the production overlay's pods (deploy/kubernetes/).
After a 20 s mixed warm-up (benchmarks.soak's plan) it prints the samples on each /metrics (the series
Prometheus stores per replica), then sends --requests /predict calls (300/s) and a fifth as many /chat calls
(15/s, slow enough for the scorer to score every answer), and prints the CPU seconds each cost the service's
process tree (workers and rag_api's evaluator children; Chroma apart) and the pods a stated load needs at the
HPA's 70 % of the overlay's 1-CPU request.

CPU time per request rather than throughput, because the load generator shares the machine; it still grows
with the load other jobs put on the cores (docs/benchmarks.md#capacity states the load it was measured at).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.soak import ROOT, make_requests, run_load, series_count
from lab_common.net import free_port
from labctl.wait import ProcessExited, WaitTimeout, wait_http
from ml_api.data import generate_tickets

CHROMA = Path(sys.executable).with_name("chroma")
TICKS = os.sysconf("SC_CLK_TCK")
HPA_TARGET = 0.7  # deploy/kubernetes/overlays/production/autoscaling.yaml
POD_CPU_REQUEST = 1.0  # deploy/kubernetes/base/*-api.yaml


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (uvicorn workers, evaluator children), live or
    exited."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        # utime, stime, and cutime, cstime: the CPU of its children that exited (replaced evaluator children)
        times[int(entry.name)] = sum(int(field) for field in fields[11:15]) / TICKS
    tree, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(p, 0.0) for p in tree)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start(module: str, env: dict[str, str], port: int, logs: Path) -> tuple[subprocess.Popen, str]:
    """`python -m module`, its output in logs/<module>.log (read it when a service dies under the load)."""
    with (logs / f"{module}.log").open("wb") as log:
        cmd = [sys.executable, "-m", module]
        process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready", timeout=600, process=process, every=0.5, what=module)
    except (WaitTimeout, ProcessExited) as exc:
        raise SystemExit(f"{exc} (log: {logs / module}.log)") from None
    return process, base


def cpu_per_request(process: subprocess.Popen, plan: list[tuple[str, str, dict]], rps: float) -> float:
    progress(f"measuring {plan[0][0]} ({len(plan)} requests)")
    before = tree_cpu_seconds(process.pid)
    statuses, _ = asyncio.run(run_load(plan, rps))
    spent = tree_cpu_seconds(process.pid) - before
    ok = statuses[200]
    if process.poll() is not None or ok < 0.95 * len(plan):
        raise SystemExit(f"the service exited ({process.returncode}) or failed requests: {statuses}")
    if ok < len(plan):  # on a loaded machine uvicorn replaces a worker that misses its health pings
        progress(f"  not 200 (left out of the figure): {dict(statuses - Counter({200: ok}))}")
    return spent / ok


def start_chroma(tmp: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [str(CHROMA), "run", "--path", f"{tmp}/chroma", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=120, process=process, what="chroma")
    return process, port


def pods(load: float, cpu_each: float) -> int:
    return max(1, math.ceil(load * cpu_each / (HPA_TARGET * POD_CPU_REQUEST)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ml-rps", type=float, default=20_000, help="stated /predict load to size for")
    parser.add_argument("--chat-rps", type=float, default=200, help="stated /chat load to size for")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measured endpoint")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="capacity-")
    chroma, chroma_port = start_chroma(tmp)
    common = {"LAB_PROFILE": "false", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "LOG_LEVEL": "WARNING"}
    rag_port, ml_port = free_port(), free_port()
    rag_env = {**common, "RAG_PORT": str(rag_port), "RAG_WORKERS": "2", "RAG_CHROMA_HOST": "127.0.0.1",
               "RAG_CHROMA_PORT": str(chroma_port), "RAG_RECORDS_PATH": f"{tmp}/records/answers.sqlite",
               "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/multiproc/rag_api"}  # fmt: skip
    processes = [chroma]
    try:
        rag, rag_url = start("rag_api", rag_env, rag_port, Path(tmp))
        processes.append(rag)
        ml_env = {**common, "ML_PORT": str(ml_port), "ML_WORKERS": "2", "ML_MODEL_DIR": f"{tmp}/models",
                  "ML_RAG_URL": rag_url, "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/multiproc/ml_api"}  # fmt: skip
        ml, ml_url = start("ml_api", ml_env, ml_port, Path(tmp))
        processes.append(ml)
        progress("warming up (20 s)")
        asyncio.run(run_load(make_requests(ml_url, rag_url, 800), 40))  # warm-up, 20 s, every endpoint
        series = {"ml_api": series_count(ml_url), "rag_api": series_count(rag_url)}
        progress(f"series after warm-up: {series}")
        report(args, {"ml_api": ml, "rag_api": rag}, {"ml_api": ml_url, "rag_api": rag_url}, series)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(30)


def _predict_plan(url: str, n: int) -> list[tuple[str, str, dict]]:
    tickets = generate_tickets(n, seed=23).drop(columns=["severity"]).to_dict("records")
    to_json = [{k: (float(v) if k == "business_impact" else int(v)) for k, v in t.items()} for t in tickets]
    return [(url + "/predict", "POST", ticket) for ticket in to_json]


def _chat_plan(url: str, n: int) -> list[tuple[str, str, dict]]:
    text = (ROOT / "rag_api" / "data" / "reference_queries.txt").read_text()
    questions = [q for q in text.split("\n") if q.strip()]
    rng = random.Random(3)
    return [(url + "/chat", "POST", {"query": rng.choice(questions), "evaluate": "async"}) for _ in range(n)]


def report(
    args: argparse.Namespace,
    services: dict[str, subprocess.Popen],
    urls: dict[str, str],
    series: dict[str, int],
) -> None:
    ml_cpu = cpu_per_request(services["ml_api"], _predict_plan(urls["ml_api"], args.requests), rps=300)
    chat_cpu = cpu_per_request(services["rag_api"], _chat_plan(urls["rag_api"], args.requests // 5), rps=15)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(
        f"series on /metrics after warm-up, 2 workers: ml_api {series['ml_api']}, rag_api {series['rag_api']}"
    )
    print(f"ml_api /predict: {ml_cpu * 1e6:.0f} µs CPU each -> {1 / ml_cpu:,.0f} req/s per core")
    print(
        f"rag_api /chat (evaluation async, scorer included): {chat_cpu * 1e3:.1f} ms CPU each"
        f" -> {1 / chat_cpu:,.0f} req/s per core"
    )
    ml_pods, rag_pods = pods(args.ml_rps, ml_cpu), pods(args.chat_rps, chat_cpu)
    total = ml_pods * series["ml_api"] + rag_pods * series["rag_api"]
    print(
        f"for {args.ml_rps:,.0f} /predict/s and {args.chat_rps:,.0f} /chat/s at {HPA_TARGET:.0%} of a"
        f" {POD_CPU_REQUEST:g}-CPU request: ml_api {ml_pods} pods ({args.ml_rps * ml_cpu:.1f} cores busy),"
        f" rag_api {rag_pods} pods ({args.chat_rps * chat_cpu:.1f} cores busy); series from the services"
        f" ~{total:,}"
    )


if __name__ == "__main__":
    main()
