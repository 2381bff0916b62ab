"""CONNECT and CONNACK in MQTT 3.1.1 and 5.0: return/reason codes, client ids, takeover.

Raw sessions are used wherever a client library would refuse to send the
packet under test (bad protocol name or level, reserved flag, second CONNECT).
"""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import Connack, Connect, Disconnect, Pingreq, Publish
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, PahoFactory, RawFactory
from tests.integration.mqtt.helpers import TIMEOUT

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])

AUTH_CONFIG = "mqtt { authorization { user: alice, password: secret } }\n"


def _with_level(connect: bytes, level: int) -> bytes:
    """A 3.1.1 CONNECT (short fixed header) with its protocol level byte replaced."""
    assert connect[1] < 0x80
    return connect[:8] + bytes((level,)) + connect[9:]


async def test_mqtt_3_1_2_2_unsupported_protocol_level_gets_return_code_1(
    gateway: Gateway, raw: RawFactory
) -> None:
    """An unsupported protocol level is answered with CONNACK 0x01 and the connection closed."""
    session = await raw(gateway, 4)
    session.send(_with_level(Connect("lvl").encode(4), 6))
    seen = await session.closed()
    codes = [p.reason_code for p in seen if isinstance(p, Connack)]
    # 0x84 is the 5.0 code the 3.1.1 packet carries as return code 1 (the codec maps it).
    assert codes in ([], [0x84]), codes


async def test_mqtt_3_1_2_1_wrong_protocol_name_closes_connection(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A protocol name other than "MQTT" is refused: at most a CONNACK 0x84, then close."""
    session = await raw(gateway, 4)
    data = Connect("name").encode(4)
    session.send(data[:4] + b"MQTX" + data[8:])
    seen = await session.closed()
    assert not any(isinstance(p, Connack) and p.reason_code == 0 for p in seen)


@VERSIONS
async def test_mqtt_3_1_2_3_reserved_connect_flag_closes_connection(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """The reserved bit of the CONNECT flags must be 0; otherwise the connection is closed."""
    session = await raw(gateway, version)
    data = bytearray(Connect("rsv", protocol_level=version).encode(version))
    data[9] |= 0x01  # connect flags follow the 6-byte name and the level
    session.send(bytes(data))
    seen = await session.closed()
    codes = [p.reason_code for p in seen if isinstance(p, Connack)]
    assert codes in ([], [0x81]), codes


@VERSIONS
async def test_mqtt_3_1_0_1_first_packet_must_be_connect(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A first packet other than CONNECT closes the connection without a CONNACK."""
    session = await raw(gateway, version)
    session.send(Pingreq())
    assert await session.closed() == []


@VERSIONS
async def test_mqtt_3_1_0_2_second_connect_is_a_protocol_violation(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A second CONNECT is a protocol error: the connection is closed (5.0: DISCONNECT 0x82)."""
    session = await raw(gateway, version)
    assert (await session.connect("twice")).reason_code == 0
    session.send(Connect("twice", protocol_level=version))
    seen = await session.closed()
    assert not any(isinstance(p, Connack) for p in seen)
    if version == 5:
        assert [p.reason_code for p in seen if isinstance(p, Disconnect)] in ([], [0x82])


async def test_mqtt_3_1_3_8_empty_client_id_without_clean_session_is_rejected(
    gateway: Gateway, raw: RawFactory
) -> None:
    """3.1.1: a zero-length client id with CleanSession 0 gets CONNACK 0x02 and is closed."""
    session = await raw(gateway, 4)
    connack = await session.connect("", clean=False)
    assert connack.reason_code == 0x85  # identifier rejected, return code 2 on the wire
    assert connack.session_present is False
    await session.closed()


@VERSIONS
async def test_mqtt_3_1_3_6_empty_client_id_gets_a_unique_assigned_id(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A zero-length client id with clean session is accepted and given a unique id.

    5.0 [MQTT-3.2.2-16]: the CONNACK carries the Assigned Client Identifier, unused by any
    other session.
    """
    first = await raw(gateway, version)
    second = await raw(gateway, version)
    a = await first.connect("")
    b = await second.connect("")
    assert a.reason_code == 0 and b.reason_code == 0
    if version == 5:
        ids = [a.properties.assigned_client_identifier, b.properties.assigned_client_identifier]
        assert all(ids) and ids[0] != ids[1]
    # Both sessions are live: neither took the other over.
    assert await first.subscribe("anon/t") == [0]
    assert await second.subscribe("anon/t") == [0]


@VERSIONS
async def test_mqtt_3_1_4_2_bad_credentials_are_refused(
    gateway_factory: GatewayFactory, raw: RawFactory, version: int
) -> None:
    """Failed authentication: CONNACK 4/5 (5.0: 0x86/0x87), session present 0, then close."""
    gateway = await gateway_factory(AUTH_CONFIG)
    wrong = await raw(gateway, version)
    connack = await wrong.connect("intruder", username="alice", password=b"nope")
    assert connack.reason_code in (0x86, 0x87)
    assert connack.session_present is False
    await wrong.closed()
    anonymous = await raw(gateway, version)
    connack = await anonymous.connect("anonymous")
    assert connack.reason_code in (0x86, 0x87)
    await anonymous.closed()
    right = await raw(gateway, version)
    assert (await right.connect("alice-1", username="alice", password=b"secret")).reason_code == 0


async def test_mqtt_3_1_4_6_data_after_a_refused_connect_is_not_processed(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """After refusing a CONNECT the server must not process the packets that follow it."""
    gateway = await gateway_factory(AUTH_CONFIG)
    watcher = await raw(gateway, 4)
    await watcher.connect("watcher", username="alice", password=b"secret")
    assert await watcher.subscribe("refused/#") == [0]
    intruder = await raw(gateway, 4)
    intruder.send(
        Connect("intruder", username="alice", password=b"bad"),
        Publish("refused/x", b"must not pass"),
    )
    await intruder.closed()
    await watcher.quiet()  # bounded wait: the smuggled PUBLISH must never arrive


@VERSIONS
async def test_mqtt_3_1_4_2_takeover_disconnects_existing_client(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A second connection with the same client id makes the server close the first.

    5.0 [MQTT-3.1.4-3]: the existing client first gets DISCONNECT 0x8E (session taken over).
    """
    first = await raw(gateway, version)
    assert (await first.connect("same-id")).reason_code == 0
    second = await raw(gateway, version)
    assert (await second.connect("same-id")).reason_code == 0
    seen = await first.closed()
    if version == 5:
        assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == [0x8E]
    # The new connection owns the client id and works.
    assert await second.subscribe("takeover/t") == [0]


@VERSIONS
async def test_mqtt_3_1_4_3_paho_sees_session_taken_over(
    gateway: Gateway, paho_client: PahoFactory, version: int
) -> None:
    """paho's first connection is disconnected when another connects with its client id."""
    first = paho_client(gateway, version, client_id="paho-twin")
    first.client.reconnect_delay_set(60, 60)  # no automatic reconnect within the test
    assert (await first.connect())[1] == 0
    second = paho_client(gateway, version, client_id="paho-twin")
    assert (await second.connect())[1] == 0
    import asyncio

    rc = await asyncio.wait_for(first.disconnected, TIMEOUT)
    if version == 5:
        assert int(rc.value) == 0x8E


@VERSIONS
async def test_mqtt_3_2_2_2_session_present_reflects_stored_session(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Session present is 0 on clean start or a new session, 1 when a stored session resumes."""
    props = Properties(session_expiry_interval=300) if version == 5 else None
    session = await raw(gateway, version)
    connack = await session.connect("sp-client", clean=False, properties=props)
    assert connack.session_present is False  # no session existed yet
    assert await session.subscribe("sp/t", qos=1) == [1]
    await session.disconnect()
    again = await raw(gateway, version)
    connack = await again.connect("sp-client", clean=False, properties=props)
    assert connack.session_present is True
    await again.disconnect()
    clean = await raw(gateway, version)
    connack = await clean.connect("sp-client", clean=True, properties=props)
    assert connack.session_present is False  # [MQTT-3.2.2-1]: clean start, present 0


async def test_mqtt5_3_1_2_3_connack_reason_codes_are_5_0_codes(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """A 5.0 CONNACK uses 5.0 reason codes: 0x00 accepted, 0x86/0x87 for bad credentials."""
    gateway = await gateway_factory(AUTH_CONFIG)
    session = await raw(gateway, 5)
    connack = await session.connect("v5-auth", username="alice", password=b"wrong")
    assert connack.reason_code in (0x86, 0x87)
    assert connack.reason_code not in (4, 5)
