"""`python -m simulations anomaly --shape spike|shift|ramp`: a latency fault on ml_api shaped over minutes,
always under MLHighLatencyP90's static threshold, after a warm-up of healthy traffic that fills the anomaly
rules' baseline (prometheus/rules/anomaly.yml, lab profile: 10 minutes ending 5 minutes ago).

Expected: LatencyMetricAnomaly (warning: Slack) while MLHighLatencyP90 stays silent. The shape is applied by
re-posting the `latency` fault every STEP_SECONDS with the delay of the moment (the service applies it).
"""

from __future__ import annotations

import threading

from monitoring.anomaly import SIGNALS_BY_NAME
from monitoring.contract import threshold
from simulations.lab import Lab
from simulations.load import LocustRun
from simulations.scenarios import LocustScenario, _locust_lines
from simulations.watch import Expected

SHAPES = ("spike", "shift", "ramp")
STEP_SECONDS = 10.0
SIGNAL = SIGNALS_BY_NAME["latency_p90"]


def delay_at(shape: str, elapsed: float, peak_ms: float, ramp_seconds: float) -> float:
    """Added latency (ms) `elapsed` seconds after the shape started."""
    if shape == "spike":
        return peak_ms if elapsed < 60 else 0.0
    if shape == "shift":
        return peak_ms
    return peak_ms * min(elapsed / ramp_seconds, 1.0)


class AnomalyScenario(LocustScenario):
    name = "anomaly"
    services = ("ml_api",)

    def __init__(
        self,
        *,
        shape: str,
        warmup: float,
        peak_ms: float,
        ramp_seconds: float,
        users: int,
        ml_url: str,
        rag_url: str,
    ) -> None:
        static_ms = threshold("MLHighLatencyP90") * 1000
        if peak_ms >= static_ms * 0.9:
            raise ValueError(f"--peak-ms {peak_ms:g} would reach MLHighLatencyP90's {static_ms:g} ms")
        self.shape, self.warmup, self.peak_ms, self.ramp_seconds = shape, warmup, peak_ms, ramp_seconds
        self.duration = warmup + ramp_seconds + 120
        self.expected = [
            Expected(
                SIGNAL.alert,
                "ml_api",
                "ML latency anomaly score",
                f'max(anomaly:score{{anomaly_name="{SIGNAL.name}", service="ml_api"}})',
                # Any of the signal's types: one shape raises several (a spike's minute also shifts the
                # level), and which comes first is the detector's to say (stage 6's exercise asks it).
                labels={"anomaly_name": (SIGNAL.name,), "anomaly_type": SIGNAL.types},
            )
        ]
        self.locust = LocustRun(
            ["MLUser"], users=users, duration=self.duration, ml_url=ml_url, rag_url=rag_url
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current_ms = 0.0

    def inject(self, lab: Lab, hold: float) -> None:
        self._thread = threading.Thread(target=self._shape, args=(lab,), daemon=True)
        self._thread.start()

    def _shape(self, lab: Lab) -> None:
        if self._stop.wait(self.warmup):
            return
        elapsed = 0.0
        while not self._stop.is_set():
            self.current_ms = delay_at(self.shape, elapsed, self.peak_ms, self.ramp_seconds)
            if self.current_ms > 0:
                lab.inject("ml_api", "latency", STEP_SECONDS * 3, delay_ms=self.current_ms)
            else:
                lab.clear_faults("ml_api", "latency")
            self._stop.wait(STEP_SECONDS)
            elapsed += STEP_SECONDS

    def stop_load(self) -> None:
        self._stop.set()
        super().stop_load()

    def progress(self) -> str:
        return f"{self.shape}: +{self.current_ms:.0f} ms"

    def summary(self) -> list[str]:
        lines = [
            f"anomaly: {self.shape} of ml_api latency up to +{self.peak_ms:g} ms after {self.warmup:g}s of "
            "healthy traffic"
        ]
        return lines + _locust_lines(self.locust)

    def cleanup(self, lab: Lab) -> None:
        self._stop.set()
        lab.clear_faults("ml_api", "latency")
