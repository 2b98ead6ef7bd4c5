"""An SMTP inbox: accepts mail to anyone, parses it, records it. Runs on the HTTP server's event loop."""

from __future__ import annotations

import asyncio
import email
import logging
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from receiver.parse import alert_names, alert_status, split_identity
from receiver.store import NotificationStore, dedup_key

log = logging.getLogger("receiver.smtp")
MAX_BODY_CHARS = 100_000
# The lab's email template puts the notification's identity here: group key, firing and resolved alerts.
GROUP_KEY_HEADER = "X-Lab-Group-Key"


def parse_message(raw: bytes) -> dict[str, Any]:
    """Subject, sender, recipients and the text/html bodies of a message."""
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    bodies: dict[str, str] = {}
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        if part is not None:
            try:
                bodies[kind] = str(part.get_content())[:MAX_BODY_CHARS]
            except (LookupError, ValueError):  # unknown charset or broken encoding: keep the raw payload
                bodies[kind] = str(part.get_payload())[:MAX_BODY_CHARS]
    return {
        "subject": str(message.get("Subject", "")),
        "from": str(message.get("From", "")),
        "header_to": str(message.get("To", "")),
        "message_id": str(message.get("Message-ID", "")),
        "identity": str(message.get(GROUP_KEY_HEADER, "")) or None,
        "body": bodies.get("plain", ""),
        "html": bodies.get("html", ""),
    }


class InboxHandler:
    """aiosmtpd handler: every RCPT is accepted, every DATA is recorded."""

    def __init__(self, store: NotificationStore) -> None:
        self.store = store

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        try:
            fields = parse_message(raw)
        except Exception:  # a malformed message is still a delivery: record what we can
            log.exception("could not parse a message")
            fields = {"subject": "", "body": raw.decode("utf-8", "replace")[:MAX_BODY_CHARS]}
        # Names from the subject first (Alertmanager's default), then the body; html only as a last resort.
        names = alert_names(fields.get("subject", ""), fields.get("body", "")) or alert_names(
            fields.get("html", "")
        )
        status = alert_status(fields.get("subject", "")) or alert_status(fields.get("body", ""))
        group, alert_sets = split_identity(fields.pop("identity", None))
        # Each retry of Alertmanager has a new Message-ID and Date: without the lab template's identity,
        # compare what the reader sees.
        content = alert_sets or [fields.get(k) for k in ("subject", "body", "html")]
        self.store.record(
            "email",
            {
                **fields,
                "mail_from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "alerts": names,
                "status": status,
                "group_key": group,
            },
            key=dedup_key("email", group, status, [content, sorted(envelope.rcpt_tos)]),
        )
        return "250 Message accepted for delivery"


def _accept_any(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=True)


async def start_smtp(store: NotificationStore, host: str, port: int, max_bytes: int) -> asyncio.Server:
    """The inbox on host:port; a message over `max_bytes` is refused with 552 (the sender sees it)."""
    loop = asyncio.get_running_loop()
    handler = InboxHandler(store)
    # A lab inbox: if a client insists on AUTH (no TLS here), any credentials are accepted.
    return await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="alert-receiver",
            auth_require_tls=False,
            authenticator=_accept_any,
            enable_SMTPUTF8=True,
            data_size_limit=max_bytes,
        ),
        host=host,
        port=port,
        reuse_address=True,
    )
