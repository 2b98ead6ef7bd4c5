"""Hypothesis against the running receiver: no Slack payload gives a 5xx, and nothing stored breaks a later
read (the list, the inbox page, a restart). Before the fix, NaN, `attachments: 5` or deep nesting did."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.receiver import Receiver, start_receiver, stop

# Any JSON value, NaN and the infinities included (as Python's json writes them), and huge integers.
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])  # more often than st.floats() draws them
scalars = st.none() | st.booleans() | st.integers() | st.floats() | non_finite | st.text(max_size=40)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
texts = st.text(max_size=60) | st.sampled_from(["[FIRING:1] A", "[RESOLVED] B", "alertname=C", "\x1b[2J\n"])
fields = st.fixed_dictionaries(
    {}, optional={"title": texts | values, "value": texts | values, "short": values}
)
attachments = st.fixed_dictionaries(
    {},
    optional={
        "title": texts | values,
        "text": texts | values,
        "color": st.sampled_from(["danger", "good", "#123456", "x"]) | values,
        "title_link": st.sampled_from(["http://a/b", "javascript:alert(1)"]) | values,
        "callback_id": texts | values,
        "fields": st.lists(fields | values, max_size=3) | values,
    },
)
slack_like = st.fixed_dictionaries(
    {},
    optional={
        "text": texts | values,
        "channel": texts | values,
        "username": texts | values,
        "attachments": st.lists(attachments | values, max_size=3) | values,
        "blocks": st.lists(values, max_size=3) | values,
    },
)
# Mostly well-formed, so that most are stored: a key the receiver does not read (Slack's `metadata`) is kept
# as sent, so any value may hide there and meet every later write and read.
stored = st.fixed_dictionaries(
    {"text": st.sampled_from(["[FIRING:1] A", "[RESOLVED] B"]) | st.text(min_size=1, max_size=40)},
    optional={"channel": texts, "metadata": values, "attachments": st.lists(attachments, max_size=2)},
)
# Python's json writes inf as `Infinity`; the same bodies with `1e999` instead (JSON, read back as inf) too.
documents = (slack_like | stored | values).map(json.dumps)
overflowing = documents.map(lambda text: text.replace("Infinity", "1e999"))
bodies = (documents | overflowing).map(str.encode) | st.binary(max_size=200)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    rec = start_receiver(tmp_path_factory.mktemp("hypothesis"), RECEIVER_ECHO="false")
    yield rec
    stop(rec)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, form=st.booleans())
def test_no_slack_payload_gives_a_5xx(receiver: Receiver, body: bytes, form: bool) -> None:
    with receiver.client() as client:
        if form:
            response = client.post("/slack", data={"payload": body.decode("utf-8", "replace")})
        else:
            response = client.post("/slack", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (200, 400), (response.status_code, response.text[:300])
        assert client.get("/notifications").status_code == 200


def test_what_was_stored_reads_back_after_a_restart(receiver: Receiver, tmp_path: Path) -> None:
    # Runs after the property above (file order): whatever it stored must list, render and reload.
    with receiver.client() as client:
        before = client.get("/notifications").json()["count"]
        assert client.get("/inbox").status_code == 200
    assert before > 0, "the property test stored nothing: the strategies no longer produce valid payloads"
    log = receiver.log
    stop(receiver)
    again = start_receiver(log.parent, RECEIVER_ECHO="false")
    try:
        listed = httpx.get(f"{again.url}/notifications", timeout=10)
        assert listed.status_code == 200 and listed.json()["count"] == before
        assert httpx.get(f"{again.url}/inbox", timeout=10).status_code == 200
        assert again.metric("receiver_archive_bad_lines_total") == 0
    finally:
        stop(again)
