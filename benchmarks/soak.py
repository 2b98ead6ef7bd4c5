"""Soak: mixed load at a fixed rate against both services; prints 5xx count and RSS growth.

    python -m benchmarks.soak [--minutes 10] [--rps 50]

Starts `python -m ml_api` and `python -m rag_api` (offline, evaluation async, lab profile off) on free
ports, measures each process's RSS after start-up and warm-up, then sends --rps requests/s for --minutes
(/predict with tickets from the training generator, /predict/batch, /chat with in-domain and out-of-domain
questions and distinct session ids, /triage, a share of invalid requests), and prints requests by status,
latency percentiles, RSS and the series count on /metrics after warm-up and after the run. Goals: zero 5xx,
RSS growth <= 10%, a flat series count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from lab_common.net import free_port
from labctl.wait import ProcessExited, WaitTimeout, wait_http
from ml_api.data import generate_tickets

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(module: str, env: dict[str, str], port: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready", timeout=300, process=process, every=0.5, what=module)
    except (WaitTimeout, ProcessExited) as exc:
        raise SystemExit(str(exc)) from None
    return process, base


def make_requests(ml: str, rag: str, n: int) -> list[tuple[str, str, dict]]:
    tickets = generate_tickets(2000, seed=11).drop(columns=["severity"]).to_dict("records")
    tickets = [{k: (float(v) if k == "business_impact" else int(v)) for k, v in t.items()} for t in tickets]
    in_domain = (ROOT / "rag_api/data/reference_queries.txt").read_text().split("\n")
    out_domain = (ROOT / "tests/data/out_of_domain_questions.txt").read_text().split("\n")
    questions = [q for q in in_domain + out_domain if q.strip()]
    rng = random.Random(5)
    plan = []
    for i in range(n):
        ticket = tickets[i % len(tickets)]
        roll = rng.random()
        if roll < 0.55:
            plan.append((ml + "/predict", "POST", ticket))
        elif roll < 0.60:
            plan.append((ml + "/predict/batch", "POST", {"tickets": rng.sample(tickets, 20)}))
        elif roll < 0.85:
            body = {"query": rng.choice(questions), "session_id": f"soak-{i}", "evaluate": "async"}
            plan.append((rag + "/chat", "POST", body))
        elif roll < 0.90:
            plan.append((ml + "/triage", "POST", {**ticket, "text": rng.choice(questions)}))
        else:  # invalid input must be a 4xx, never a 5xx
            plan.append((ml + "/predict", "POST", {**ticket, "customer_tier": 99}))
    return plan


async def run_load(plan: list[tuple[str, str, dict]], rps: float) -> tuple[Counter, list[float]]:
    statuses: Counter = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(url: str, method: str, body: dict) -> None:
            start = time.perf_counter()
            try:
                response = await client.request(method, url, json=body)
                statuses[response.status_code] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - start)

        tasks = []
        t0 = time.perf_counter()
        for i, (url, method, body) in enumerate(plan):
            delay = t0 + i / rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(url, method, body)))
        await asyncio.gather(*tasks)
    return statuses, latencies


def series_count(url: str) -> int:
    """Samples on /metrics: the series Prometheus stores for this process (bounded labels keep it flat)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--rps", type=float, default=50.0, help="requests per second, all endpoints together")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="soak-")
    ml_port, rag_port = free_port(), free_port()
    common = {"LAB_PROFILE": "false", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    rag, rag_url = start(
        "rag_api", {**common, "RAG_PORT": str(rag_port), "RAG_CHROMA_PATH": f"{tmp}/chroma"}, rag_port
    )
    ml_env = {**common, "ML_PORT": str(ml_port), "ML_MODEL_DIR": f"{tmp}/models", "ML_RAG_URL": rag_url}
    ml, ml_url = start("ml_api", ml_env, ml_port)
    try:
        asyncio.run(run_load(make_requests(ml_url, rag_url, int(args.rps * 20)), args.rps))  # warm-up, 20 s
        rss_start = {"ml_api": rss_mb(ml.pid), "rag_api": rss_mb(rag.pid)}
        series_start = {"ml_api": series_count(ml_url), "rag_api": series_count(rag_url)}
        n = int(args.rps * args.minutes * 60)
        started = time.perf_counter()
        statuses, latencies = asyncio.run(run_load(make_requests(ml_url, rag_url, n), args.rps))
        elapsed = time.perf_counter() - started
        rss_end = {"ml_api": rss_mb(ml.pid), "rag_api": rss_mb(rag.pid)}
        series_end = {"ml_api": series_count(ml_url), "rag_api": series_count(rag_url)}
    finally:
        for process in (ml, rag):
            process.terminate()
            process.wait(20)
    server_errors = sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500)
    lat = np.array(latencies) * 1000
    print(f"soak: {n} requests in {elapsed:.0f} s ({n / elapsed:.1f} req/s), machine {os.cpu_count()} cores")
    print("statuses:", dict(sorted(statuses.items(), key=str)))
    print(
        f"latency ms: p50 {np.percentile(lat, 50):.1f}  p99 {np.percentile(lat, 99):.1f}  max {lat.max():.1f}"
    )
    print(f"5xx: {server_errors}   (goal 0)")
    for name in rss_start:
        growth = (rss_end[name] / rss_start[name] - 1) * 100
        print(f"{name}: RSS after warm-up {rss_start[name]:.0f} MB, after soak {rss_end[name]:.0f} MB "
              f"({growth:+.1f}%, goal <= +10%); "
              f"series {series_start[name]} -> {series_end[name]}")  # fmt: skip


if __name__ == "__main__":
    main()
