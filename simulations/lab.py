"""The lab as the simulations see it: the two services' admin APIs, Prometheus, Alertmanager, the receiver.

Every call is short and bounded; errors that mean "the lab is not what we expect" become `LabError` with a
hint a person can act on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


class LabError(RuntimeError):
    """The lab answered something the simulation cannot work with; the message says what to check."""


@dataclass
class LabUrls:
    ml: str = "http://127.0.0.1:8000"
    rag: str = "http://127.0.0.1:8001"
    prometheus: str = "http://127.0.0.1:9090"
    alertmanager: str = "http://127.0.0.1:9093"
    receiver: str = "http://127.0.0.1:9099"

    def service(self, name: str) -> str:
        return {"ml_api": self.ml, "rag_api": self.rag}[name]


@dataclass
class Lab:
    urls: LabUrls
    admin_token: str | None = None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def close(self) -> None:
        self.client.close()

    # ---------------------------------------------------------------------------------------- services
    def _admin_headers(self) -> dict[str, str]:
        return {"X-Admin-Token": self.admin_token} if self.admin_token else {}

    def require_ready(self, *services: str) -> None:
        for name in services:
            url = self.urls.service(name)
            try:
                r = self.client.get(f"{url}/ready")
            except httpx.HTTPError as exc:
                raise LabError(
                    f"{name} does not answer at {url} ({type(exc).__name__}). Is the lab up? "
                    "Start it with `make lab` (`make status` shows what runs), or pass the right "
                    "--ml-url/--rag-url."
                ) from exc
            if r.status_code != 200:
                raise LabError(
                    f"{name} at {url} is not ready yet (GET /ready: {r.status_code} {r.text[:200]})"
                )

    def _admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self.client.request(method, url, headers=self._admin_headers(), **kwargs)
        except httpx.HTTPError as exc:
            raise LabError(f"{method} {url} failed: {exc!r}. Is the service up?") from exc
        if r.status_code == 401:
            raise LabError(
                f"{method} {url}: 401. The service has an ADMIN_TOKEN: pass it with --admin-token or "
                "$ADMIN_TOKEN."
            )
        if r.status_code == 403:
            raise LabError(
                f"{method} {url}: 403 {r.text[:200]}. Fault injection and admin endpoints need the lab "
                "profile (LAB_PROFILE=true, or FAULTS_ENABLED=true and an ADMIN_TOKEN)."
            )
        if r.status_code >= 400:
            raise LabError(f"{method} {url}: {r.status_code} {r.text[:300]}")
        return r

    def inject(self, service: str, fault: str, seconds: float, **params: Any) -> dict[str, Any]:
        url = f"{self.urls.service(service)}/admin/faults/{fault}"
        body = {"duration_seconds": max(1.0, math.ceil(seconds)), "params": params}
        return self._admin("POST", url, json=body).json()

    def active_faults(self, service: str) -> list[dict[str, Any]]:
        return self._admin("GET", f"{self.urls.service(service)}/admin/faults").json()["active"]

    def clear_faults(self, service: str, name: str = "all") -> None:
        self._admin("DELETE", f"{self.urls.service(service)}/admin/faults/{name}")

    def reset_drift(self) -> None:
        self._admin("POST", f"{self.urls.ml}/drift/reset")

    def model_card(self) -> dict[str, Any]:
        try:
            r = self.client.get(f"{self.urls.ml}/model")
            return r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}

    # ---------------------------------------------------------------------------------------- watching
    def query(self, expr: str) -> float | None:
        """The largest value of an instant query, or None when it returns nothing (or NaN)."""
        try:
            r = self.client.get(f"{self.urls.prometheus}/api/v1/query", params={"query": expr})
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LabError(
                f"Prometheus does not answer at {self.urls.prometheus} ({exc!r}): check --prometheus-url."
            ) from exc
        if body.get("status") != "success":
            raise LabError(f"Prometheus rejected the query {expr!r}: {body.get('error')}")
        values = [float(s["value"][1]) for s in body["data"]["result"]]
        values = [v for v in values if not math.isnan(v)]
        return max(values) if values else None

    def prometheus_alert_state(self, alertname: str) -> str:
        """`firing`, `pending` or `inactive` for the rule in Prometheus."""
        states = set()
        try:
            r = self.client.get(f"{self.urls.prometheus}/api/v1/query", params={"query": "ALERTS"})
            for s in r.json()["data"]["result"]:
                if s["metric"].get("alertname") == alertname:
                    states.add(s["metric"].get("alertstate"))
        except (httpx.HTTPError, ValueError, KeyError):
            return "unknown"
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds now (active, suppressed or unprocessed; resolved ones are gone)."""
        try:
            r = self.client.get(f"{self.urls.alertmanager}/api/v2/alerts")
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LabError(
                f"Alertmanager does not answer at {self.urls.alertmanager} ({exc!r}): "
                "check --alertmanager-url."
            ) from exc

    def active_alert_names(self) -> set[str]:
        return {
            a["labels"].get("alertname", "")
            for a in self.alertmanager_alerts()
            if a.get("status", {}).get("state") == "active"
        }

    def notifications(self, channel: str, since: float) -> list[dict[str, Any]]:
        try:
            r = self.client.get(
                f"{self.urls.receiver}/notifications", params={"channel": channel, "since": f"{since:.3f}"}
            )
            r.raise_for_status()
            return r.json()["notifications"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise LabError(
                f"The alert receiver does not answer at {self.urls.receiver} ({exc!r}): check --receiver-url."
            ) from exc

    def require_monitoring(self) -> None:
        """Prometheus, Alertmanager and the receiver answer (before a run that will wait for them)."""
        self.query("vector(1)")
        self.alertmanager_alerts()
        self.notifications("slack", time.time())
