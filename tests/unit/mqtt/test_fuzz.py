"""Fuzzing the decoder: random and mutated bytes give packets or MQTTError, nothing else.

Rules checked on every input:
* ``feed`` returns packets or raises MQTTError (any other exception fails);
* the bytes it keeps never exceed the maximum packet size;
* every packet it accepts re-encodes to bytes that decode to the same packet.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder
from gateway.mqtt.errors import MQTTError
from gateway.mqtt.packets import Connect, Packet
from tests.unit.mqtt.strategies import connects, to_client, to_server


def run(dec: Decoder, data: bytes, sizes: list[int]) -> list[Packet]:
    """Feed ``data`` in chunks like a session would; check the rules; return what was decoded."""
    limit = dec.max_packet_size
    got: list[Packet] = []
    pos = 0
    i = 0
    try:
        while pos < len(data):
            size = sizes[i % len(sizes)] if sizes else len(data)
            batch = dec.feed(data[pos : pos + size])
            pos += size
            i += 1
            while batch and isinstance(batch[-1], Connect):
                got += batch
                batch = dec.feed(b"")
            got += batch
            assert dec.buffered < max(limit, 6)
    except MQTTError as exc:
        assert isinstance(exc.reason_code, int) and exc.message
        assert dec.buffered == 0
    return got


def check_reencode(packets: list[Packet], version: int | None, server: bool) -> None:
    for packet in packets:
        if isinstance(packet, Connect):
            assert Decoder().feed(packet.encode()) == [packet]
            version = packet.protocol_level
            continue
        assert version is not None
        assert Decoder(server=server, version=version).feed(packet.encode(version)) == [packet]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 2 and buf:
            del buf[at : at + rng.randint(1, 4)]
        elif op == 3 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        else:
            buf = buf[:at]
    return bytes(buf)


SIDES = st.sampled_from(
    [(None, True), (3, True), (4, True), (5, True), (3, False), (4, False), (5, False)]
)


@settings(max_examples=400, deadline=None)
@given(
    SIDES, st.binary(max_size=200), st.integers(2, 300), st.lists(st.integers(1, 50), max_size=4)
)
def test_random_bytes(
    side: tuple[int | None, bool], data: bytes, limit: int, sizes: list[int]
) -> None:
    version, server = side
    dec = Decoder(server=server, version=version, max_packet_size=limit)
    check_reencode(run(dec, data, sizes), version, server)


@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.sampled_from([3, 4, 5]),
    st.booleans(),
    st.integers(0, 2**32),
    st.lists(st.integers(1, 50), max_size=4),
)
def test_mutated_streams(
    data: st.DataObject, version: int, server: bool, seed: int, sizes: list[int]
) -> None:
    if server:
        head = data.draw(connects(version)).encode()
        body = data.draw(st.lists(to_server(version), min_size=1, max_size=6))
        start: int | None = None
    else:
        head = b""
        body = data.draw(st.lists(to_client(version), min_size=1, max_size=6))
        start = version
    stream = head + b"".join(p.encode(version) for p in body)
    rng = random.Random(seed)
    for _ in range(10):
        limit = rng.choice([6, 40, 300, 100_000])
        dec = Decoder(server=server, version=start, max_packet_size=limit)
        check_reencode(run(dec, mutate(rng, stream), sizes), start, server)
