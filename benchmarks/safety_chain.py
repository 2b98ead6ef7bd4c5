"""What the safety chain costs per /chat, as rag_api runs it: `SafetyChain.scan_input` (3 checks, with the
query embedding retrieval already computed) + `scan_output` (pii, toxicity, canary; text only), outcome
decisions and metric recording included.

    python -m benchmarks.safety_chain [--chats 2000]

Texts: the lab's own healthy traffic (question sets and knowledge-base paragraphs, as benchmarks.safety
takes them), plus every tenth question an attack from simulations/attack.py (flags cost a little more: the
flag counter and, in enforce mode, redaction). The goal of issue 12: p50 ≤ 3 ms, p99 ≤ 15 ms.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.safety import lab_texts
from rag_api.embeddings import get_embedder
from rag_api.safety.__main__ import embed_by_length
from rag_api.safety.chain import SafetyChain
from rag_api.safety.settings import SafetySettings
from simulations.attack import INJECTIONS


def measure(chain: SafetyChain, questions: list[str], vectors: np.ndarray, answers: list[str], chats: int):
    wall, cpu = [], []
    for i in range(chats):
        question, vector = questions[i % len(questions)], vectors[i % len(questions)]
        answer = answers[i % len(answers)]
        tick, tick_cpu = time.perf_counter(), time.thread_time()
        chain.scan_input(question, vector)
        chain.scan_output(answer)
        wall.append(time.perf_counter() - tick)
        cpu.append(time.thread_time() - tick_cpu)
    return np.asarray(wall) * 1000, np.asarray(cpu) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=2000, help="/chat exchanges to scan (default 2000)")
    args = parser.parse_args(argv)
    texts = lab_texts()
    questions = [q if i % 10 else INJECTIONS[i % len(INJECTIONS)] for i, q in enumerate(texts["questions"])]
    vectors = embed_by_length(get_embedder(), questions)  # computed by retrieval in rag_api: not timed
    print(f"{len(questions)} questions (1 in 10 an attack), {len(texts['answers'])} answers")
    for mode in ("monitor", "enforce"):
        chain = SafetyChain(SafetySettings(mode=mode))
        measure(chain, questions, vectors, texts["answers"], 50)  # warm-up
        wall, cpu = measure(chain, questions, vectors, texts["answers"], args.chats)
        for label, values in (("wall", wall), ("cpu", cpu)):
            p50, p99 = np.percentile(values, (50, 99))
            print(f"{mode:8} {label:4} p50 {p50:.2f} ms  p99 {p99:.2f} ms  over {len(values)} chats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
