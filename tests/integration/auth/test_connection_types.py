"""``allowed_connection_types`` (and its aliases) against every listener.

Each user may connect over some of: NATS TCP (STANDARD), NATS over WebSocket
(WEBSOCKET), MQTT TCP (MQTT) and MQTT over WebSocket (MQTT_WS). Refusals:
NATS ``-ERR 'Authorization Violation'``; MQTT 3.1.1 CONNACK rc 5 (paho reports
it as 0x87); MQTT 5.0 CONNACK 0x87 for a connection type that is not allowed,
0x86 for wrong credentials.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import (
    BAD_USER_NAME_OR_PASSWORD,
    CONNACK_311_NOT_AUTHORIZED,
    NOT_AUTHORIZED,
    SUCCESS,
    connack_311_bytes,
    mqtt_connack,
    nats_accepted,
    nats_refusal,
    paho_connack,
)

USERS = """
authorization {
  users = [
    {user: std, password: p, allowed_connection_types: ["STANDARD"]}
    {user: ws, password: p, connection_types: ["WEBSOCKET"]}
    {user: mq, password: p, clients: ["MQTT"]}
    {user: mqws, password: p, allowed_connection_types: ["mqtt_ws"]}
    {user: natsboth, password: p, connection_types: ["STANDARD", "WEBSOCKET"]}
    {user: mqboth, password: p, clients: ["MQTT", "MQTT_WS"]}
    {user: tcponly, password: p, allowed_connection_types: ["STANDARD", "MQTT"]}
    {user: anykind, password: p}
  ]
}
"""

#: Every way to connect, and the connection type it counts as.
TRANSPORTS = {
    "nats-tcp": "STANDARD",
    "nats-ws": "WEBSOCKET",
    "mqtt311-tcp": "MQTT",
    "mqtt5-tcp": "MQTT",
    "mqtt311-ws": "MQTT_WS",
    "mqtt5-ws": "MQTT_WS",
}

ALL_KINDS = frozenset(TRANSPORTS.values())


async def outcome(start: StartGateway, user: str, password: str) -> dict[str, object]:
    """What each transport answers for these credentials: accepted, or the refusal."""
    gateway = await start(USERS)
    nats_tcp, nats_ws = await asyncio.gather(
        nats_accepted(gateway, user=user, password=password),
        nats_accepted(gateway, ws=True, user=user, password=password),
    )
    paho = await asyncio.gather(
        paho_connack(gateway, 4, user, password),
        paho_connack(gateway, 5, user, password),
        paho_connack(gateway, 4, user, password, ws=True),
        paho_connack(gateway, 5, user, password, ws=True),
    )
    return {
        "nats-tcp": nats_tcp,
        "nats-ws": nats_ws,
        "mqtt311-tcp": paho[0],
        "mqtt5-tcp": paho[1],
        "mqtt311-ws": paho[2],
        "mqtt5-ws": paho[3],
    }


def expected(allowed: frozenset[str]) -> dict[str, object]:
    """Accepted (True / CONNACK 0) where the type is allowed, else the refusal."""
    out: dict[str, object] = {}
    for transport, kind in TRANSPORTS.items():
        if transport.startswith("nats"):
            out[transport] = kind in allowed
        else:
            # paho reports the 3.1.1 rc 5 as "Not authorized" (0x87), like the 5.0 code.
            out[transport] = SUCCESS if kind in allowed else NOT_AUTHORIZED
    return out


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        ("std", {"STANDARD"}),
        ("ws", {"WEBSOCKET"}),
        ("mq", {"MQTT"}),
        ("mqws", {"MQTT_WS"}),
        ("natsboth", {"STANDARD", "WEBSOCKET"}),
        ("mqboth", {"MQTT", "MQTT_WS"}),
        ("tcponly", {"STANDARD", "MQTT"}),
        ("anykind", set(ALL_KINDS)),
    ],
)
async def test_each_listener_accepts_exactly_the_allowed_connection_types(
    start_gateway: StartGateway, user: str, allowed: set[str]
) -> None:
    assert await outcome(start_gateway, user, "p") == expected(frozenset(allowed))


async def test_wrong_password_is_refused_on_every_listener(start_gateway: StartGateway) -> None:
    result = await outcome(start_gateway, "anykind", "wrong")
    assert result == {
        "nats-tcp": False,
        "nats-ws": False,
        "mqtt311-tcp": NOT_AUTHORIZED,  # rc 5 as paho reports it
        "mqtt5-tcp": BAD_USER_NAME_OR_PASSWORD,
        "mqtt311-ws": NOT_AUTHORIZED,
        "mqtt5-ws": BAD_USER_NAME_OR_PASSWORD,
    }


async def test_nats_refusal_of_a_connection_type_is_an_authorization_violation(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(USERS)
    assert "'Authorization Violation'" in await nats_refusal(gateway, user="mq", password="p")
    assert "'Authorization Violation'" in await nats_refusal(
        gateway, ws=True, user="std", password="p"
    )


async def test_mqtt_311_refusal_of_a_connection_type_is_return_code_5(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(USERS)
    assert await connack_311_bytes(gateway, "std", "p") == CONNACK_311_NOT_AUTHORIZED
    assert await connack_311_bytes(gateway, "mqws", "p") == CONNACK_311_NOT_AUTHORIZED
    assert await connack_311_bytes(gateway, "mq", "p") == b"\x20\x02\x00\x00"


async def test_mqtt5_distinguishes_type_not_allowed_from_bad_password(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(USERS)
    assert await mqtt_connack(gateway, 5, "ws", "p") == NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5, "mq", "p", ws=True) == NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5, "mqws", "p", ws=True) == SUCCESS
    assert await mqtt_connack(gateway, 5, "mq", "nope") == BAD_USER_NAME_OR_PASSWORD
    assert await mqtt_connack(gateway, 5, "ghost", "p") == BAD_USER_NAME_OR_PASSWORD


async def test_unknown_connection_type_is_a_configuration_error(
    start_gateway: StartGateway,
) -> None:
    with pytest.raises(Exception, match="BOGUS"):
        await start_gateway(
            'authorization { users = [ {user: u, password: p, clients: ["BOGUS"]} ] }\n'
        )
