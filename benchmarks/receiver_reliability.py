"""Issue 11's receiver findings (4-8, 17's de-duplication) reproduced against a running receiver.

    python -m benchmarks.receiver_reliability --receiver URL [--alertmanager URL] [--archive FILE]
        [--console-log FILE] CHECK... | all

CHECK: strict-json (#4), shape (#5), body-limit (#6), clear (#7), console (#8), dedup (#17: needs
--alertmanager), restart (what is stored reads back after a kill -9; needs a supervisor such as `labctl up`
that restarts the receiver). Each prints PASS/FAIL and its figures; exit 1 if any failed. Run it against a
lab of your own (`python -m labctl up` on free ports): the checks post notifications, pause (SIGSTOP) and kill
the receiver, and `clear` empties its inbox. `clear` also starts a receiver of its own outside the lab
profile (free ports, a temporary directory) for the admin-token half.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.probes import Verdicts, metric, pid_on_port, port_of, rss_mb, run_commands, wait_until
from lab_common.net import free_port

ROOT = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}


def _post(base: str, body: str | bytes, path: str = "/slack", **headers: str) -> httpx.Response:
    return httpx.post(f"{base}{path}", content=body, headers={**JSON, **headers}, timeout=60)


def _reads(base: str) -> str:
    """The answer codes of the receiver's read paths."""
    codes = [httpx.get(f"{base}{path}", timeout=30).status_code for path in ("/notifications", "/inbox")]
    return f"GET /notifications {codes[0]}, /inbox {codes[1]}"


def strict_json(args: argparse.Namespace, v: Verdicts) -> None:
    bodies = {
        "NaN": '{"text": "x", "attachments": [{"text": "a", "value": NaN}]}',
        "Infinity": '{"text": Infinity}',
        "-Infinity": '{"text": "x", "v": -Infinity}',
        "1e999": '{"text": "x", "v": 1e999}',  # a finite-looking literal that Python reads as inf
        "-1e999": '{"text": "x", "v": -1e999}',
    }
    for name, body in bodies.items():
        answer = _post(args.receiver, body)
        v.check(f"#4 {name}", answer.status_code == 400, f"{answer.status_code} {answer.text[:60]}")
    form = httpx.post(f"{args.receiver}/slack", data={"payload": bodies["NaN"]}, timeout=30)
    v.check("#4 form payload NaN", form.status_code == 400, f"{form.status_code} {form.text[:60]}")
    reads = _reads(args.receiver)
    v.check("#4 reads after", reads.count(" 200") == 2, reads)


def shape(args: argparse.Namespace, v: Verdicts) -> None:
    depth = 5000
    bodies = {
        "attachments: 5": ('{"text": "x", "attachments": 5}', "attachments"),
        "blocks: 5": ('{"text": "x", "blocks": 5}', "blocks"),
        "fields: 5": ('{"text": "x", "attachments": [{"text": "a", "fields": 5}]}', "fields"),
        "attachments: [5]": ('{"attachments": [5]}', "attachments.0"),
        f"{depth}-deep lists": ('{"text": "x", "a": ' + "[" * depth + "]" * depth + "}", "deep"),
        f"{depth}-deep objects": ('{"text": "x", "a": ' + '{"a": ' * depth + "1" + "}" * depth + "}", "deep"),
    }
    for name, (body, field) in bodies.items():
        answer = _post(args.receiver, body)
        named = field in answer.text
        v.check(f"#5 {name}", answer.status_code == 400 and named, f"{answer.status_code} {answer.text[:70]}")
    reads = _reads(args.receiver)
    v.check("#5 reads after", reads.count(" 200") == 2, reads)


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    yield b'{"text": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def body_limit(args: argparse.Namespace, v: Verdicts) -> None:
    pid = pid_on_port(port_of(args.receiver))
    archive = args.archive.stat().st_size if args.archive and args.archive.exists() else None
    before = rss_mb(pid)
    size = 100 * 1024 * 1024
    sized = _post(args.receiver, b"".join(_chunks(size)))
    chunked = httpx.post(f"{args.receiver}/slack", content=_chunks(size), headers=JSON, timeout=60)
    after = rss_mb(pid)
    grown = ""
    if archive is not None and args.archive:
        grown = f", archive {archive} -> {args.archive.stat().st_size} bytes"
    figure = (
        f"100 MB POST {sized.status_code}, chunked {chunked.status_code}; RSS {before:.0f} -> {after:.0f} MB"
    )
    ok = sized.status_code == chunked.status_code == 413 and after - before < 20
    if archive is not None and args.archive:
        ok = ok and args.archive.stat().st_size - archive < 1 << 20
    v.check("#6 body limit", ok, figure + grown)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def clear(args: argparse.Namespace, v: Verdicts) -> None:
    marker = f"[FIRING:1] ClearProbe {time.time():.0f}"
    _post(args.receiver, json.dumps({"text": marker}))
    before = _lines(args.archive) if args.archive else None
    answer = httpx.delete(f"{args.receiver}/notifications", timeout=30)
    listed = httpx.get(f"{args.receiver}/notifications", timeout=30).json()["count"]
    figure = f"DELETE (no token, lab profile) {answer.status_code} {answer.text}; inbox then {listed}"
    ok = answer.status_code in (200, 401, 403)
    if args.archive:
        kept = marker in args.archive.read_text(encoding="utf-8", errors="replace")
        figure += f"; archive {before} -> {_lines(args.archive)} lines, the notification kept: {kept}"
        ok = ok and kept and _lines(args.archive) >= (before or 0)
    v.check("#7 clear keeps the archive", ok, figure)
    with tempfile.TemporaryDirectory() as tmp:
        token = _own_receiver(Path(tmp), ADMIN_TOKEN="probe-token")
        try:
            codes = [
                httpx.delete(f"{token[0]}/notifications", headers=h, timeout=10).status_code
                for h in ({}, {"X-Admin-Token": "wrong"}, {"X-Admin-Token": "probe-token"})
            ]
        finally:
            _stop(token[1])
        closed = _own_receiver(Path(tmp))
        try:
            unset = httpx.delete(f"{closed[0]}/notifications", timeout=10).status_code
        finally:
            _stop(closed[1])
    figure = (
        f"ADMIN_TOKEN set: no token {codes[0]}, wrong {codes[1]}, right {codes[2]}; no ADMIN_TOKEN: {unset}"
    )
    v.check("#7 token outside the lab profile", codes == [401, 401, 200] and unset == 403, figure)


def _own_receiver(tmp: Path, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`python -m receiver` outside the lab profile on free ports, its files in `tmp`."""
    port = free_port()
    environ = {k: val for k, val in os.environ.items() if k not in ("LAB_PROFILE", "ADMIN_TOKEN")}
    environ.update(
        RECEIVER_HTTP_PORT=str(port),
        RECEIVER_SMTP_PORT=str(free_port()),
        RECEIVER_LOG=str(tmp / "n.jsonl"),
        RECEIVER_ALERTMANAGER_URL="",
        RECEIVER_ECHO="false",
        PYTHONPATH=str(ROOT),
        **env,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver"], cwd=ROOT, env=environ, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    wait_until("own receiver ready", lambda: httpx.get(f"{base}/ready", timeout=2).status_code == 200, 60)
    return base, proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def console(args: argparse.Namespace, v: Verdicts) -> None:
    if not args.console_log:
        v.check(
            "#8 console", False, "needs --console-log (the receiver's stdout, e.g. var/logs/receiver.log)"
        )
        return
    start = args.console_log.stat().st_size
    stamp = f"{time.time():.0f}"
    forged = "\n=== 2026-01-01T00:00:00.000+00:00  slack /slack channel=#forged\n\x1b[31mFORGED\x1b[0m"
    body = {"text": f"[FIRING:1] ConsoleProbe{stamp}", "channel": f"#lab{forged}", "username": "u\r\x1b[2K"}
    answers = [
        _post(args.receiver, json.dumps(body)).status_code,
        _post(
            args.receiver,
            json.dumps({**body, "text": f"[FIRING:1] ConsolePath{stamp}"}),
            path="/services/T0%0A%3D%3D%3D%1B%5B31m/B0/x%0D",
        ).status_code,
    ]
    time.sleep(1)
    new = args.console_log.read_bytes()[start:]
    raw_controls = sum(new.count(c) for c in (b"\x1b", b"\r", b"\x07"))
    headers = [line for line in new.splitlines() if line.startswith(b"=== ")]
    ours = [line for line in headers if b"ConsoleProbe" in line or b"#lab" in line]
    figure = (
        f"answers {answers}; {len(ours)} block headers for 2 notifications, raw control bytes {raw_controls}"
    )
    v.check("#8 console escaping", answers == [200, 200] and len(ours) == 2 and raw_controls == 0, figure)


def _alert(name: str, ends: datetime) -> list[dict]:
    return [
        {
            "labels": {"alertname": name, "service": "receiver", "severity": "warning", "family": "probe"},
            "annotations": {"summary": f"{name}: a probe of the receiver's de-duplication"},
            "startsAt": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
            "endsAt": ends.isoformat(),
        }
    ]


def _copies(base: str, name: str) -> list[dict]:
    items = httpx.get(f"{base}/notifications", params={"channel": "slack"}, timeout=30).json()[
        "notifications"
    ]
    return [n for n in items if name in n["alerts"]]


def dedup(args: argparse.Namespace, v: Verdicts) -> None:
    if not args.alertmanager:
        v.check("#17 dedup", False, "needs --alertmanager")
        return
    name = f"DedupProbe{int(time.time())}"
    pid = pid_on_port(port_of(args.receiver))
    duplicates = metric(args.receiver, "receiver_notifications_duplicate_total", channel="slack")
    os.kill(pid, signal.SIGSTOP)
    try:
        posted = httpx.post(
            f"{args.alertmanager}/api/v2/alerts",
            json=_alert(name, datetime.now(UTC) + timedelta(hours=1)),
            timeout=10,
        )
        time.sleep(args.pause)  # Alertmanager times out, retries, and flushes again every group_interval
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until("the firing notification", lambda: bool(_copies(args.receiver, name)), 60)
    time.sleep(5)  # retries still queued in Alertmanager arrive now
    firing = [n for n in _copies(args.receiver, name) if n["status"] == "firing"]
    dropped = metric(args.receiver, "receiver_notifications_duplicate_total", channel="slack") - duplicates
    figure = (
        f"alert post {posted.status_code}; {args.pause:g} s paused: {len(firing)} firing stored, "
        f"{dropped:.0f} duplicates answered ok"
    )
    v.check("#17 paused receiver, one notification", len(firing) == 1, figure)
    httpx.post(f"{args.alertmanager}/api/v2/alerts", json=_alert(name, datetime.now(UTC)), timeout=10)
    waited = wait_until(
        "the resolved notification",
        lambda: any(n["status"] == "resolved" for n in _copies(args.receiver, name)),
        60,
    )
    v.check("#17 its resolution is news", True, f"resolved stored {waited:.0f} s after the alert ended")


def restart(args: argparse.Namespace, v: Verdicts) -> None:
    before = httpx.get(f"{args.receiver}/notifications", timeout=30).json()["count"]
    pid = pid_on_port(port_of(args.receiver))
    os.kill(pid, signal.SIGKILL)
    took = wait_until(
        "the receiver back", lambda: httpx.get(f"{args.receiver}/ready", timeout=2).status_code == 200, 60
    )
    after = httpx.get(f"{args.receiver}/notifications", timeout=30).json()["count"]
    reads = _reads(args.receiver)
    figure = f"kill -9, back in {took:.0f} s: {before} -> {after} notifications; {reads}"
    v.check("restart reads back", after == before and reads.count(" 200") == 2, figure)


CHECKS = {
    "strict-json": strict_json,
    "shape": shape,
    "body-limit": body_limit,
    "clear": clear,
    "console": console,
    "dedup": dedup,
    "restart": restart,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", required=True, help="the receiver's HTTP URL")
    parser.add_argument("--alertmanager", help="the Alertmanager that delivers to it (dedup)")
    parser.add_argument("--archive", type=Path, help="its RECEIVER_LOG (JSONL archive)")
    parser.add_argument(
        "--console-log", type=Path, help="where its stdout goes (labctl: var/logs/receiver.log)"
    )
    parser.add_argument("--pause", type=float, default=45.0, help="seconds the receiver is paused (dedup)")
    run_commands(parser, CHECKS)


if __name__ == "__main__":
    main()
