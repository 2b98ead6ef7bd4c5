"""One client for the lab's HTTP APIs: both services (readiness, faults, drift), Prometheus, Alertmanager
and the alert receiver. The simulations, `labctl status`, the demo, the test stack and the end-to-end tests
all talk to the lab through it.

Calls are short and bounded. `healthy()` and `get()` never raise (a lab that is starting or stopping is
normal); every other call raises `LabError` with a hint a person can act on when the lab does not answer
what it should.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from lab_common.endpoints import Ports

SERVICES = ("ml_api", "rag_api")


class LabError(RuntimeError):
    """The lab answered something the caller cannot work with; the message says what to check."""


@dataclass(frozen=True)
class LabUrls:
    ml: str
    rag: str
    prometheus: str
    alertmanager: str
    receiver: str

    @classmethod
    def from_ports(cls, ports: Ports | None = None) -> LabUrls:
        ports = ports or Ports()
        return cls(
            ml=ports.url("ml_api"),
            rag=ports.url("rag_api"),
            prometheus=ports.url("prometheus"),
            alertmanager=ports.url("alertmanager"),
            receiver=ports.url("receiver_http"),
        )

    def service(self, name: str) -> str:
        return {"ml_api": self.ml, "rag_api": self.rag}[name]

    def cli_args(self) -> list[str]:
        """The options that point `python -m simulations` at these URLs."""
        return [
            f"--ml-url={self.ml}",
            f"--rag-url={self.rag}",
            f"--prometheus-url={self.prometheus}",
            f"--alertmanager-url={self.alertmanager}",
            f"--receiver-url={self.receiver}",
        ]


class LabClient:
    def __init__(self, urls: LabUrls | None = None, *, admin_token: str | None = None, timeout: float = 10):
        self.urls = urls or LabUrls.from_ports()
        self.admin_token = admin_token
        self.client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ plain HTTP
    def get(self, url: str, timeout: float | None = None, **params: Any) -> httpx.Response | None:
        """GET `url`, or None when nothing answers (never raises)."""
        try:
            kwargs: dict[str, Any] = {"params": params or None}
            if timeout is not None:
                kwargs["timeout"] = timeout
            return self.client.get(url, **kwargs)
        except httpx.HTTPError:
            return None

    def healthy(self, url: str, timeout: float = 2.0) -> bool:
        """Does `url` answer 200 (within `timeout` seconds)?"""
        r = self.get(url, timeout=timeout)
        return r is not None and r.status_code == 200

    def _json(self, url: str, hint: str, **params: Any) -> Any:
        try:
            r = self.client.get(url, params=params or None)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LabError(f"{url} does not answer as expected ({exc!r}): {hint}") from exc

    # ------------------------------------------------------------------------------------------ services
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
        headers = {"X-Admin-Token": self.admin_token} if self.admin_token else {}
        try:
            r = self.client.request(method, url, headers=headers, **kwargs)
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
        """Switch `fault` on in `service` (ml_api, rag_api) for `seconds` (whole seconds, at least 1)."""
        url = f"{self.urls.service(service)}/admin/faults/{fault}"
        body = {"duration_seconds": max(1, math.ceil(seconds)), "params": params}
        return self._admin("POST", url, json=body).json()

    def active_faults(self, service: str) -> list[dict[str, Any]]:
        return self._admin("GET", f"{self.urls.service(service)}/admin/faults").json()["active"]

    def clear_faults(self, service: str, name: str = "all") -> None:
        self._admin("DELETE", f"{self.urls.service(service)}/admin/faults/{name}")

    def reset_drift(self) -> None:
        self._admin("POST", f"{self.urls.ml}/drift/reset")

    def model_card(self) -> dict[str, Any]:
        r = self.get(f"{self.urls.ml}/model")
        try:
            return r.json() if r is not None and r.status_code == 200 else {}
        except ValueError:
            return {}

    # ---------------------------------------------------------------------------------------- Prometheus
    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector."""
        body = self._json(
            f"{self.urls.prometheus}/api/v1/query",
            f"is Prometheus up at {self.urls.prometheus}? (--prometheus-url)",
            query=expr,
        )
        if body.get("status") != "success":
            raise LabError(f"Prometheus rejected the query {expr!r}: {body.get('error')}")
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's result matrix: one {metric, values: [[epoch, "value"], ...]} per series."""
        body = self._json(
            f"{self.urls.prometheus}/api/v1/query_range",
            f"is Prometheus up at {self.urls.prometheus}? (--prometheus-url)",
            query=expr,
            start=f"{start:.3f}",
            end=f"{end:.3f}",
            step=f"{step:g}",
        )
        if body.get("status") != "success":
            raise LabError(f"Prometheus rejected the query {expr!r}: {body.get('error')}")
        return body["data"]["result"]

    def query_max(self, expr: str) -> float | None:
        """The largest value of an instant query, or None when it returns nothing (or only NaN)."""
        values = [float(s["value"][1]) for s in self.query(expr)]
        values = [v for v in values if not math.isnan(v)]
        return max(values) if values else None

    def alert_states(self) -> dict[str, str]:
        """alertname -> `firing` or `pending`, for every alert Prometheus has (ALERTS)."""
        states: dict[str, str] = {}
        for s in self.query("ALERTS"):
            name, state = s["metric"].get("alertname", ""), s["metric"].get("alertstate", "")
            if states.get(name) != "firing":
                states[name] = state
        return states

    def prometheus_alert_state(
        self, alertname: str, labels: Mapping[str, Iterable[str]] | None = None
    ) -> str:
        """`firing`, `pending` or `inactive` for the rule in Prometheus (`unknown` if it does not answer);
        with `labels`, only its alerts whose every such label has one of the values given (one service's)."""
        try:
            if not labels:
                return self.alert_states().get(alertname, "inactive")
            matchers = [f'alertname="{alertname}"']
            for name, values in labels.items():
                matchers.append(f'{name}=~"{"|".join(map(_promql_regex, values))}"')
            series = self.query(f"ALERTS{{{', '.join(matchers)}}}")
            found = {s["metric"].get("alertstate") for s in series}
        except LabError:
            return "unknown"
        return next((state for state in ("firing", "pending") if state in found), "inactive")

    def firing_alerts(self) -> list[str]:
        return sorted(name for name, state in self.alert_states().items() if state == "firing")

    def targets(self) -> list[dict[str, Any]]:
        """Prometheus's active scrape targets."""
        hint = f"is Prometheus up at {self.urls.prometheus}?"
        return self._json(f"{self.urls.prometheus}/api/v1/targets", hint, state="active")["data"][
            "activeTargets"
        ]

    # -------------------------------------------------------------------------------------- Alertmanager
    def alertmanager_alerts(self, **filters: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (active, suppressed or unprocessed; resolved ones are gone)."""
        hint = f"is Alertmanager up at {self.urls.alertmanager}? (--alertmanager-url)"
        return self._json(f"{self.urls.alertmanager}/api/v2/alerts", hint, **filters)

    def active_alert_names(self) -> set[str]:
        return {
            a["labels"].get("alertname", "")
            for a in self.alertmanager_alerts()
            if a.get("status", {}).get("state") == "active"
        }

    # ------------------------------------------------------------------------------------------ receiver
    def notifications(self, channel: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """What the receiver got (oldest first), optionally of one channel and after `since` (epoch s)."""
        params = {"channel": channel} if channel else {}
        if since is not None:
            params["since"] = f"{since:.3f}"
        hint = f"is the alert receiver up at {self.urls.receiver}? (--receiver-url)"
        try:
            return self._json(f"{self.urls.receiver}/notifications", hint, **params)["notifications"]
        except KeyError as exc:
            raise LabError(f"{self.urls.receiver}/notifications has no `notifications`: {hint}") from exc

    def notification_count(self, channel: str) -> int:
        r = self.get(f"{self.urls.receiver}/notifications", channel=channel)
        try:
            return int(r.json().get("count", 0)) if r is not None and r.status_code == 200 else 0
        except ValueError:
            return 0

    def require_monitoring(self) -> None:
        """Prometheus, Alertmanager and the receiver answer (before a run that will wait for them)."""
        self.query("vector(1)")
        self.alertmanager_alerts()
        self.notifications("slack", time.time())


def _promql_regex(value: str) -> str:
    """`value` matched literally inside a double-quoted PromQL regex."""
    return re.escape(value).replace("\\", "\\\\").replace('"', '\\"')
