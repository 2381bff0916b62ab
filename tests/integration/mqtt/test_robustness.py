"""Robustness: malformed packets and protocol violations close only the offending connection
(5.0: with the right reason code); a slow consumer never makes the gateway buffer without bound."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connack, Connect, Disconnect, Puback, Publish
from gateway.mqtt.wire import encode_string, pack_u16
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, RawFactory, mqtt_port
from tests.integration.mqtt.helpers import RawSession, TcpSession, payloads

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])

#: name -> (bytes sent after a successful CONNECT, expected 5.0 DISCONNECT reason codes)
VIOLATIONS: dict[str, tuple[bytes, tuple[int, ...]]] = {
    # [MQTT-2.2.2-2] / 5.0 [MQTT-3.8.1-1]: SUBSCRIBE fixed-header flags must be 0010.
    "subscribe_bad_flags": (
        b"\x80" + bytes((5 + 1,)) + pack_u16(1) + encode_string("a") + b"\x00",
        (0x81,),
    ),
    # [MQTT-3.3.1-4]: both QoS bits set.
    "publish_qos_3": (b"\x36" + bytes((2 + 1 + 2,)) + encode_string("a") + pack_u16(1), (0x81,)),
    # [MQTT-1.5.3-2] / 5.0 [MQTT-1.5.4-2]: U+0000 in a topic.
    "nul_in_topic": (b"\x30\x05\x00\x03a\x00b", (0x81,)),
    # [MQTT-3.3.2-2]: wildcards in a topic name.
    "wildcard_topic": (b"\x30\x05" + encode_string("a/+"), (0x81, 0x82, 0x90)),
    # A remaining length of 5 bytes is malformed.
    "five_byte_length": (b"\x30\xff\xff\xff\xff\x01", (0x81,)),
    # [MQTT-2.3.1-1]: a QoS 1 PUBLISH with packet identifier 0.
    "packet_id_zero": (b"\x32\x05" + encode_string("a") + pack_u16(0), (0x81, 0x82)),
    # Reserved packet type 0.
    "reserved_type": (b"\x00\x00", (0x81, 0x82)),
}


async def client(raw: RawFactory, gateway: Gateway, client_id: str, version: int) -> RawSession:
    session = await raw(gateway, version)
    assert (await session.connect(client_id)).reason_code == 0
    return session


@VERSIONS
@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
async def test_mqtt_4_13_1_1_violation_closes_only_the_offending_connection(
    gateway: Gateway, raw: RawFactory, version: int, violation: str
) -> None:
    """A malformed packet or protocol error closes that connection (5.0: DISCONNECT with the
    reason code first, [MQTT-4.13.1-1]); other clients are not affected."""
    data, codes = VIOLATIONS[violation]
    bystander = await client(raw, gateway, f"bystander-{violation}", version)
    assert await bystander.subscribe("calm/t", qos=1) == [1]
    offender = await client(raw, gateway, f"offender-{violation}", version)
    counters = gateway.broker.counters  # type: ignore[union-attr]
    before = counters["malformed"] + counters["protocol_errors"]
    offender.send(data)
    seen = await offender.closed()
    assert counters["malformed"] + counters["protocol_errors"] == before + 1  # counted
    assert not any(isinstance(p, Publish) for p in seen)
    if version == 5:
        reasons = [p.reason_code for p in seen if isinstance(p, Disconnect)]
        assert reasons == [] or reasons[0] in codes, reasons
    pub = await client(raw, gateway, f"calm-pub-{violation}", version)
    await pub.publish("calm/t", b"still fine", qos=1)
    assert payloads(await bystander.receive_acked(1)) == [b"still fine"]


async def test_mqtt_4_13_1_1_many_bad_clients_do_not_disturb_a_good_pair(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A stream of violating connections leaves a working publisher/subscriber pair untouched."""
    sub = await client(raw, gateway, "steady-sub", 5)
    assert await sub.subscribe("steady/t", qos=1) == [1]
    pub = await client(raw, gateway, "steady-pub", 5)
    for i in range(20):
        bad = await raw(gateway, 5)
        bad.send(list(VIOLATIONS.values())[i % len(VIOLATIONS)][0])  # no CONNECT first, even
        await pub.publish("steady/t", str(i).encode(), qos=1)
    got = await sub.receive_acked(20)
    assert payloads(got) == [str(i).encode() for i in range(20)]


async def test_slow_consumer_qos0_is_dropped_not_buffered(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """QoS 0 to a client whose socket is backed up is dropped: the gateway does not buffer it all."""
    gateway = await gateway_factory("max_pending: 1048576\n")  # 1 MiB per client, not 64 MiB
    stalled = await TcpSession.open(mqtt_port(gateway), 4, rcvbuf=4096)
    try:
        assert (await stalled.connect("stalled")).reason_code == 0
        assert await stalled.subscribe("flood/t") == [0]
        pub = await client(raw, gateway, "flooder", 4)
        payload = b"x" * 65536
        total = 800  # 50 MiB
        for i in range(total):
            pub.send(Publish("flood/t", str(i).encode() + b":" + payload))
            if i % 20 == 0:
                await pub.writer.drain()  # type: ignore[attr-defined]
        await pub.publish("flood/t", b"sync", qos=1)  # the gateway has taken every message
        # Now read the stalled one: far fewer than all messages can have been kept for it.
        got = 0
        while True:
            try:
                await stalled.expect(Publish, timeout=1.0)
            except TimeoutError:
                break
            got += 1
        assert got < total // 2, (
            f"{got} of {total} QoS 0 messages were buffered for a stalled client"
        )
    finally:
        await stalled.aclose()


async def test_slow_consumer_qos1_waits_in_the_log(gateway: Gateway, raw: RawFactory) -> None:
    """QoS 1 to a backed-up client is not dropped: it waits in the log and arrives, in order."""
    stalled = await TcpSession.open(mqtt_port(gateway), 4, rcvbuf=4096)
    try:
        assert (await stalled.connect("stalled-q1")).reason_code == 0
        assert await stalled.subscribe("flood1/t", qos=1) == [1]
        pub = await client(raw, gateway, "flooder-q1", 4)
        payload = b"y" * 16384
        total = 200
        for i in range(total):
            pub.send(Publish("flood1/t", str(i).encode() + b":" + payload, 1, packet_id=i + 1))
        for _ in range(total):
            await pub.expect(Puback, timeout=10)
        got = await stalled.receive_acked(total, timeout=10)
        assert [bytes(m.payload).split(b":")[0] for m in got] == [
            str(i).encode() for i in range(total)
        ]
    finally:
        await stalled.aclose()


@VERSIONS
async def test_packets_before_a_violation_in_the_same_read_are_still_acted_on(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A valid QoS 1 PUBLISH that arrives in the same TCP segment as a malformed packet is
    published and PUBACKed before the connection closes, as it would be on its own."""
    subscriber = await client(raw, gateway, "before-violation-sub", version)
    assert await subscriber.subscribe("early/t", qos=1) == [1]
    offender = await client(raw, gateway, "before-violation", version)
    good = Publish("early/t", b"came first", qos=1, packet_id=7).encode(version)
    offender.send(good + VIOLATIONS["nul_in_topic"][0])
    seen = await offender.closed()
    assert [p.packet_id for p in seen if isinstance(p, Puback)] == [7]
    if version == 5:
        assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == [0x81]
    assert payloads(await subscriber.receive_acked(1)) == [b"came first"]


async def test_the_disconnect_reason_survives_a_client_that_keeps_sending(gateway: Gateway) -> None:
    """[MQTT-4.13.1-1] 5.0: the DISCONNECT with its reason code reaches a client that was still
    sending when it broke the protocol. Closing with its bytes unread would make the kernel
    reset the connection; the gateway half-closes and drops the rest until the client closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_port(gateway))
    try:
        writer.write(Connect("keeps-sending", protocol_level=5).encode(5))
        decoder = Decoder(server=False, version=5)
        connack = decoder.feed(await asyncio.wait_for(reader.read(1024), 5))
        assert [type(p) for p in connack] == [Connack]
        junk = (
            Publish("more/t", b"x" * 1000, qos=0).encode(5) * 300
        )  # ~300 KB the gateway won't read
        writer.write(VIOLATIONS["nul_in_topic"][0] + junk)
        received = b""
        while chunk := await asyncio.wait_for(reader.read(65536), 5):  # reset: ConnectionError
            received += chunk
        packets = decoder.feed(received)
        assert [(type(p), getattr(p, "reason_code", None)) for p in packets] == [(Disconnect, 0x81)]
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
