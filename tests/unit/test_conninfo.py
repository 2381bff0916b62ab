"""``ConnInfo.secured``: a TLS upgrade keeps everything else the listener said."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from gateway.listeners.conninfo import ConnInfo
from gateway.options.model import ConnectionType


def test_secured_changes_only_tls_and_the_certificate() -> None:
    plain = ConnInfo(
        7,
        ConnectionType.MQTT_WS,
        "10.0.0.1",
        4242,
        8883,
        path="/mqtt",
        subprotocol="mqtt",
        headers=MappingProxyType({"origin": "https://x"}),
    )
    certificate = {"subject": ((("commonName", "dev-42"),),)}
    assert plain.secured(certificate) == dataclasses.replace(
        plain, tls=True, peer_certificate=certificate
    )
    assert plain.secured(None) == dataclasses.replace(plain, tls=True)
