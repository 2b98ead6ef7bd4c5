"""Issue 11's reproductions (ml_api, rag_api, lab_common, labctl findings) against a running lab: PASS or
FAIL and the figure for each.

    python -m benchmarks.reliability --ml URL --rag URL [--receiver URL] [--token T] [CHECK ...]
    python -m benchmarks.reliability ctrl-c

CHECK (default: all but ctrl-c): faults (#1), sleeps (#2), bursts (200 concurrent /predict, the issue's
baseline), token (#3), batches (#10), heads (#13), report (#14), series (#15), small (#17). `ctrl-c` (#18)
starts a lab of its own on free ports, piped through tee, sends SIGINT to the process group as a terminal's
Ctrl-C does and checks that nothing is left. --token is the lab's ADMIN_TOKEN (leave it out for a lab
profile without one). Faults are switched on for seconds and cleared after; sleeps, bursts, batches and
report load ml_api for 15-60 s each. Exit status 1 if any check FAILs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.ml_reliability import batches, drift_report, samples
from lab_common.endpoints import Ports
from lab_common.metrics import UNMATCHED
from labctl.status import read_state
from labctl.wait import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[1]
TICKET = {"ticket_length": 640, "urgency_keywords": 2, "business_impact": 6.5, "customer_tier": 3}
JSON = {"content-type": "application/json"}
RESULTS: list[bool] = []


@dataclass
class Lab:
    ml: str
    rag: str
    receiver: str | None
    token: str | None

    def admin(self) -> dict[str, str]:
        return {"X-Admin-Token": self.token} if self.token else {}


def verdict(finding: str, ok: bool, figure: str) -> None:
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} #{finding}: {figure}", flush=True)


def serving_calls(lab: Lab) -> list[tuple[str, dict]]:
    return [
        (f"{lab.ml}/predict", TICKET),
        (f"{lab.ml}/predict/batch", {"tickets": [TICKET] * 3}),
        (f"{lab.ml}/triage", {**TICKET, "text": "the login page times out"}),
        (f"{lab.rag}/chat", {"query": "How do I reset my password?", "evaluate": "off"}),
    ]


def server_errors(base: str, prefix: str) -> float:
    """5xx answers the service has counted so far."""
    counts = samples(base, f"{prefix}_http_requests_total")
    return sum(v for labels, v in counts.items() if labels.split(",")[-1].startswith("5"))


def rss_mb(base: str) -> float:
    return samples(base, "process_resident_memory_bytes").get("", float("nan")) / 2**20


# ------------------------------------------------------------------------------------- #1 typed parameters

BAD_PARAMS = {
    "delay_ms": ['"abc"', "NaN", "9" * 400, "true", "-1", "1e12"],
    "rate": ['"0.5"', "NaN", "true", "1.5", "[1]"],
}
FAULTS = {"ml": {"latency": "delay_ms", "errors": "rate"},
          "rag": {"latency": "delay_ms", "hallucination": "rate", "evaluation_failure": "rate"}}  # fmt: skip


def check_faults(lab: Lab) -> None:
    """Each bad value of each fault's parameter, then the serving calls while whatever was accepted is on."""
    answers: list[str] = []
    later: list[int] = []
    with httpx.Client(timeout=60, headers=lab.admin()) as client:
        for service, faults in FAULTS.items():
            base = getattr(lab, service)
            for fault, param in faults.items():
                for value in BAD_PARAMS[param] + ['0.5, "extra": 1']:
                    body = f'{{"duration_seconds": 5, "params": {{"{param}": {value}}}}}'
                    r = client.post(f"{base}/admin/faults/{fault}", content=body, headers=JSON)
                    fields = [e.get("field") for e in r.json()["detail"]] if r.status_code == 422 else []
                    answers.append(f"{r.status_code} {','.join(fields)}")
                    if r.status_code == 200:  # accepted: what do the serving calls answer now?
                        later += [_answer(client, "POST", url, json=b) for url, b in serving_calls(lab)]
                    client.delete(f"{base}/admin/faults/all")
    refused = sum(a.startswith("422 params.") for a in answers)
    ok = refused == len(answers) and not later
    figure = (
        f"{refused}/{len(answers)} bad fault parameters -> 422 naming params.<field>; serving calls while an "
        f"accepted one was on: {dict(sorted(Counter(later).items()))}"
    )
    verdict("1", ok, figure)


def _answer(client: httpx.Client, method: str, url: str, **kwargs: Any) -> int:
    """The answer's status; 0 when there was none (a request that hangs, a connection the server reset)."""
    try:
        return client.request(method, url, timeout=10, **kwargs).status_code
    except httpx.HTTPError:
        return 0


# --------------------------------------------------------------------------------- #2 sleeps end with faults


async def _burst(lab: Lab, n: int, fault_seconds: float | None, delete_after: float | None) -> float:
    """n concurrent /predict, under a 60 s latency fault that lasts `fault_seconds` (None: no fault) or is
    deleted after `delete_after` s: the seconds until the last answer, inf if one was not a 200."""
    limits = httpx.Limits(max_connections=n + 1)
    async with httpx.AsyncClient(timeout=180, limits=limits, headers=lab.admin()) as client:
        started = time.monotonic()
        if fault_seconds is not None:
            body = {"duration_seconds": fault_seconds, "params": {"delay_ms": 60_000}}
            (await client.post(f"{lab.ml}/admin/faults/latency", json=body)).raise_for_status()
        posts = (client.post(f"{lab.ml}/predict", json=TICKET) for _ in range(n))
        answers = asyncio.gather(*posts, return_exceptions=True)
        if delete_after is not None:
            await asyncio.sleep(delete_after)
            await client.delete(f"{lab.ml}/admin/faults/latency")
        statuses = {getattr(r, "status_code", 0) for r in await answers}  # 0: no answer in time
        last = time.monotonic() - started
        await client.delete(f"{lab.ml}/admin/faults/all")
    return last if statuses == {200} else float("inf")


def check_sleeps(lab: Lab, n: int = 1000) -> None:
    """A burst of n concurrent /predict takes seconds here without any fault (the client's own cost), so
    each burst under a fault is compared with one without: the overrun past the fault's end must stay far
    below the 60 s the requests were told to sleep."""
    with httpx.Client(timeout=30, headers=lab.admin()) as client:
        huge = client.post(f"{lab.ml}/admin/faults/latency", json={"params": {"delay_ms": 1e12}})
        client.delete(f"{lab.ml}/admin/faults/all")  # where it was accepted
    before = rss_mb(lab.ml)
    baseline = asyncio.run(_burst(lab, n, None, None))
    expired = asyncio.run(_burst(lab, n, 5, None)) - 5 - baseline
    deleted = asyncio.run(_burst(lab, n, 120, 3)) - 3 - baseline
    after = rss_mb(lab.ml)
    ok = huge.status_code == 422 and expired < 10 and deleted < 10 and after < before + 100
    figure = (
        f"delay_ms 1e12 -> {huge.status_code}; {n} concurrent /predict take {baseline:.1f} s with no fault; "
        f"under a 60 s delay they end {expired:+.1f} s past that after a 5 s fault expires, "
        f"{deleted:+.1f} s after it is deleted at 3 s; ml_api RSS {before:.0f} -> {after:.0f} MB"
    )
    verdict("2", ok, figure)


def check_bursts(lab: Lab, size: int = 200, bursts: int = 10) -> None:
    """The issue's baseline: bursts of `size` concurrent /predict stay at 0 x 5xx with flat series and RSS."""
    before = (rss_mb(lab.ml), _series(lab.ml), server_errors(lab.ml, "ml"))
    seconds = [asyncio.run(_burst(lab, size, None, None)) for _ in range(bursts)]
    after = (rss_mb(lab.ml), _series(lab.ml), server_errors(lab.ml, "ml"))
    ok = all(s != float("inf") for s in seconds) and after[2] == before[2] and after[1] == before[1]
    verdict("bursts", ok, f"{bursts} bursts of {size} concurrent /predict (slowest {max(seconds):.1f} s): "
            f"5xx +{after[2] - before[2]:.0f}; ml_api RSS {before[0]:.0f} -> {after[0]:.0f} MB, "
            f"series {before[1]} -> {after[1]}")  # fmt: skip


# --------------------------------------------------------------------------------------- #3 the admin token


def admin_operations(base: str) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation taking X-Admin-Token in the service's schema."""
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    return [
        (method.upper(), path.replace("{name}", "latency"))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if any(p.get("name") == "x-admin-token" for p in operation.get("parameters", []))
    ]


def check_token(lab: Lab, rounds: int = 20) -> None:
    tokens = [b"\xe9", "s3cr\u00e9t".encode(), b"\xff\xfe", b"\xc3("]
    prefixes = {lab.ml: "ml", lab.rag: "rag"}
    errors_before = {base: server_errors(base, p) for base, p in prefixes.items()}
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=30) as client:
        for base in prefixes:
            operations = admin_operations(base)
            for i in range(rounds):
                method, path = operations[i % len(operations)]
                token = tokens[i % len(tokens)]
                status = _answer(client, method, base + path, headers={"X-Admin-Token": token})
                statuses[status] = statuses.get(status, 0) + 1
    added = {p: server_errors(base, p) - errors_before[base] for base, p in prefixes.items()}
    ok = set(statuses) == {401} and not any(added.values())
    verdict("3", ok, f"non-ASCII X-Admin-Token on every admin route of both services: {statuses}; "
            f"5xx counted meanwhile {added}")  # fmt: skip


# --------------------------------------------------------------------------------- #10 batches, #14 report


def check_batches(lab: Lab, seconds: float = 15, clients: int = 4) -> None:
    sent, observed, dropped = batches(lab.ml, seconds, clients)
    # A lab's own traffic adds observations, so `observed` may exceed what this check sent.
    ok = observed >= sent and not any(dropped.values())
    verdict("10", ok, f"{clients} clients x 1,000-ticket batches for {seconds:.0f}s: {sent} tickets "
            f"answered, {observed:.0f} observations added, dropped counter {dropped}")  # fmt: skip


def check_report(lab: Lab, seconds: float = 15, clients: int = 4) -> None:
    alone, loaded, answers, outcomes = drift_report(lab.ml, seconds, clients)
    built = outcomes.get("built", 0.0)
    ok = all(s < 500 for s in answers) and built < len(answers) and loaded <= max(5 * alone, alone + 50)
    verdict("14", ok, f"/predict p99 {alone:.1f} ms alone, {loaded:.1f} ms with {clients} /drift/report "
            f"callers; {len(answers)} reports answered, {built:.0f} built ({outcomes})")  # fmt: skip


# ---------------------------------------------------------------------------------------- #13 request heads


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _raw(url: str, head: bytes, chunk: int = 1 << 20) -> tuple[bytes, float]:
    """Send `head` (as far as the server reads it) and return its answer and the seconds until it closed."""
    started = time.monotonic()
    with socket.create_connection(_address(url), timeout=60) as sock:
        with contextlib.suppress(OSError):  # the server answers and closes before it has read it all
            for i in range(0, len(head), chunk):
                sock.sendall(head[i : i + chunk])
        answer = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
    return answer, time.monotonic() - started


def _status(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1")[9:12] or "closed"


def check_heads(lab: Lab) -> None:
    servers = {"ml_api": lab.ml, "rag_api": lab.rag, **({"receiver": lab.receiver} if lab.receiver else {})}
    request = b"GET /health HTTP/1.1\r\nHost: lab\r\n"
    for name, url in servers.items():
        huge, _ = _raw(url, request + b"X-Big: " + b"a" * 50 * 2**20 + b"\r\n\r\n")
        before = rss_mb(url)
        with contextlib.ExitStack() as stack:  # 5 unfinished 40 MB headers held open at once
            socks = [stack.enter_context(socket.create_connection(_address(url))) for _ in range(5)]
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(request + b"X-Big: " + b"a" * 40 * 2**20)
            held = rss_mb(url)
        _, silent_for = _raw(url, request)  # a head that never ends
        ok = _status(huge) == "431" and held < before + 50 and silent_for < 55
        figure = (
            f"{name}: 50 MB header -> {_status(huge)}; RSS {before:.0f} -> {held:.0f} MB with 5 unfinished "
            f"40 MB headers; an unfinished head closed after {silent_for:.1f} s"
        )
        verdict("13", ok, figure)


# ------------------------------------------------------------------------------------ #15 bounded series

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
# Sweeping these would act (reindex, forget the drift window) wherever the admin routes are open.
SIDE_EFFECTS = {"/knowledge/reload", "/drift/reset"}
PROBES = {"/health", "/ready", "/metrics"}


def _series(base: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _served(base: str) -> dict[str, set[str]]:
    """Route template -> the methods its schema lists."""
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    return {path: {method.upper() for method in operations} for path, operations in paths.items()}


def _sweep(base: str, served: dict[str, set[str]], seed: int) -> None:
    rng = random.Random(seed)
    letters = string.ascii_lowercase + "/"
    paths = {p.replace("{name}", "x") for p in served}
    paths |= {"/" + "".join(rng.choices(letters, k=rng.randint(1, 20))) for _ in range(60)}
    with httpx.Client(timeout=60) as client:
        for path in sorted(paths - SIDE_EFFECTS - {"/metrics"}):
            for method in METHODS:
                _answer(client, method, base + path)


def _unserved_pairs(base: str, prefix: str, served: dict[str, set[str]]) -> list[str]:
    """(endpoint, method) label pairs of the latency histogram for a method its route does not serve
    (HEAD on the probes and GET on the pages outside the schema, /docs and such, are served)."""
    pairs = samples(base, f"{prefix}_http_request_duration_seconds_count")
    unserved = []
    for pair in pairs:
        endpoint, method = pair.rsplit(",", 1)
        allowed = served.get(endpoint, {"GET"}) | ({"HEAD"} if endpoint in PROBES else set())
        if endpoint != UNMATCHED and method not in allowed:
            unserved.append(pair)
    return sorted(unserved)


def check_series(lab: Lab) -> None:
    for name, base, prefix in (("ml_api", lab.ml, "ml"), ("rag_api", lab.rag, "rag")):
        served = _served(base)
        before = _series(base)
        _sweep(base, served, seed=1)
        first = _series(base)
        _sweep(base, served, seed=2)  # other random paths: nothing new may appear
        second = _series(base)
        unserved = _unserved_pairs(base, prefix, served)
        ok = second == first and not unserved
        figure = (
            f"{name}: series {before} -> {first} after a sweep of every route and 60 random paths x "
            f"{len(METHODS)} methods -> {second} after a second one; histograms for unserved (route, method) "
            f"pairs: {len(unserved)} {unserved[:3]}"
        )
        verdict("15", ok, figure)


# ---------------------------------------------------------------------------------------- #17 small ones


def check_small(lab: Lab) -> None:
    with httpx.Client(timeout=30, headers=lab.admin()) as client:
        malformed = client.post(f"{lab.ml}/predict", content=b'{"ticket_length": 640,', headers=JSON)
        fields = [e["field"] for e in malformed.json()["detail"]] if malformed.status_code == 422 else []
        durations = {}
        for value in ('"60"', "true"):
            body = f'{{"duration_seconds": {value}, "params": {{"delay_ms": 5}}}}'
            r = client.post(f"{lab.ml}/admin/faults/latency", content=body, headers=JSON)
            durations[value] = (
                f"{r.status_code} {r.json()['detail'][0]['field'] if r.status_code == 422 else ''}"
            )
        client.delete(f"{lab.ml}/admin/faults/all")
        probes = [(name, base, path) for name, base in (("ml", lab.ml), ("rag", lab.rag))
                  for path in ("/health", "/ready", "/metrics")]  # fmt: skip
        heads = {f"{name}{path}": client.head(base + path).status_code for name, base, path in probes}
    ok = (
        (malformed.status_code, fields) == (422, ["body"])
        and all(d == "422 duration_seconds" for d in durations.values())
        and set(heads.values()) == {200}
    )
    verdict("17", ok, f"malformed JSON -> {malformed.status_code} field {fields}; duration_seconds "
            f"{durations}; HEAD {heads}")  # fmt: skip


# ------------------------------------------------------------------------------ #18 Ctrl-C under `| tee`


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]  # fmt: skip


def check_ctrl_c() -> None:
    ports = Ports.free()
    pids: list[int] = []
    with tempfile.TemporaryDirectory(prefix="reliability-lab-") as tmp:
        env = {**os.environ, "LABCTL_VAR": f"{tmp}/var", "LOG_LEVEL": "WARNING", **ports.env()}
        log, state_file = Path(tmp) / "lab.log", Path(tmp) / "var" / "labctl.json"
        labctl = f"{sys.executable} -m labctl up --no-traffic --no-grafana"
        shell = subprocess.Popen(  # its own process group: the terminal's foreground job
            ["sh", "-c", f"{labctl} 2>&1 | tee {log} >/dev/null"], cwd=ROOT, env=env, start_new_session=True
        )
        try:
            wait_until(
                lambda: "The lab is up" in log.read_text(errors="replace"),
                timeout=300,
                what="the lab's banner",
                retry_on=(OSError,),
            )
            state = read_state(state_file) or {}
            pids = [c["pid"] for c in state.get("children", {}).values() if c.get("pid")]
            os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C reaches labctl and tee at once
            with contextlib.suppress(WaitTimeout):
                wait_until(lambda: not _alive(pids), timeout=30)
            left = _alive(pids)
            taken = [p for p in ports.as_dict().values() if p != ports.grafana and _listening(p)]
            stale = state_file.exists()
        finally:
            for pgid in [shell.pid, *pids]:  # nothing left behind, even by a failed run
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            shell.wait(10)
    figure = (
        f"labctl up | tee, Ctrl-C: {len(pids)} lab processes, {len(left)} left running {left}, "
        f"ports still taken {taken}, state file left {stale}"
    )
    verdict("18", bool(pids) and not left and not taken and not stale, figure)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


CHECKS: dict[str, Callable[[Lab], None]] = {
    "faults": check_faults,
    "sleeps": check_sleeps,
    "bursts": check_bursts,
    "token": check_token,
    "batches": check_batches,
    "heads": check_heads,
    "report": check_report,
    "series": check_series,
    "small": check_small,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checks", nargs="*", help=f"{', '.join(CHECKS)}, ctrl-c (default: all but ctrl-c)")
    parser.add_argument("--ml", help="ml_api base URL")
    parser.add_argument("--rag", help="rag_api base URL")
    parser.add_argument("--receiver", help="receiver base URL (#13 checks it too when given)")
    parser.add_argument("--token", default=os.environ.get("ADMIN_TOKEN"), help="default $ADMIN_TOKEN")
    args = parser.parse_args()
    names = args.checks or list(CHECKS)
    if unknown := set(names) - {*CHECKS, "ctrl-c"}:
        parser.error(f"unknown checks: {sorted(unknown)}")
    if "ctrl-c" in names:
        check_ctrl_c()
        names.remove("ctrl-c")
    if names:
        if not (args.ml and args.rag):
            parser.error("--ml and --rag are needed for " + ", ".join(names))
        lab = Lab(args.ml.rstrip("/"), args.rag.rstrip("/"), args.receiver and args.receiver.rstrip("/"),
                  args.token)  # fmt: skip
        for name in names:
            CHECKS[name](lab)
    print(f"{sum(RESULTS)} of {len(RESULTS)} passed")
    sys.exit(0 if all(RESULTS) else 1)


if __name__ == "__main__":
    main()
