"""The alert receiver, started for real (`python -m receiver`) on free ports: Slack webhook, SMTP, fault,
and the reliability findings of issue 11 (4-8, 17): each test below failed on the receiver before the fix."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.console import block, printable
from receiver.parse import alert_names, alert_status, slack_texts
from tests.support.receiver import AM_SLACK, Receiver, jsonl, start_receiver, stop


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = start_receiver(tmp_path)
    yield rec
    stop(rec)


def test_slack_webhook_is_recorded_listed_and_logged(receiver: Receiver) -> None:
    with receiver.client() as client:
        response = client.post("/slack", json=AM_SLACK)
        assert response.status_code == 200
        assert response.text == "ok"
        # A real hooks URL shape works too, and so does Slack's form encoding.
        hook = client.post("/services/T000/B000/XXXX", json={"text": "[RESOLVED] RAGSlowAnswers"})
        assert (hook.status_code, hook.text) == (200, "ok")
        form = client.post("/slack", data={"payload": json.dumps({"text": "alertname=MLDatasetDrift"})})
        assert form.status_code == 200

        listed = client.get("/notifications", params={"channel": "slack"}).json()
    assert listed["count"] == 3
    first, second, third = listed["notifications"]
    assert first["channel"] == "slack"
    assert first["slack_channel"] == "#lab-alerts"
    assert first["alerts"] == ["MLHighErrorRate"]
    assert first["status"] == "firing"
    assert first["payload"] == AM_SLACK
    assert second["path"] == "/services/T000/B000/XXXX"
    assert (second["alerts"], second["status"]) == (["RAGSlowAnswers"], "resolved")
    assert third["alerts"] == ["MLDatasetDrift"]

    logged = jsonl(receiver.log)
    assert [item["alerts"] for item in logged] == [
        ["MLHighErrorRate"],
        ["RAGSlowAnswers"],
        ["MLDatasetDrift"],
    ]
    assert all(item["channel"] == "slack" and item["received_at"] for item in logged)


def test_bad_slack_payloads_are_refused_like_slack(receiver: Receiver) -> None:
    with receiver.client() as client:
        bad = client.post("/slack", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.text.startswith("invalid_payload")
        not_object = client.post("/slack", json=["a", "list"])
        assert not_object.status_code == 400 and not_object.text.startswith("invalid_payload")
        empty = client.post("/slack", json={"channel": "#x"})
        assert (empty.status_code, empty.text) == (400, "no_text")
        assert client.get("/notifications").json()["count"] == 0
    assert not receiver.log.exists() or receiver.log.read_text() == ""
    assert receiver.metric("receiver_notifications_rejected_total", reason="invalid_json") == 1
    assert receiver.metric("receiver_notifications_rejected_total", reason="no_text") == 1


def test_email_is_parsed_and_recorded(receiver: Receiver) -> None:
    receiver.send_mail("[FIRING:2] RAGHallucinationRate (rag-api warning)", "Groundedness p50 below 0.6")
    with receiver.client() as client:
        emails = client.get("/notifications", params={"channel": "email"}).json()["notifications"]
        assert client.get("/notifications", params={"channel": "slack"}).json()["count"] == 0
    assert len(emails) == 1
    mail = emails[0]
    assert mail["subject"] == "[FIRING:2] RAGHallucinationRate (rag-api warning)"
    assert mail["to"] == ["oncall@lab.local"]
    assert mail["from"] == "alertmanager@lab.local"
    assert "Groundedness p50 below 0.6" in mail["body"]
    assert "<p>Groundedness p50 below 0.6</p>" in mail["html"]
    assert (mail["alerts"], mail["status"]) == (["RAGHallucinationRate"], "firing")
    assert jsonl(receiver.log)[0]["subject"] == mail["subject"]


def test_since_filter_and_clear(receiver: Receiver) -> None:
    with receiver.client() as client:
        client.post("/slack", json={"text": "[FIRING:1] Early"})
        time.sleep(0.05)
        cut = time.time()
        time.sleep(0.05)
        client.post("/slack", json={"text": "[FIRING:1] Late"})

        after = client.get("/notifications", params={"since": str(cut)}).json()["notifications"]
        assert [n["alerts"] for n in after] == [["Late"]]
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut - 3600)) + "Z"
        assert client.get("/notifications", params={"since": iso}).json()["count"] == 2
        for bad in ("yesterday", "nan", "inf"):
            invalid = client.get("/notifications", params={"since": bad})
            assert invalid.status_code == 422 and invalid.json()["detail"][0]["field"] == "since"
        assert client.get("/notifications", params={"channel": "pager"}).status_code == 422

        assert client.delete("/notifications").json() == {"cleared": 2}
        assert client.get("/notifications").json()["count"] == 0


def test_fail_window_answers_500_while_email_still_delivers(receiver: Receiver) -> None:
    with receiver.client() as client:
        assert client.post("/admin/fail", json={"seconds": 3}).json()["failing_for_seconds"] > 0
        failed = client.post("/slack", json={"text": "[FIRING:1] DuringFault"})
        assert failed.status_code == 500
        receiver.send_mail("[FIRING:1] DuringFault", "mail goes through while Slack fails")
        assert client.get("/admin/fail").json()["rejected"] == 1

        deadline = time.monotonic() + 10
        while client.get("/admin/fail").json()["failing_for_seconds"] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        retried = client.post("/slack", json={"text": "[FIRING:1] DuringFault"})
        assert (retried.status_code, retried.text) == (200, "ok")

        channels = [n["channel"] for n in client.get("/notifications").json()["notifications"]]
    # The refused webhook call is not a notification; the mail and the retry are.
    assert channels == ["email", "slack"]
    with receiver.client() as client:
        assert client.post("/admin/fail", json={"seconds": -1}).status_code == 422


def test_fail_from_env_history_survives_restart_and_stdout_blocks(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path, RECEIVER_FAIL_SECONDS="60")
    try:
        with rec.client() as client:
            assert client.post("/slack", json=AM_SLACK).status_code == 500
            client.post("/admin/fail", json={"seconds": 0})
            assert client.post("/slack", json=AM_SLACK).status_code == 200
    finally:
        out = stop(rec)
    assert "slack /slack channel=#lab-alerts" in out
    assert "FIRING   MLHighErrorRate" in out

    assert alerts_kept_across_a_restart(tmp_path) == [["MLHighErrorRate"]]


def alerts_kept_across_a_restart(tmp_path: Path) -> list[list[str]]:
    """The alerts of each notification a fresh receiver on the same directory reads back from its store."""
    again = start_receiver(tmp_path)
    try:
        with again.client() as client:
            return [n["alerts"] for n in client.get("/notifications").json()["notifications"]]
    finally:
        stop(again)


def test_alert_name_parsing() -> None:
    assert alert_names("[FIRING:3] A_b (x)", "[RESOLVED] C:d") == ["A_b", "C:d"]
    assert alert_names('labels: alertname="MLDrift", severity=warning') == ["MLDrift"]
    assert alert_names("nothing here") == []
    assert alert_status("[FIRING:1] A", "[RESOLVED] B") == "mixed"
    assert alert_status("no status") is None
    blocks = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "[FIRING:1] FromBlocks"}}]}
    assert alert_names(*slack_texts(blocks)) == ["FromBlocks"]


# ---------------------------------------------------------------- issue 11, finding 4: strict JSON


# 1e999 is JSON by the grammar, but Python reads it as inf: stored, it made every later write and read fail.
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999", "-1.5e400"])
def test_non_json_numbers_are_refused_and_never_stored(receiver: Receiver, constant: str) -> None:
    body = '{"text": "[FIRING:1] Nan", "attachments": [{"text": "x", "value": CONSTANT}]}'
    body = body.replace("CONSTANT", constant)
    with receiver.client() as client:
        refused = client.post("/slack", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 400, refused.text
        listed = client.get("/notifications")
    assert listed.status_code == 200 and listed.json()["count"] == 0


def test_a_bad_archive_line_does_not_break_reading(tmp_path: Path) -> None:
    good = {"channel": "slack", "received_at": "2026-01-01T00:00:00+00:00", "received_at_epoch": 1.0}
    good |= {"alerts": ["Kept"], "status": "firing", "payload": {"text": "[FIRING:1] Kept"}}
    lines = [
        json.dumps(good),
        '{"channel": "slack", "received_at": "x", "received_at_epoch": NaN, "payload": {"text": "a"}}',
        '{"channel": "slack", "received_at": "x", "received_at_epoch": 2, "payload": {"text": NaN}}',
        '{"channel": "slack", "received_at": "x", "received_at_epoch": 1e999, "payload": {"text": "a"}}',
        '{"channel": "pager", "received_at": "x", "received_at_epoch": 3}',
        '{"channel": "slack", "received_at": "x", "received_at_epoch": 4, "alerts": 5, "payload": {}}',
        '{"channel": "slack", "received_at": "x", "received_at_epoch": 5, "payload": {"attachments": 5}}',
        '["not", "an", "object"]',
        '{"torn": ',
    ]
    (tmp_path / "notifications.jsonl").write_text("\n".join(lines) + "\n")
    rec = start_receiver(tmp_path)
    try:
        with rec.client() as client:
            listed = client.get("/notifications")
            assert listed.status_code == 200, listed.text
            assert [n["alerts"] for n in listed.json()["notifications"]] == [["Kept"]]
            assert client.get("/inbox").status_code == 200
        assert rec.metric("receiver_archive_bad_lines_total") == len(lines) - 1
    finally:
        stop(rec)


# ---------------------------------------------------------------- finding 5: the payload's shape


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "x", "attachments": 5}, "attachments"),
        ({"text": "x", "blocks": 5}, "blocks"),
        ({"text": "x", "attachments": [{"text": "y", "fields": 5}]}, "attachments.0.fields"),
        ({"text": "x", "attachments": [5]}, "attachments.0"),
        ({"text": 5}, "text"),
        ({"text": "x", "attachments": [{"title": ["a"]}]}, "attachments.0.title"),
    ],
)
def test_wrong_payload_shapes_are_400_naming_the_field(receiver: Receiver, payload: dict, field: str) -> None:
    with receiver.client() as client:
        response = client.post("/slack", json=payload)
        assert response.status_code == 400, response.text
        assert response.text.startswith(f"invalid_payload: {field}:"), response.text
        assert client.get("/notifications").json()["count"] == 0


def test_deep_nesting_is_400_not_a_recursion_error(receiver: Receiver) -> None:
    with receiver.client() as client:
        for depth in (40, 5_000, 200_000):
            body = '{"text": "x", "blocks": [' + "[" * depth + "]" * depth + "]}"
            response = client.post("/slack", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (depth, response.status_code, response.text[:200])
            assert response.text.startswith("invalid_payload: nested deeper than"), response.text[:200]
        assert client.post("/slack", json={"text": "[FIRING:1] StillServing"}).status_code == 200


# ---------------------------------------------------------------- finding 6: bounds, in memory and on disk


def test_oversized_bodies_are_413_and_not_kept(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path, MAX_BODY_BYTES="65536")
    try:
        big = {"text": "[FIRING:1] Big " + "x" * 70_000}
        with rec.client() as client:
            assert client.post("/slack", json=big).status_code == 413

            def chunks():
                yield b'{"text": "'
                for _ in range(100):
                    yield b"y" * 1024
                yield b'"}'

            streamed = client.post("/slack", content=chunks(), headers={"content-type": "application/json"})
            assert streamed.status_code == 413
            assert client.get("/notifications").json()["count"] == 0
        assert not rec.log.exists() or rec.log.stat().st_size == 0
    finally:
        stop(rec)


def test_inbox_and_archive_are_bounded_and_what_they_drop_is_counted(tmp_path: Path) -> None:
    bounds = {"RECEIVER_MAX_KEPT": "5", "RECEIVER_LOG_MAX_BYTES": "4096", "RECEIVER_LOG_BACKUPS": "2"}
    rec = start_receiver(tmp_path, **bounds)
    try:
        with rec.client() as client:
            for n in range(40):
                payload = {"text": f"[FIRING:1] Bound{n} " + "z" * 400}
                assert client.post("/slack", json=payload).status_code == 200
            listed = client.get("/notifications").json()["notifications"]
        assert [n["alerts"] for n in listed] == [[f"Bound{n}"] for n in range(35, 40)]
        assert rec.metric("receiver_notifications_evicted_total", place="inbox") == 35
        files = sorted(tmp_path.glob("notifications.jsonl*"))
        assert [f.name for f in files] == [f"notifications.jsonl{end}" for end in ("", ".1", ".2")]
        assert all(f.stat().st_size <= 4096 for f in files)
        on_disk = sum(len(jsonl(f)) for f in files)
        assert on_disk + rec.metric("receiver_notifications_evicted_total", place="archive") == 40
    finally:
        stop(rec)
    # A restart reads the rotated files too, within the same bound.
    again = start_receiver(tmp_path, RECEIVER_MAX_KEPT="5")
    try:
        with again.client() as client:
            kept = client.get("/notifications").json()["notifications"]
        assert [n["alerts"] for n in kept] == [[f"Bound{n}"] for n in range(35, 40)]
    finally:
        stop(again)


# ---------------------------------------------------------------- finding 7: clearing keeps the archive


def test_clear_keeps_the_archive_and_survives_a_restart(receiver: Receiver, tmp_path: Path) -> None:
    with receiver.client() as client:
        client.post("/slack", json={"text": "[FIRING:1] BeforeClear"})
        assert client.delete("/notifications").json() == {"cleared": 1}
        client.post("/slack", json={"text": "[FIRING:1] AfterClear"})
        assert [n["alerts"] for n in client.get("/notifications").json()["notifications"]] == [["AfterClear"]]
    archived = [item.get("alerts") for item in jsonl(receiver.log) if "alerts" in item]
    assert archived == [["BeforeClear"], ["AfterClear"]]
    stop(receiver)
    assert alerts_kept_across_a_restart(tmp_path) == [["AfterClear"]]


def test_clear_and_fail_need_the_admin_token_outside_the_lab_profile(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path, LAB_PROFILE="false", ADMIN_TOKEN="s3cret")
    try:
        with rec.client() as client:
            client.post("/slack", json={"text": "[FIRING:1] Guarded"})
            assert client.delete("/notifications").status_code == 401
            assert client.delete("/notifications", headers={"x-admin-token": "wrong"}).status_code == 401
            assert client.post("/admin/fail", json={"seconds": 5}).status_code == 401
            assert client.get("/notifications").json()["count"] == 1
            assert client.delete("/notifications", headers={"x-admin-token": "s3cret"}).status_code == 200
    finally:
        stop(rec)
    closed = start_receiver(tmp_path / "closed", LAB_PROFILE="false")
    try:
        with closed.client() as client:
            assert client.delete("/notifications").status_code == 403
    finally:
        stop(closed)


# ---------------------------------------------------------------- finding 8: a console nobody can forge


def test_control_characters_cannot_forge_a_console_block(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path)
    forged = "\n=== 2026-01-01T00:00:00  slack /slack channel=#forged\n    RESOLVED Everything\x1b[2J\x1b[31m"
    try:
        with rec.client() as client:
            payload = {"channel": "#real" + forged, "text": "[FIRING:1] Real\r    RESOLVED Fake\x1b]0;t\x07"}
            assert client.post("/slack", json=payload).status_code == 200
            # Percent-encoded in the URL, decoded in the path the console shows.
            hook = client.post("/services/T/B/x%1b%5B2J%0a===", json={"text": "[FIRING:1] P"})
            assert hook.status_code == 200
        rec.send_mail("[FIRING:1] Mail\x1b[31m", "body", to="a@b.c")
    finally:
        out = stop(rec)
    blocks = [line for line in out.splitlines() if line.startswith("===")]
    assert all("forged" not in line or "\\x0a" in line for line in blocks), blocks
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert len(blocks) == 3, out  # the Slack message, the hook path, the mail: nothing more


def test_console_escaping_units() -> None:
    assert printable("a\nb\x1b[0m\u202ec") == "a\\x0ab\\x1b[0m\\u202ec"
    item = {"channel": "slack", "received_at": "t", "path": "/slack", "slack_channel": "#c\n=== x"}
    item |= {"summary": "line1\nline2\x1b[2J", "alerts": ["A\nB"], "status": "firing"}
    lines = block(item).split("\n")
    assert lines[0].startswith("=== t  slack /slack channel=#c\\x0a=== x")
    assert lines[1:] == ["    FIRING   A\\x0aB", "    | line1", "    | line2\\x1b[2J"]


# ---------------------------------------------------------------- finding 17: Alertmanager's retries


def test_identical_retries_are_stored_once_and_counted(receiver: Receiver) -> None:
    retry = json.loads(json.dumps(AM_SLACK))
    retry["attachments"][0]["callback_id"] = 'slack:{alertname="MLHighErrorRate",service="ml_api"}'
    with receiver.client() as client:
        answers = [client.post("/slack", json=retry) for _ in range(5)]
        assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 5
        resolved = json.loads(json.dumps(retry).replace("FIRING", "RESOLVED").replace("danger", "good"))
        assert client.post("/slack", json=resolved).status_code == 200
        changed = json.loads(json.dumps(retry).replace("[FIRING:1]", "[FIRING:2]"))
        assert client.post("/slack", json=changed).status_code == 200
        for _ in range(3):
            receiver.send_mail("[FIRING:1] MLHighErrorRate (ml_api critical)", "same body")
        listed = client.get("/notifications").json()["notifications"]
    assert [(n["channel"], n["status"]) for n in listed] == [
        ("slack", "firing"),
        ("slack", "resolved"),
        ("slack", "firing"),
        ("email", "firing"),
    ]
    assert listed[0]["group_key"] == 'slack:{alertname="MLHighErrorRate",service="ml_api"}'
    assert receiver.metric("receiver_notifications_duplicate_total", channel="slack") == 4
    assert receiver.metric("receiver_notifications_duplicate_total", channel="email") == 2
    assert len(jsonl(receiver.log)) == 4


def test_same_group_and_alerts_with_a_new_value_is_a_duplicate(receiver: Receiver) -> None:
    """With the lab template's identity the receiver follows Alertmanager's own rule: a group is news when
    its firing or resolved alerts change, not when a description's value moved between two retries."""
    group = 'slack:{alertname="LLMHighLatency",service="rag_api",severity="warning"}'

    def message(value: str, firing: str, resolved: str = "") -> dict:
        identity = f"{group}|firing={firing}|resolved={resolved}"
        text = f"*FIRING* p90 at {value} s"
        title = "[FIRING:1] LLMHighLatency (rag_api warning)"
        return {"attachments": [{"title": title, "text": text, "callback_id": identity}]}

    with receiver.client() as client:
        for payload in (
            message("2.1", "aa11"),
            message("2.4", "aa11"),  # a retry rendered after the value moved: nothing new
            message("2.4", "bb22,aa11"),  # a second alert joined the group: news
            message("2.5", "aa11,bb22"),  # same set, other order
            message("0.2", "bb22", resolved="aa11"),  # one resolved: news
        ):
            assert client.post("/slack", json=payload).text == "ok"
        kept = client.get("/notifications").json()["notifications"]
    assert [n["payload"]["attachments"][0]["callback_id"].split("|", 1)[1] for n in kept] == [
        "firing=aa11|resolved=",
        "firing=bb22,aa11|resolved=",
        "firing=bb22|resolved=aa11",
    ]
    assert {n["group_key"] for n in kept} == {group}
    assert receiver.metric("receiver_notifications_duplicate_total", channel="slack") == 2


def test_an_alert_that_fires_again_after_resolving_is_news(receiver: Receiver) -> None:
    """Only a copy of the group's LAST notification is a duplicate: fire, resolve, fire again (the same
    payload as the first) within the window must store all three (a re-fired alert was once swallowed)."""
    first = json.loads(json.dumps(AM_SLACK))
    first["attachments"][0]["callback_id"] = (
        'slack:{alertname="LLMPIILeak",service="rag_api"}|firing=cc33|resolved='
    )
    resolved = json.loads(json.dumps(first).replace("FIRING", "RESOLVED").replace("danger", "good"))
    resolved["attachments"][0]["callback_id"] = first["attachments"][0]["callback_id"].replace(
        "firing=cc33|resolved=", "firing=|resolved=cc33"
    )
    with receiver.client() as client:
        for payload in (first, first, resolved, first):
            assert client.post("/slack", json=payload).text == "ok"
        kept = client.get("/notifications").json()["notifications"]
    assert [n["status"] for n in kept] == ["firing", "resolved", "firing"]
    assert receiver.metric("receiver_notifications_duplicate_total", channel="slack") == 1


def test_the_same_alert_starting_again_is_news_without_a_resolution_between(receiver: Receiver) -> None:
    """The resolution can be lost (Alertmanager crashed while the alert fired): the next firing has the
    same fingerprint but a new start time in the identity, so it is stored; a retry of it is not."""
    group = 'security-slack:{alertname="LLMPIILeak",service="rag_api",severity="critical"}'

    def message(value: str, start: str) -> dict:
        title = "[FIRING:1] LLMPIILeak (rag_api critical)"
        callback = f"{group}|firing=cc33@{start}|resolved="
        return {"attachments": [{"title": title, "text": f"{value} leaked", "callback_id": callback}]}

    with receiver.client() as client:
        for payload in (
            message("1", "1767348000000"),
            message("3", "1767348300000"),
            message("4", "1767348300000"),
        ):
            assert client.post("/slack", json=payload).text == "ok"
        kept = client.get("/notifications").json()["notifications"]
    assert [n["payload"]["attachments"][0]["text"] for n in kept] == ["1 leaked", "3 leaked"]
    assert receiver.metric("receiver_notifications_duplicate_total", channel="slack") == 1


def test_dedup_window_zero_keeps_every_copy(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path, RECEIVER_DEDUP_SECONDS="0")
    try:
        with rec.client() as client:
            for _ in range(3):
                client.post("/slack", json=AM_SLACK)
            assert client.get("/notifications").json()["count"] == 3
    finally:
        stop(rec)
