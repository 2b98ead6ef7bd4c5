"""Locust users for the lab: healthy ML and RAG traffic, and (on request) drifted ML traffic.

The simulations run this file headless; run it yourself for Locust's web UI:

    ML_API_URL=http://127.0.0.1:8000 RAG_API_URL=http://127.0.0.1:8001 \
        .venv/bin/locust -f simulations/locustfile.py          # then open http://localhost:8089

Each user class targets its own service from the environment (ML_API_URL, RAG_API_URL), so do not pass
`--host` (it would send every class to the same service). Pick classes by naming them after the options,
e.g. `locust -f simulations/locustfile.py --headless -u 5 MLUser`.

- `MLUser`: tickets from the training distribution to ml_api `POST /predict`.
- `RAGUser`: in-domain questions to rag_api `POST /chat`.
- `DriftUser` (only with SIM_DRIFT=1): tickets whose SIM_DRIFT_FEATURES (comma list, default all four) are
  shifted by SIM_DRIFT_AMOUNT reference standard deviations (default 1.0), to ml_api `POST /predict`.

SIM_WAIT_MIN / SIM_WAIT_MAX: seconds each user waits between two requests (default 0.5 and 1.5).
"""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, task

from lab_common.endpoints import local_url
from simulations.data import drifted_tickets, feature_names, in_domain_questions, parse_features

ML_API_URL = os.environ.get("ML_API_URL") or local_url("ml_api")
RAG_API_URL = os.environ.get("RAG_API_URL") or local_url("rag_api")
WAIT = between(float(os.environ.get("SIM_WAIT_MIN", "0.5")), float(os.environ.get("SIM_WAIT_MAX", "1.5")))
DRIFT_ON = os.environ.get("SIM_DRIFT", "").lower() in {"1", "true", "yes"}

# Shared by every user of this process: gevent runs one greenlet at a time, and next() never yields.
_healthy = drifted_tickets(feature_names(), 0.0, seed=random.randrange(1_000_000))
_questions = itertools.cycle(random.sample(in_domain_questions(), k=len(in_domain_questions())))


class MLUser(HttpUser):
    host = ML_API_URL
    wait_time = WAIT

    @task
    def predict(self) -> None:
        self.client.post("/predict", json=next(_healthy), name="/predict")


class RAGUser(HttpUser):
    host = RAG_API_URL
    wait_time = WAIT

    @task
    def chat(self) -> None:
        self.client.post("/chat", json={"query": next(_questions)}, name="/chat")


class DriftUser(HttpUser):
    abstract = not DRIFT_ON  # never part of a default run
    host = ML_API_URL
    wait_time = WAIT

    def on_start(self) -> None:
        features = parse_features(os.environ.get("SIM_DRIFT_FEATURES") or ",".join(feature_names()))
        amount = float(os.environ.get("SIM_DRIFT_AMOUNT", "1.0"))
        self.tickets = drifted_tickets(features, amount, seed=random.randrange(1_000_000))

    @task
    def predict_drifted(self) -> None:
        self.client.post("/predict", json=next(self.tickets), name="/predict (drifted)")
