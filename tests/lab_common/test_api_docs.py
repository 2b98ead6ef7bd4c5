"""/docs and /redoc of both services render with no internet (issue 15, "API docs offline").

FastAPI's defaults load Swagger UI and ReDoc from a CDN: offline both pages were blank. The assets now come
from a Python package. Headless Chromium loads each page with every host but 127.0.0.1 unresolvable, and
must show every operation of the schema while asking nothing of any other origin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab_common.docs import ASSETS, ASSETS_PATH
from lab_common.net import free_port
from lab_common.serve import BoundedHttpToolsProtocol
from labctl.wait import wait_http
from receiver.app import create_app as create_receiver_app
from receiver.settings import ReceiverSettings

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
    # Offline: no name resolves but the lab's own address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
]  # fmt: skip


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_reference_no_other_origin(apps: dict[str, FastAPI], page: str, tmp_path: Path) -> None:
    receiver = create_receiver_app(ReceiverSettings(log=tmp_path / "notifications.jsonl", echo=False))
    for app in [*apps.values(), receiver]:
        response = TestClient(app).get(page)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        html = response.text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(
            r"""url:\s*'([^']+)'""", html
        )
        assert urls, html
        assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
        assert "https://" not in html and "http://" not in html, html


def test_doc_assets_are_served_from_the_package(apps: dict[str, FastAPI]) -> None:
    client = TestClient(apps["ml_api"])
    for name, media_type in ASSETS.items():
        response = client.get(f"{ASSETS_PATH}/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
        assert len(response.content) > 1000
    assert client.get(f"{ASSETS_PATH}/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get(f"{ASSETS_PATH}/core.py").status_code == 404


@pytest.fixture(scope="module")
def served(apps: dict[str, FastAPI]) -> Iterator[dict[str, str]]:
    """Both apps on real sockets (uvicorn in threads, no lifespan)."""
    servers, urls = [], {}
    for name, app in apps.items():
        port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            http=BoundedHttpToolsProtocol,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{port}"
    for url in urls.values():
        wait_http(f"{url}/health", timeout=20, every=0.1)
    yield urls
    for server in servers:
        server.should_exit = True


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/install_monitoring_tools.sh installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def render(url: str) -> tuple[str, list[dict[str, Any]]]:
    """The DOM after the page's scripts ran, and the requests the page made (from Chromium's net log)."""
    with tempfile.TemporaryDirectory() as profile:
        netlog = Path(profile) / "net.json"
        result = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout, page_requests(netlog.read_text())


def page_requests(raw: str) -> list[dict[str, Any]]:
    """Requests started on behalf of a page (they carry its origin as initiator); the browser's own
    background calls carry none."""
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:  # a browser that exits fast may leave the events list unterminated
        log = json.loads(raw.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator", "").startswith("http")
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", ["ml_api", "rag_api"])
def test_swagger_ui_and_redoc_render_offline_in_chromium(
    apps: dict[str, FastAPI], served: dict[str, str], service: str
) -> None:
    base = served[service]
    paths = set(apps[service].openapi()["paths"])
    dom, requests = render(f"{base}/docs")
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert shown == paths, f"Swagger UI shows {sorted(shown)}, the schema has {sorted(paths)}"
    assert requests and all(r["url"].startswith(base + "/") for r in requests), [r["url"] for r in requests]

    dom, requests = render(f"{base}/redoc")
    assert 'class="redoc-wrap"' in dom or "redoc-wrap" in dom, dom[:2000]
    missing = sorted(p for p in paths if p not in dom)
    assert not missing, f"ReDoc does not show {missing}"
    assert requests and all(r["url"].startswith(base + "/") for r in requests), [r["url"] for r in requests]
