"""The eval gate against a real rag_api app and index: passes healthy, fails with the hallucination fault."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from lab_common.net import free_port
from labctl.wait import wait_http
from rag_api.app import create_app
from simulations import eval as eval_gate
from tests.support.rag import copy_index, offline_settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("eval-gate")
    with TestClient(create_app(offline_settings(copy_index(root / "chroma")))) as test_client:
        yield test_client


def gate(client: TestClient, out: Path, pushgateway_url: str | None = None) -> tuple[int, dict, ET.Element]:
    """The gate against `client` with its default set and floors: exit code, JSON report, JUnit suite."""
    args = argparse.Namespace(
        eval_set=eval_gate.EVAL_SET,
        junit=out / "junit.xml",
        json=out / "report.json",
        pushgateway_url=pushgateway_url,
        min_groundedness=eval_gate.ROW_MIN_GROUNDEDNESS,
    )
    code = eval_gate.gate(lambda path, body: client.post(path, json=body), args)
    return code, json.loads(args.json.read_text()), ET.parse(args.junit).getroot()


def test_the_eval_set_covers_every_kind_and_says_what_a_good_answer_shows() -> None:
    rows = eval_gate.load_set()
    assert {r["kind"] for r in rows} == {"in_domain", "out_of_domain", "adversarial"}
    assert all(r["good_answer"] and (r.get("must_cite") or r.get("must_not_include")) for r in rows)


def test_the_gate_passes_on_the_healthy_lab(client: TestClient, tmp_path: Path) -> None:
    code, report, suite = gate(client, tmp_path)
    assert code == 0, report
    assert report["passed"] and not report["below_floors"]
    assert suite.get("failures") == str(sum(bool(c["failures"]) for c in report["cases"]))
    assert int(suite.get("tests")) == len(report["cases"]) + len(eval_gate.FLOORS)


def test_the_gate_fails_with_the_hallucination_fault(client: TestClient, tmp_path: Path) -> None:
    fault = {"duration_seconds": 300, "params": {"rate": 1.0}}
    assert client.post("/admin/faults/hallucination", json=fault).status_code == 200
    try:
        code, report, suite = gate(client, tmp_path)
    finally:
        client.delete("/admin/faults/hallucination")
    assert code == 1
    assert "groundedness_mean" in report["below_floors"] or "pass_rate" in report["below_floors"]
    floors = {c.get("name"): c for c in suite.iter("testcase") if c.get("classname") == "eval.floors"}
    assert any(floors[name].find("failure") is not None for name in report["below_floors"])


@pytest.mark.skipif(
    shutil.which("prometheus-pushgateway") is None, reason="prometheus-pushgateway not installed"
)
def test_the_results_reach_a_real_pushgateway(client: TestClient, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", timeout=20)
        code, report, _ = gate(client, tmp_path, pushgateway_url=url)
        assert code == 0
        exposition = httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        process.terminate()
        process.wait(timeout=10)
    line = next(
        ln
        for ln in exposition.splitlines()
        if ln.startswith("llm_eval_score{") and 'metric="pass_rate"' in ln
    )
    assert 'eval_set="nimbus"' in line and 'job="llm_eval"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(report["metrics"]["pass_rate"])
    assert re.search(r"^llm_eval_passed\{[^}]*\} 1$", exposition, re.M)
    assert re.search(r"^llm_eval_last_run_timestamp_seconds\{", exposition, re.M)
