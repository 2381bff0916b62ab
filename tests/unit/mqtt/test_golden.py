"""Golden vectors (tests/unit/mqtt/vectors.py): decode, encode, and chunking equivalence."""

from __future__ import annotations

import pytest

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connect, Packet
from tests.unit.mqtt.vectors import VECTORS

IDS = [v[0] for v in VECTORS]


def decoders_for(version: int, side: str, packet: Packet) -> list[Decoder]:
    if isinstance(packet, Connect):
        return [Decoder()]
    out = []
    if side in ("server", "both"):
        out.append(Decoder(server=True, version=version))
    if side in ("client", "both"):
        out.append(Decoder(server=False, version=version))
    return out


@pytest.mark.parametrize(("name", "version", "side", "raw", "packet"), VECTORS, ids=IDS)
def test_decode_whole(name: str, version: int, side: str, raw: bytes, packet: Packet) -> None:
    for dec in decoders_for(version, side, packet):
        assert dec.feed(raw) == [packet]
        assert dec.buffered == 0


@pytest.mark.parametrize(("name", "version", "side", "raw", "packet"), VECTORS, ids=IDS)
def test_decode_byte_by_byte(
    name: str, version: int, side: str, raw: bytes, packet: Packet
) -> None:
    for dec in decoders_for(version, side, packet):
        got: list[Packet] = []
        for i in range(len(raw)):
            got += dec.feed(raw[i : i + 1])
            if i < len(raw) - 1:
                assert got == []
        assert got == [packet]


@pytest.mark.parametrize(("name", "version", "side", "raw", "packet"), VECTORS, ids=IDS)
def test_encode(name: str, version: int, side: str, raw: bytes, packet: Packet) -> None:
    assert packet.encode(version) == raw


def test_stream_of_all_vectors_in_every_chunking() -> None:
    """One connection per version: all its vectors back to back, whole and in chunks."""
    for version in (3, 4, 5):
        for side in ("server", "client"):
            rows = [
                v
                for v in VECTORS
                if v[1] == version and v[2] in (side, "both") and not isinstance(v[4], Connect)
            ]
            stream = b"".join(r[3] for r in rows)
            expected = [r[4] for r in rows]
            for size in (1, 2, 3, 7, 64, len(stream) or 1):
                dec = Decoder(server=side == "server", version=version)
                got: list[Packet] = []
                for i in range(0, len(stream), size):
                    got += dec.feed(stream[i : i + size])
                assert got == expected, (version, side, size)


def test_connect_ends_the_batch_and_sets_the_version() -> None:
    connect = next(v for v in VECTORS if v[0] == "connect-5-session-expiry")
    publish = next(v for v in VECTORS if v[0] == "publish-5-qos0")
    dec = Decoder()
    assert dec.version is None
    assert dec.feed(connect[3] + publish[3]) == [connect[4]]
    assert dec.version == 5
    assert dec.buffered == len(publish[3])
    dec.max_packet_size = 1000
    assert dec.feed(b"") == [publish[4]]
    assert dec.buffered == 0
