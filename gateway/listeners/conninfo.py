"""What a protocol session learns about its connection: kind, peer, TLS, HTTP upgrade."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.options.model import ConnectionType


def _no_headers() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One accepted connection, as every listener describes it to the session code.

    ``kind`` is the connection type that ``allowed_connection_types`` is checked
    against (STANDARD, WEBSOCKET, MQTT, MQTT_WS). ``peer_certificate`` is the
    client certificate in the form ``ssl.SSLSocket.getpeercert()`` gives (from
    pyOpenSSL on the TCP listeners, decoded when first read), when the client
    presented one. WebSocket connections also carry the request path,
    the negotiated subprotocol and the request headers (for origin checks and
    cookie-based credentials).
    """

    id: int
    kind: ConnectionType
    peer_host: str
    peer_port: int
    local_port: int
    tls: bool = False
    peer_certificate: Mapping[str, Any] | None = None
    path: str | None = None
    subprotocol: str | None = None
    headers: Mapping[str, str] = field(default_factory=_no_headers)

    def secured(self, peer_certificate: Mapping[str, Any] | None) -> ConnInfo:
        """This connection after a TLS upgrade (``dataclasses.replace`` costs ten times more)."""
        return ConnInfo(
            self.id,
            self.kind,
            self.peer_host,
            self.peer_port,
            self.local_port,
            True,
            peer_certificate,
            self.path,
            self.subprotocol,
            self.headers,
        )

    @property
    def peer(self) -> str:
        """``host:port`` of the client, for logs."""
        return f"{self.peer_host}:{self.peer_port}"
