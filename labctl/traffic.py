"""Steady healthy traffic: in-range tickets to ml_api `/predict`, in-domain questions to rag_api `/chat`.

Used by the end-to-end tests (a background thread they can pause) and, when the repository has no Locust
file, by `labctl up` as its traffic process: `python -m labctl.traffic --ml-url ... --rag-url ...`.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from lab_common.endpoints import local_url
from simulations.data import in_domain_questions  # the questions the knowledge base answers


def healthy_tickets(seed: int = 20240601, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Endless tickets drawn from the training distribution (ml_api.data), so the drift window stays calm."""
    from ml_api.data import FEATURES, generate_tickets

    for round_ in itertools.count():
        frame = generate_tickets(batch, seed=seed + round_)
        for row in frame[list(FEATURES)].to_dict(orient="records"):
            yield {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def chat_payload(question: str) -> dict[str, Any]:
    return {"query": question}


class HealthyTraffic(threading.Thread):
    """Background healthy traffic at about `rate` requests/s (one in `chat_every` is a /chat).

    `pause_ml` / `pause_chat` stop one kind while a test sends its own (`wait_idle()` then waits for the
    request in flight); `counts` tallies status codes.
    """

    def __init__(
        self, ml_url: str, rag_url: str, *, rate: float = 3.0, chat_every: int = 3, seed: int = 20240601
    ) -> None:
        super().__init__(daemon=True, name="healthy-traffic")
        self.ml_url = ml_url
        self.rag_url = rag_url
        self.interval = 1.0 / rate
        self.chat_every = chat_every
        self.tickets = healthy_tickets(seed)
        self.questions = in_domain_questions()
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.pause_ml = threading.Event()
        self.pause_chat = threading.Event()
        self._halt = threading.Event()
        self._busy = threading.Lock()  # held for each request, pause flags checked inside

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """After pausing: wait until no request of this thread is in flight (False after `timeout` s)."""
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            for i in itertools.count():
                if self._halt.is_set():
                    return
                started = time.monotonic()
                with self._busy:
                    try:
                        if i % self.chat_every == self.chat_every - 1:
                            if not self.pause_chat.is_set():
                                q = self.random.choice(self.questions)
                                r = client.post(f"{self.rag_url}/chat", json=chat_payload(q))
                                self.counts[f"chat {r.status_code}"] += 1
                        elif not self.pause_ml.is_set():
                            r = client.post(f"{self.ml_url}/predict", json=next(self.tickets))
                            self.counts[f"predict {r.status_code}"] += 1
                    except httpx.HTTPError as exc:
                        self.counts[f"error {type(exc).__name__}"] += 1
                self._halt.wait(max(0.0, self.interval - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ml-url", default=local_url("ml_api"))
    parser.add_argument("--rag-url", default=local_url("rag_api"))
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second")
    args = parser.parse_args()
    traffic = HealthyTraffic(args.ml_url, args.rag_url, rate=args.rate)
    traffic.start()
    try:
        while traffic.is_alive():
            time.sleep(30)
            print("traffic so far:", dict(traffic.counts), flush=True)
    except KeyboardInterrupt:
        traffic.stop()


if __name__ == "__main__":
    main()
