"""The eval gate end to end: `python -m simulations eval` against the lab's rag_api passes, pushes its figures
to the lab's real Pushgateway, and Prometheus scrapes them from there as llm_eval_* series with labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulations import eval as eval_gate

from .conftest import Lab

pytestmark = pytest.mark.timeout(600)


@pytest.mark.skipif(
    shutil.which("prometheus-pushgateway") is None, reason="prometheus-pushgateway not installed"
)
def test_eval_results_reach_prometheus_through_the_pushgateway(lab: Lab, tmp_path: Path) -> None:
    pushgateway = f"http://127.0.0.1:{lab.stack.ports.pushgateway}"
    args = [
        f"--rag-url={lab.rag_url}",
        f"--pushgateway-url={pushgateway}",
        f"--junit={tmp_path / 'junit.xml'}",
        f"--json={tmp_path / 'report.json'}",
        f"--baseline={tmp_path / 'baseline.json'}",
    ]
    assert eval_gate.main(args) == 0, (tmp_path / "report.json").read_text()
    assert "<testsuite" in (tmp_path / "junit.xml").read_text()

    def scraped() -> list[dict] | None:
        result = lab.query(f'llm_eval_passed{{job="llm_eval", eval_set="{eval_gate.EVAL_SET.stem}"}}')
        return result or None

    # One series per label set Prometheus keeps for the push (e.g. with and without an instance label).
    found = lab.wait_for("llm_eval_passed scraped from the Pushgateway", scraped, timeout=60)
    assert {series["metric"]["eval_set"] for series in found} == {eval_gate.EVAL_SET.stem}
    assert all(float(series["value"][1]) == 1 for series in found), found
    scores = lab.query(f'llm_eval_score{{job="llm_eval", eval_set="{eval_gate.EVAL_SET.stem}"}}')
    assert {s["metric"]["metric"] for s in scores} >= {"pass_rate"}, scores
