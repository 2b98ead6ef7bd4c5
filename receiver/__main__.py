"""`python -m receiver`: the Slack stand-in on RECEIVER_HTTP_PORT and the SMTP inbox on RECEIVER_SMTP_PORT."""

from __future__ import annotations

import logging

import uvicorn

from lab_common.logging import setup_logging
from lab_common.serve import BoundedHttpToolsProtocol
from receiver.app import create_app
from receiver.settings import ReceiverSettings


def main() -> None:
    settings = ReceiverSettings()
    log = setup_logging("receiver", settings.log_level)
    # aiosmtpd logs every SMTP command at INFO; the notification blocks on stdout say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    base = f"http://{settings.host}:{settings.http_port}"
    log.info(
        "slack webhook on %s/slack, inbox page %s/inbox, smtp on %s:%d, archive %s",
        base,
        base,
        settings.host,
        settings.smtp_port,
        settings.log,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,  # stdout is for the notification blocks
        http=BoundedHttpToolsProtocol,  # header size and time bounds, as the services
    )


if __name__ == "__main__":
    main()
