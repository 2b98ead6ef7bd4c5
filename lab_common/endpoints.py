"""Where every lab process listens: one table of default ports, and the URLs derived from it.

The services' settings take their default ports from here, labctl renders the monitoring configuration
with them, and the simulations, `labctl status` and the test stack build their URLs from them. Each port
can be moved with its environment variable (ML_PORT=8100 ...), the same variable the service itself reads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields

LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    env: str  # the environment variable that moves it (the service's own settings read the same one)
    port: int  # its default port, as written in docs/metrics.md


ENDPOINTS: dict[str, Endpoint] = {
    "ml_api": Endpoint("ML_PORT", 8000),
    "rag_api": Endpoint("RAG_PORT", 8001),
    "prometheus": Endpoint("PROMETHEUS_PORT", 9090),
    "alertmanager": Endpoint("ALERTMANAGER_PORT", 9093),
    "receiver_http": Endpoint("RECEIVER_HTTP_PORT", 9099),
    "receiver_smtp": Endpoint("RECEIVER_SMTP_PORT", 2525),
    "grafana": Endpoint("GRAFANA_PORT", 3000),
    "pushgateway": Endpoint("PUSHGATEWAY_PORT", 9091),
}

# The alert receiver's inbox page (receiver/app.py serves it): what the native lab's notifications link to.
RECEIVER_INBOX_PATH = "/inbox"


def default_port(name: str) -> int:
    return ENDPOINTS[name].port


def local_url(name: str, port: int | None = None) -> str:
    """`http://127.0.0.1:<port>` of a lab process (its default port unless `port` is given)."""
    return f"http://{LOCAL_HOST}:{port or default_port(name)}"


@dataclass(frozen=True)
class Ports:
    """The ports of one lab (defaults from ENDPOINTS)."""

    ml_api: int = default_port("ml_api")
    rag_api: int = default_port("rag_api")
    prometheus: int = default_port("prometheus")
    alertmanager: int = default_port("alertmanager")
    receiver_http: int = default_port("receiver_http")
    receiver_smtp: int = default_port("receiver_smtp")
    grafana: int = default_port("grafana")
    pushgateway: int = default_port("pushgateway")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Ports:
        """Defaults, overridden by ML_PORT, RAG_PORT, PROMETHEUS_PORT, ... when set."""
        env = os.environ if env is None else env
        values: dict[str, int] = {}
        for name, endpoint in ENDPOINTS.items():
            raw = env.get(endpoint.env, "").strip()
            if not raw:
                values[name] = endpoint.port
                continue
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ValueError(f"{endpoint.env}={raw!r} is not a TCP port")
            values[name] = int(raw)
        return cls(**values)

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody listens on now (all distinct), for labs that must not collide with a running one."""
        return cls(*free_ports(len(fields(cls))))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def url(self, name: str, host: str = LOCAL_HOST) -> str:
        return f"http://{host}:{getattr(self, name)}"

    def env(self) -> dict[str, str]:
        """ML_PORT=..., RAG_PORT=...: the variables that give a process these ports."""
        return {ENDPOINTS[name].env: str(port) for name, port in self.as_dict().items()}

    def replacements(self) -> dict[int, int]:
        """Default port -> this lab's port, for rewriting `127.0.0.1:<default>` in the repository's files."""
        return {default_port(name): port for name, port in self.as_dict().items()}


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCAL_HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
