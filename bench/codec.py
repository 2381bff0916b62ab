"""Throughput of the MQTT codec (gateway/mqtt) on one core.

Decodes and encodes streams of small PUBLISH packets, the bulk of MQTT
traffic: QoS 0 with a 64-byte payload and a 3-level topic, then QoS 1
PUBLISH + PUBACK pairs, for MQTT 3.1.1 and 5.0. Decoding feeds the stream in
64 KiB chunks, as a socket read would deliver it. Each figure is the best of
several rounds. The last two lines are the QoS 0 (3.1.1) figures.

Run: .venv/bin/python bench/codec.py [--rounds N] [--packets N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connect, Packet, Puback, Publish

TOPIC = "site/device42/temperature"
PAYLOAD = bytes(range(64))
CHUNK = 65536


def best_rate(fn: Callable[[], int], rounds: int) -> float:
    """The best packets/s over ``rounds`` runs of ``fn`` (which returns a packet count)."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        count = fn()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best


def make_packets(kind: str, n: int) -> list[Packet]:
    if kind == "qos0":
        return [Publish(TOPIC, PAYLOAD) for _ in range(n)]
    out: list[Packet] = []
    for i in range(n // 2):
        pid = i % 65535 + 1
        out.append(Publish(TOPIC, PAYLOAD, qos=1, packet_id=pid))
        out.append(Puback(pid))
    return out


def decode_rate(stream: bytes, version: int, count: int, rounds: int) -> float:
    connect = Connect("bench", protocol_level=version).encode()
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]

    def run() -> int:
        dec = Decoder()
        dec.feed(connect)
        got = 0
        for chunk in chunks:
            got += len(dec.feed(chunk))
        assert got == count, (got, count)
        return got

    return best_rate(run, rounds)


def encode_rate(packets: list[Packet], version: int, rounds: int) -> float:
    def run() -> int:
        for packet in packets:
            packet.encode(version)
        return len(packets)

    return best_rate(run, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--packets", type=int, default=200_000)
    args = parser.parse_args()
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for kind in ("qos1", "qos0"):
        for version in (5, 4):
            packets = make_packets(kind, args.packets)
            stream = b"".join(p.encode(version) for p in packets)
            dec = decode_rate(stream, version, len(packets), args.rounds)
            enc = encode_rate(packets, version, args.rounds)
            results[kind, version] = (dec, enc)
            label = "QoS 0 PUBLISH" if kind == "qos0" else "QoS 1 PUBLISH+PUBACK"
            print(
                f"{label:22} v{version}: decode {dec:>12,.0f} packets/s   "
                f"encode {enc:>12,.0f} packets/s   ({len(stream) / len(packets):.0f} B/packet)"
            )
    single = [p.encode(4) for p in make_packets("qos0", args.packets // 4)]

    def one_per_feed() -> int:
        dec = Decoder(server=True, version=4)
        for raw in single:
            dec.feed(raw)
        return len(single)

    print(
        f"QoS 0 PUBLISH, one packet per feed() v4: decode "
        f"{best_rate(one_per_feed, args.rounds):>12,.0f} packets/s"
    )
    dec, enc = results["qos0", 4]
    print(f"decode: {dec:.0f} packets/s")
    print(f"encode: {enc:.0f} packets/s")


if __name__ == "__main__":
    main()
