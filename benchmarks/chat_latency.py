"""Latency of rag_api `/chat`, offline, with background evaluation: the real service under uvicorn.

    python -m benchmarks.chat_latency [--requests 300] [--concurrency 4] [--evaluate async] [--data-dir DIR]

Starts `uvicorn rag_api.app:app` on a free port in a subprocess (empty tmp data dir unless --data-dir, no
OpenAI settings: the offline generator and scorer), waits for /ready (the first start indexes the knowledge
base) and for the sentence cache warm-up, warms up with one pass over the questions, then sends --requests
/chat requests with in-domain questions (rag_api/data/reference_queries.txt) from --concurrency concurrent
clients. Prints client-side p50/p90/p99/max latency, requests/s, the server-reported stage latencies and the
evaluation outcomes. Goal on a 2-core machine: p50 <= 50 ms, p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from lab_common.net import free_port
from labctl.wait import ProcessExited, WaitTimeout, wait_http

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "rag_api" / "data" / "reference_queries.txt"


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    def warm(r: httpx.Response) -> bool:
        return r.status_code == 200 and r.json().get("sentence_cache") == "warm"

    try:
        wait_http(f"{base}/ready", timeout=timeout, process=process, ok=warm, every=0.5, what="rag_api")
    except (WaitTimeout, ProcessExited) as exc:
        raise SystemExit(f"{exc} (with a warm sentence cache)") from None


async def run_load(
    base: str, questions: list[str], total: int, concurrency: int, evaluate: str
) -> tuple[list[float], list[dict], float]:
    latencies: list[float] = []
    bodies: list[dict] = []
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            payload = {"query": questions[i % len(questions)], "evaluate": evaluate}
            start = time.perf_counter()
            response = await client.post(f"{base}/chat", json=payload)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
            bodies.append(response.json())

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, bodies, elapsed


def metric(exposition: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", exposition, re.M)
    return float(match.group(1)) if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--evaluate", choices=["async", "sync", "off"], default="async")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="reuse an index (default: a fresh tmp dir)"
    )
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--drain-seconds", type=float, default=60.0, help="wait for the evaluation queue")
    args = parser.parse_args()

    questions = [q.strip() for q in QUESTIONS.read_text().splitlines() if q.strip() and not q.startswith("#")]
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    env.update({"RAG_CHROMA_PATH": str(data_dir / "chroma"), "LAB_PROFILE": "true", "LOG_LEVEL": "WARNING"})
    command = [sys.executable, "-m", "uvicorn", "rag_api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        start = time.perf_counter()
        wait_ready(base, process, args.startup_timeout)
        print(
            f"rag_api ready with a warm sentence cache after {time.perf_counter() - start:.1f}s ({data_dir})"
        )
        # Warm-up: every question once (first-use costs: thread pools, Chroma caches, the scorer's imports).
        asyncio.run(run_load(base, questions, len(questions), args.concurrency, "off"))
        before = httpx.get(f"{base}/metrics", timeout=10).text
        latencies, bodies, elapsed = asyncio.run(
            run_load(base, questions, args.requests, args.concurrency, args.evaluate)
        )
        after = httpx.get(f"{base}/metrics", timeout=10).text
        drain_start = time.perf_counter()
        drained = after
        while time.perf_counter() - drain_start < args.drain_seconds:
            drained = httpx.get(f"{base}/metrics", timeout=10).text
            if metric(drained, "llm_evaluation_queue_depth") == 0:
                break
            time.sleep(0.5)
        drain_seconds = time.perf_counter() - drain_start
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: the scorer's child process too
            process.wait()

    ms = np.array(latencies) * 1000
    print(
        f"/chat x{len(ms)} (concurrency {args.concurrency}, evaluate={args.evaluate}): "
        f"p50 {np.percentile(ms, 50):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, "
        f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms, {len(ms) / elapsed:.1f} requests/s"
    )
    for stage in ("retrieval", "generation", "total"):
        values = np.array([b["latency_ms"][stage] for b in bodies])
        p50, p99 = np.percentile(values, 50), np.percentile(values, 99)
        print(f"  server {stage:<10} p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    def outcomes(exposition: str) -> dict[str, float]:
        return {
            result: metric(exposition, "llm_evaluations_total", f'{{result="{result}"}}')
            - metric(before, "llm_evaluations_total", f'{{result="{result}"}}')
            for result in ("ok", "failed", "dropped")
        }

    print(f"  evaluations at the end of the run: {outcomes(after)}")
    print(f"  ... after draining the queue for {drain_seconds:.1f}s: {outcomes(drained)}")
    print(
        f"  goal p50 <= 50 ms: {'met' if np.percentile(ms, 50) <= 50 else 'NOT met'}; "
        f"p99 <= 200 ms: {'met' if np.percentile(ms, 99) <= 200 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
