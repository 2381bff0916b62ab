"""Inbound QoS 2 without a round trip to the log per packet.

A QoS 2 PUBLISH is answered PUBREC once the log holds it, and a PUBREL goes on
once the staged copy left the log, without the connection waiting for either:
many exchanges are in flight at once. What must hold regardless: PUBRECs in
PUBLISH order, deliveries in PUBREL order and exactly once, a duplicate
PUBLISH delivered once (the first payload), and a PUBREL for a message staged
by an earlier connection (read back from the log) still delivered in its turn.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import Disconnect, Pubcomp, Publish, Pubrec, Pubrel
from gateway.server import Gateway
from tests.integration.mqtt.conftest import RawFactory
from tests.integration.mqtt.helpers import payloads

pytestmark = pytest.mark.integration


async def qos2_burst(gateway: Gateway, raw: RawFactory, count: int, version: int = 4) -> None:
    """``count`` QoS 2 PUBLISHes at once, then their PUBRELs at once: PUBRECs and PUBCOMPs
    for all, in order, and every message delivered once, in order."""
    sub = await raw(gateway, version)
    await sub.connect("burst2-sub")
    assert await sub.subscribe("burst2/t", qos=1) == [1]
    pub = await raw(gateway, version)
    await pub.connect("burst2-pub")
    ids = list(range(1, count + 1))
    pub.send(*(Publish("burst2/t", b"%d" % i, qos=2, packet_id=i) for i in ids))
    assert [(await pub.expect(Pubrec)).packet_id for _ in ids] == ids
    pub.send(*(Pubrel(i) for i in ids))
    assert [(await pub.expect(Pubcomp)).packet_id for _ in ids] == ids
    got = await sub.receive_acked(count)
    assert payloads(got) == [b"%d" % i for i in ids]
    await sub.quiet()  # and nothing twice


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
async def test_a_burst_of_qos2_exchanges_keeps_its_order_and_delivers_once(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    await qos2_burst(gateway, raw, 500, version)


async def test_a_duplicate_publish_while_staging_is_delivered_once(
    gateway: Gateway, raw: RawFactory
) -> None:
    sub = await raw(gateway, 4)
    await sub.connect("dup2-sub")
    assert await sub.subscribe("dup2/t", qos=1) == [1]
    pub = await raw(gateway, 4)
    await pub.connect("dup2-pub")
    pub.send(
        Publish("dup2/t", b"first", qos=2, packet_id=7),
        Publish("dup2/t", b"again", qos=2, packet_id=7, dup=True),
    )
    assert (await pub.expect(Pubrec)).packet_id == 7
    pub.send(Pubrel(7))
    # One PUBREC when the duplicate came while the first was being staged, else two.
    answer = await pub.recv()
    if isinstance(answer, Pubrec):
        answer = await pub.recv()
    assert isinstance(answer, Pubcomp) and answer.packet_id == 7
    (msg,) = await sub.receive_acked(1)
    assert bytes(msg.payload) == b"first"  # the first payload stays
    await sub.quiet()


async def test_a_release_read_back_from_the_log_waits_for_those_under_way(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A retained QoS 2 message is released through the log; one PUBREL before it is not:
    they are delivered in the order of the PUBRELs all the same."""
    sub = await raw(gateway, 4)
    await sub.connect("order2-sub")
    assert await sub.subscribe("order2/#", qos=1) == [1]
    pub = await raw(gateway, 4)
    await pub.connect("order2-pub")
    pub.send(
        Publish("order2/a", b"plain", qos=2, packet_id=1),
        Publish("order2/b", b"retained", qos=2, retain=True, packet_id=2),
    )
    assert [(await pub.expect(Pubrec)).packet_id for _ in range(2)] == [1, 2]
    pub.send(Pubrel(1), Pubrel(2))
    assert [(await pub.expect(Pubcomp)).packet_id for _ in range(2)] == [1, 2]
    assert payloads(await sub.receive_acked(2)) == [b"plain", b"retained"]


async def pubrel_then_disconnect(gateway: Gateway, raw: RawFactory) -> None:
    """A clean session that sends PUBREL and DISCONNECT at once, without waiting for the
    PUBCOMP: the message still goes on (its staged copy is not purged first)."""
    sub = await raw(gateway, 4)
    await sub.connect("rel-sub")
    assert await sub.subscribe("rel/t", qos=1) == [1]
    pub = await raw(gateway, 4)
    await pub.connect("rel-pub", clean=True)
    pub.send(Publish("rel/t", b"released", qos=2, packet_id=3))
    assert (await pub.expect(Pubrec)).packet_id == 3
    pub.send(Pubrel(3), Disconnect())
    (msg,) = await sub.receive_acked(1)
    assert bytes(msg.payload) == b"released"


async def test_a_pubrel_right_before_disconnect_still_goes_on(
    gateway: Gateway, raw: RawFactory
) -> None:
    await pubrel_then_disconnect(gateway, raw)
