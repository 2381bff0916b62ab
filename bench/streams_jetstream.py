"""Benchmark of the JetStream log backend against raw nats-py on the same server.

Prints messages per second for 128-byte messages:

- ``jetstream publish``: ``JetStreamLog.publish_async`` pipelined, all acks awaited;
- ``jetstream consume``: a push consumer delivering to a Bus subscription, each
  message acknowledged with ``Log.ack``;
- ``jetstream raw-nats-py publish``: nats-py ``js.publish_async`` (its pipelined
  publish with acks), and ``js.publish`` one at a time, as baselines;
- the ratio of our publish to the faster baseline.

Run: ``.venv/bin/python -m bench.streams_jetstream [-n 50000]``. Starts its own
``nats-server -js`` (from the virtualenv) on a free port in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nats

from streams.jetstream import JetStreamLog
from streams.types import ConsumerConfig, PubAck, StorageType, StreamConfig

PAYLOAD = b"x" * 128
WINDOW = 4000  # publishes in flight at most (nats-py's default for publish_async)


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    binary = Path(sys.executable).parent / "nats-server"
    with tempfile.TemporaryDirectory() as store, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        proc = subprocess.Popen(
            [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn,
                ):
                    if conn.recv(4).startswith(b"INFO"):
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("nats-server did not start")
                time.sleep(0.02)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


async def bench_ours_publish(url: str, n: int, storage: StorageType) -> float:
    log = await JetStreamLog.connect(url)
    try:
        await log.add_stream(StreamConfig(name="OURS", subjects=("ours.>",), storage=storage))
        start = time.perf_counter()
        window: list[asyncio.Future[PubAck]] = []
        for _ in range(n):
            window.append(log.publish_async("ours.x", PAYLOAD))
            if len(window) >= WINDOW:
                await asyncio.gather(*window)
                window.clear()
        await asyncio.gather(*window)
        elapsed = time.perf_counter() - start
        assert (await log.stream_info("OURS")).state.messages == n
        return rate(n, elapsed)
    finally:
        await log.close()


async def bench_ours_consume(url: str, n: int) -> float:
    log = await JetStreamLog.connect(url)
    try:
        sub = await log.bus.subscribe("bench.deliver")
        start = time.perf_counter()
        await log.add_consumer(
            "OURS",
            ConsumerConfig(
                durable_name="bench", deliver_subject="bench.deliver", max_ack_pending=20000
            ),
        )
        for _ in range(n):
            msg = await sub.next_msg(10)
            await log.ack(msg.reply)
        await log.consumer_info("OURS", "bench")  # waits for the acks to be processed
        elapsed = time.perf_counter() - start
        info = await log.consumer_info("OURS", "bench")
        assert info.num_ack_pending == 0 and info.num_pending == 0, info
        return rate(n, elapsed)
    finally:
        await log.close()


async def bench_raw_async(url: str, n: int, storage: StorageType) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(publish_async_max_pending=WINDOW)
        await js.add_stream(name="RAW", subjects=["raw.>"], storage=storage.value)
        start = time.perf_counter()
        futs = []
        for _ in range(n):
            futs.append(await js.publish_async("raw.x", PAYLOAD))
        await js.publish_async_completed()
        for f in futs:
            f.result()
        elapsed = time.perf_counter() - start
        return rate(n, elapsed)
    finally:
        await nc.close()


async def bench_raw_sync(url: str, n: int, storage: StorageType) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="RAWSYNC", subjects=["rawsync.>"], storage=storage.value)
        start = time.perf_counter()
        for _ in range(n):
            await js.publish("rawsync.x", PAYLOAD)
        return rate(n, time.perf_counter() - start)
    finally:
        await nc.close()


async def main(n: int, storage: StorageType) -> None:
    with nats_server() as url:
        raw_async = await bench_raw_async(url, n, storage)
        raw_sync = await bench_raw_sync(url, max(1, n // 10), storage)
        ours = await bench_ours_publish(url, n, storage)
        consume = await bench_ours_consume(url, n)
    base = max(raw_async, raw_sync)
    print(f"jetstream publish: {ours:,.0f} msgs/s  ({n} x {len(PAYLOAD)} B, {storage} storage)")
    print(f"jetstream consume: {consume:,.0f} msgs/s  (push, Log.ack each)")
    print(f"jetstream raw-nats-py publish (js.publish_async): {raw_async:,.0f} msgs/s")
    print(f"jetstream raw-nats-py publish (js.publish, one at a time): {raw_sync:,.0f} msgs/s")
    print(f"jetstream publish / raw-nats-py: {ours / base:.0%} (target >= 60%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="messages per run")
    parser.add_argument("--storage", choices=["file", "memory"], default="file")
    args = parser.parse_args()
    asyncio.run(main(args.n, StorageType(args.storage)))
