"""Round trips: every packet type and version encodes, then decodes to itself.

Also: fed whole, byte by byte or in random chunks, a stream gives the same packets.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Packet
from tests.unit.mqtt.strategies import connects, to_client, to_server

VERSIONS = st.sampled_from([3, 4, 5])


def feed_in_chunks(dec: Decoder, data: bytes, sizes: list[int]) -> list[Packet]:
    out: list[Packet] = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        out += dec.feed(data[pos : pos + size])
        pos += size
        i += 1
    return out


@settings(max_examples=150, deadline=None)
@given(st.data(), VERSIONS)
def test_connect_round_trip(data: st.DataObject, version: int) -> None:
    packet = data.draw(connects(version))
    raw = packet.encode()
    dec = Decoder()
    assert dec.feed(raw) == [packet]
    assert dec.version == version
    assert packet.encode(version) == raw


@settings(max_examples=60, deadline=None)
@given(st.data(), VERSIONS, st.lists(st.integers(1, 40), max_size=5))
def test_client_stream_round_trip(data: st.DataObject, version: int, sizes: list[int]) -> None:
    """CONNECT then a stream of client packets, decoded by a server in random chunks."""
    connect = data.draw(connects(version))
    packets = data.draw(st.lists(to_server(version), min_size=1, max_size=8))
    stream = b"".join(p.encode(version) for p in packets)
    for p, raw in zip(packets, [p.encode(version) for p in packets], strict=True):
        assert Decoder(server=True, version=version).feed(raw) == [p]
    dec = Decoder()
    got = feed_in_chunks(dec, connect.encode() + stream, sizes)
    got += dec.feed(b"")  # the CONNECT ended a batch
    assert got == [connect, *packets]
    one = Decoder(server=True, version=version)
    assert [q for i in range(len(stream)) for q in one.feed(stream[i : i + 1])] == packets


@settings(max_examples=60, deadline=None)
@given(st.data(), VERSIONS, st.lists(st.integers(1, 40), max_size=5))
def test_server_stream_round_trip(data: st.DataObject, version: int, sizes: list[int]) -> None:
    packets = data.draw(st.lists(to_client(version), min_size=1, max_size=8))
    encoded = [p.encode(version) for p in packets]
    for p, raw in zip(packets, encoded, strict=True):
        decoded = Decoder(server=False, version=version).feed(raw)
        assert decoded == [p]
        assert decoded[0].encode(version) == raw
    dec = Decoder(server=False, version=version)
    assert feed_in_chunks(dec, b"".join(encoded), sizes) == packets
    assert dec.buffered == 0
