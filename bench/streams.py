"""Log backend benchmark: pipelined publish with acks, and consume+ack through a durable consumer.

Prints one line per figure, ``BACKEND publish: N msgs/s`` and ``BACKEND consume: N msgs/s``,
for 128-byte messages. Each backend is one async function in ``BACKENDS`` that
returns its figures; add a backend by adding a function.

Run: ``.venv/bin/python bench/streams.py [-n 200000] [--backend embedded]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.bus.api import Msg
from gateway.bus.local import LocalBus
from streams.api import Log
from streams.embedded import EmbeddedLog
from streams.types import ConsumerConfig, PubAck, StreamConfig

PAYLOAD = b"x" * 128
WINDOW = 4000  # publishes in flight

Figures = dict[str, float]


async def publish_pipelined(log: Log, subject: str, n: int) -> float:
    """msgs/s publishing ``n`` messages with at most WINDOW acks outstanding."""
    start = time.perf_counter()
    window: list[asyncio.Future[PubAck]] = []
    for _ in range(n):
        window.append(log.publish_async(subject, PAYLOAD))
        if len(window) >= WINDOW:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)
    return n / (time.perf_counter() - start)


async def consume_acking_over_bus(log: Log, stream: str, n: int) -> float:
    """msgs/s through a durable push consumer, each message acked by publishing +ACK."""
    bus = log.bus
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_msg(msg: Msg) -> None:
        nonlocal count
        bus.publish(msg.reply, b"+ACK")
        count += 1
        if count == n and not done.done():
            done.set_result(None)

    await bus.subscribe("bench.deliver", on_msg)
    start = time.perf_counter()
    await log.add_consumer(
        stream,
        ConsumerConfig(
            durable_name="bench", deliver_subject="bench.deliver", max_ack_pending=20000
        ),
    )
    await asyncio.wait_for(done, 120)
    await bus.flush()
    elapsed = time.perf_counter() - start
    info = await log.consumer_info(stream, "bench")
    assert info.num_pending == 0 and info.num_ack_pending == 0, info
    return n / elapsed


async def embedded(n: int) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        log = await EmbeddedLog.open(Path(tmp), LocalBus(), sync=120.0)
        try:
            await log.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"]))
            pub = await publish_pipelined(log, "bench.x", n)
            assert (await log.stream_info("BENCH")).state.messages == n
            con = await consume_acking_over_bus(log, "BENCH", n)
        finally:
            await log.close()
    return {"publish": pub, "consume": con}


async def embedded_always(n: int) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        log = await EmbeddedLog.open(Path(tmp), LocalBus(), sync="always")
        try:
            await log.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"]))
            pub = await publish_pipelined(log, "bench.x", n)
        finally:
            await log.close()
    return {"publish": pub}


async def jetstream(n: int) -> Figures:
    """Delegates to bench/streams_jetstream.py, which owns the server and baselines."""
    from bench import streams_jetstream

    await streams_jetstream.main(n, streams_jetstream.StorageType.FILE)
    return {}


BACKENDS: dict[str, Callable[[int], Awaitable[Figures]]] = {
    "embedded": embedded,
    "embedded(sync=always)": embedded_always,
    "jetstream": jetstream,
}


async def main(n: int, names: list[str]) -> None:
    for name in names:
        figures = await BACKENDS[name](n)
        for what, value in figures.items():
            print(f"{name} {what}: {value:,.0f} msgs/s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="messages per run")
    parser.add_argument("--backend", action="append", choices=sorted(BACKENDS))
    args = parser.parse_args()
    asyncio.run(main(args.n, args.backend or list(BACKENDS)))
