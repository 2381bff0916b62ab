"""Topic rules and NATS interop: ``$`` topics, shared subscriptions (MQTT and NATS queue groups),
the topic<->subject mapping, and the gateway's internal ``$MQTT`` namespace."""

from __future__ import annotations

from collections import Counter

import nats.errors
import pytest

from gateway.mqtt.packets import Disconnect, Puback, Publish
from gateway.mqtt.wire import encode_string, fixed_header, pack_u16
from gateway.server import Gateway
from tests.integration.mqtt.conftest import NatsFactory, RawFactory
from tests.integration.mqtt.helpers import QUIET, RawSession

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


async def client(raw: RawFactory, gateway: Gateway, client_id: str, version: int) -> RawSession:
    session = await raw(gateway, version)
    assert (await session.connect(client_id)).reason_code == 0
    return session


async def drain(session: RawSession, wait: float = QUIET) -> list[Publish]:
    """Every PUBLISH that arrives until ``wait`` seconds pass without one (acknowledging each)."""
    got: list[Publish] = []
    while True:
        try:
            got += await session.receive_acked(1, timeout=wait)
        except TimeoutError:
            return got


@VERSIONS
async def test_mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcards(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Filters starting with # or + do not match topic names starting with "$"; explicit ones do."""
    wild = await client(raw, gateway, "wild", version)
    assert await wild.subscribe("#", "+/x", qos=0) == [0, 0]
    explicit = await client(raw, gateway, "explicit", version)
    assert await explicit.subscribe("$SYS/#", qos=0) == [0]
    pub = await client(raw, gateway, "dollar", version)
    await pub.publish("$SYS/x", b"system")
    await pub.publish("a/x", b"normal")
    assert {bytes(m.payload) for m in await drain(wild)} == {b"normal"}
    assert [bytes(m.payload) for m in await drain(explicit)] == [b"system"]


@VERSIONS
async def test_mqtt_4_8_2_shared_subscription_delivers_each_message_to_one_member(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A shared subscription delivers each message to one member of the group (5.0 clients, and
    3.1.1 clients as Mosquitto allows); non-shared subscribers still get every message."""
    members = [await client(raw, gateway, f"member{i}-{version}", version) for i in range(2)]
    for member in members:
        assert await member.subscribe("$share/workers/jobs/+", qos=1) == [1]
    plain = await client(raw, gateway, f"plain-{version}", version)
    assert await plain.subscribe("jobs/+", qos=1) == [1]
    pub = await client(raw, gateway, f"jobs-pub-{version}", version)
    for i in range(20):
        await pub.publish(f"jobs/{i % 3}", str(i).encode(), qos=1)
    shares = [await drain(m) for m in members]
    counted = Counter(bytes(p.payload) for share in shares for p in share)
    assert set(counted) == {str(i).encode() for i in range(20)}
    assert max(counted.values()) == 1, "a message went to more than one member"
    assert all(shares), "both members must take part"
    assert len(await drain(plain)) == 20


@VERSIONS
@pytest.mark.parametrize("qos", [1, 2])
async def test_shared_multi_level_wildcard_at_qos_1_and_2(
    gateway: Gateway, raw: RawFactory, version: int, qos: int
) -> None:
    """`$share/g/jobs/#` at QoS 1/2 (two consumers, for `jobs.>` and `jobs`, one deliver
    subject) is granted and delivers each message, on `jobs` itself too, to one member;
    `$share/g/jobs`, another shared subscription of the same group, gets its own copy."""
    members = [await client(raw, gateway, f"mlw{i}-{version}-{qos}", version) for i in range(2)]
    for member in members:
        assert await member.subscribe("$share/g/jobs/#", qos=qos) == [qos]
    exact = await client(raw, gateway, f"mlw-exact-{version}-{qos}", version)
    assert await exact.subscribe("$share/g/jobs", qos=qos) == [qos]
    pub = await client(raw, gateway, f"mlw-pub-{version}-{qos}", version)
    topics = ["jobs", "jobs/a", "jobs/a/b"]
    for i in range(12):
        await pub.publish(topics[i % 3], str(i).encode(), qos=1)
    shares = [await drain(m) for m in members]
    counted = Counter(bytes(p.payload) for share in shares for p in share)
    assert set(counted) == {str(i).encode() for i in range(12)}
    assert max(counted.values()) == 1, "a message went to more than one member"
    assert all(shares), "both members must take part"
    assert sorted(bytes(p.payload) for p in await drain(exact)) == [
        str(i).encode() for i in range(0, 12, 3)
    ]


async def test_mqtt5_3_8_3_4_no_local_on_shared_subscription_is_protocol_error(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: setting No Local on a shared subscription is a protocol error (DISCONNECT 0x82)."""
    session = await client(raw, gateway, "nolocal-shared", 5)
    body = pack_u16(1) + b"\x00" + encode_string("$share/g/t") + bytes((0x04 | 1,))
    session.send(fixed_header(0x82, len(body)) + body)
    seen = await session.closed()
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] in ([], [0x82])


@VERSIONS
async def test_shared_group_is_a_nats_queue_group(
    gateway: Gateway, raw: RawFactory, nats_client: NatsFactory, version: int
) -> None:
    """MQTT `$share/g/...` members and NATS queue subscribers of group g share the load: each
    NATS-published message goes to exactly one of them."""
    member = await client(raw, gateway, f"q-member-{version}", version)
    assert await member.subscribe("$share/g/work/+", qos=0) == [0]
    nc = await nats_client(gateway)
    queue_sub = await nc.subscribe("work.*", queue="g")
    await nc.flush()
    for i in range(40):
        await nc.publish("work.item", str(i).encode())
    await nc.flush()
    mqtt_got = [bytes(p.payload) for p in await drain(member)]
    nats_got: list[bytes] = []
    while True:
        try:
            nats_got.append((await queue_sub.next_msg(timeout=QUIET)).data)
        except nats.errors.TimeoutError:
            break
    everything = Counter(mqtt_got + nats_got)
    assert set(everything) == {str(i).encode() for i in range(40)}
    assert max(everything.values()) == 1
    assert mqtt_got and nats_got, "both the MQTT member and the NATS member must take part"


@VERSIONS
async def test_mqtt_publish_reaches_nats_subscriber_on_mapped_subject(
    gateway: Gateway, raw: RawFactory, nats_client: NatsFactory, version: int
) -> None:
    """MQTT `a/b` is NATS `a.b`; a dot in a level is `//`, an empty level is `/` (reference 1.1)."""
    nc = await nats_client(gateway)
    subs = {s: await nc.subscribe(s) for s in ("a.b", "foo//bar.baz", "/.lead")}
    await nc.flush()
    pub = await client(raw, gateway, f"to-nats-{version}", version)
    await pub.publish("a/b", b"1", qos=0)
    await pub.publish("foo.bar/baz", b"2", qos=1)
    await pub.publish("/lead", b"3", qos=2)
    got = {s: (await sub.next_msg(timeout=5)).data for s, sub in subs.items()}
    assert got == {"a.b": b"1", "foo//bar.baz": b"2", "/.lead": b"3"}


@VERSIONS
async def test_nats_publish_reaches_mqtt_subscribers_of_mapped_filters(
    gateway: Gateway, raw: RawFactory, nats_client: NatsFactory, version: int
) -> None:
    """A NATS publish to `a.b` reaches MQTT subscribers of `a/b` and `a/#`; `a/#` also matches
    the parent `a`."""
    exact = await client(raw, gateway, f"exact-{version}", version)
    assert await exact.subscribe("a/b", qos=1) == [1]
    multi = await client(raw, gateway, f"multi-{version}", version)
    assert await multi.subscribe("a/#", qos=0) == [0]
    nc = await nats_client(gateway)
    await nc.publish("a.b", b"from nats")
    await nc.publish("a", b"parent")
    await nc.flush()
    got = (await exact.receive_acked(1))[0]
    assert (got.topic, bytes(got.payload)) == ("a/b", b"from nats")
    assert sorted((m.topic, bytes(m.payload)) for m in await multi.receive_acked(2)) == [
        ("a", b"parent"),
        ("a/b", b"from nats"),
    ]


@VERSIONS
async def test_internal_namespace_subscribe_is_refused(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """SUBSCRIBE into `$MQTT/...` is refused per filter (0x80 or a 5.0 failure code)."""
    session = await client(raw, gateway, f"snoop-{version}", version)
    codes = await session.subscribe("$MQTT/#", "$MQTT/sub/+", "$MQTT/msgs/a", "ok/t", qos=1)
    assert all(c >= 0x80 for c in codes[:3]), codes
    assert codes[3] == 1


@VERSIONS
async def test_internal_namespace_publish_is_refused(
    gateway: Gateway, raw: RawFactory, nats_client: NatsFactory, version: int
) -> None:
    """Client PUBLISHes into `$MQTT/...` never reach the internal subjects, so a crafted publish
    cannot inject into another client's queue or evict its session (5.0: PUBACK >= 0x80 or close;
    3.1.1 may acknowledge positively and drop it)."""
    victim = await raw(gateway, version)
    await victim.connect("victim", clean=False)
    assert await victim.subscribe("t", qos=1) == [1]
    nc = await nats_client(gateway)
    spy = await nc.subscribe("$MQTT.>")
    await nc.flush()
    attacker = await raw(gateway, version)
    await attacker.connect("attacker")
    attacker.send(Publish("$MQTT/msgs/t", b"injected", qos=1, packet_id=1))
    attacker.send(Publish("$MQTT/sess/victim", b'{"stream":"$MQTT_sess","seq":999}'))
    # Refused: either a failing PUBACK (5.0) or the connection closed; never a success PUBACK.
    try:
        answer = await attacker.recv(timeout=1.0)
    except (TimeoutError, AssertionError):
        answer = None
    if isinstance(answer, Puback) and version == 5:
        assert answer.reason_code >= 0x80  # 3.1.1 may only ack positively [MQTT-3.3.5-2]
    await victim.quiet()  # bounded wait: nothing injected into `t`, no DISCONNECT for the victim
    with pytest.raises(nats.errors.TimeoutError):
        while True:
            msg = await spy.next_msg(timeout=QUIET)
            assert b"injected" not in msg.data and b"$MQTT_sess" not in msg.data
    assert await victim.subscribe("t2", qos=0) == [0]  # still connected and served
