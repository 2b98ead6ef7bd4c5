"""Every metric of the receiver. Label values are bounded: channel, reason and place come from fixed sets."""

from __future__ import annotations

from prometheus_client import Counter

from lab_common.metrics import request_metrics

REQUESTS = request_metrics("receiver")

NOTIFICATIONS = Counter(
    "receiver_notifications", "Notifications stored in the inbox and the archive.", ["channel"]
)
DUPLICATES = Counter(
    "receiver_notifications_duplicate",
    "Notifications answered ok, not stored: same group, alerts and status within RECEIVER_DEDUP_SECONDS.",
    ["channel"],
)
REJECTED = Counter(
    "receiver_notifications_rejected",
    "Webhook calls refused: invalid_json, invalid_shape, no_text, too_deep or fault_injected.",
    ["reason"],
)
EVICTED = Counter(
    "receiver_notifications_evicted",
    "Notifications dropped by a bound: place=inbox (memory, still archived) or place=archive (rotated out).",
    ["place"],
)
BAD_ARCHIVE_LINES = Counter(
    "receiver_archive_bad_lines",
    "Lines of the archive skipped at start-up because they are not a valid notification.",
)
ALERTMANAGER_ERRORS = Counter(
    "receiver_alertmanager_api_errors",
    "Failed reads of Alertmanager's API for the inbox page (unreachable, timeout, bad answer).",
)

# Every label value exists from the start at 0, so a dashboard or an alert sees "none yet", not "no data".
CHANNELS = ("slack", "email")
REJECT_REASONS = ("invalid_json", "invalid_shape", "no_text", "too_deep", "fault_injected")
EVICTION_PLACES = ("inbox", "archive")
for _channel in CHANNELS:
    NOTIFICATIONS.labels(_channel)
    DUPLICATES.labels(_channel)
for _reason in REJECT_REASONS:
    REJECTED.labels(_reason)
for _place in EVICTION_PLACES:
    EVICTED.labels(_place)
