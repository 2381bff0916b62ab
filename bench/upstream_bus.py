"""UpstreamBus throughput against a local nats-server, next to plain nats-py.

Run: ``.venv/bin/python bench/upstream_bus.py [N]``. Prints messages per second for
- publish: ``bus.publish`` (plain method) vs ``await nc.publish`` (coroutine per message);
- delivery: a bus callback subscription (synchronous fan-out in nats-py's read loop)
  vs a nats-py ``cb=`` subscription (queue + task + coroutine per message);
- fan-out: one upstream subscription shared by 100 local subscribers.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bus.api import Msg
from gateway.bus.upstream import UpstreamBus
from gateway.options.model import UpstreamOptions

NATS_SERVER = Path(sys.executable).parent / "nats-server"
PAYLOAD = b"x" * 64


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                if c.recv(4).startswith(b"INFO"):
                    break
        except OSError:
            time.sleep(0.01)
    return proc, f"nats://127.0.0.1:{port}"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} msg/s"


async def main(n: int) -> None:
    proc, url = start_server()
    try:
        bus = await UpstreamBus.connect(UpstreamOptions(urls=(url,)), name="bench")
        nc = await nats.connect(url)
        # Deliveries are fed by a second bus, the fastest publisher at hand.
        feeder = await UpstreamBus.connect(UpstreamOptions(urls=(url,)), name="feeder")

        t = time.perf_counter()
        for _ in range(n):
            bus.publish("bench.pub", PAYLOAD)
        await bus.flush(60)
        print(f"publish  bus.publish          {rate(n, time.perf_counter() - t)}")
        t = time.perf_counter()
        for _ in range(n):
            await nc.publish("bench.pub", PAYLOAD)
        await nc.flush(60)
        print(f"publish  await nc.publish     {rate(n, time.perf_counter() - t)}")

        done = asyncio.Event()
        count = 0

        def on_msg(_: Msg) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.set()

        await bus.subscribe("bench.bus", on_msg)
        t = time.perf_counter()
        for _ in range(n):
            feeder.publish("bench.bus", PAYLOAD)
        await asyncio.wait_for(done.wait(), 120)
        print(f"deliver  bus callback         {rate(n, time.perf_counter() - t)}")

        done2 = asyncio.Event()
        count2 = 0

        async def on_nats(_: object) -> None:
            nonlocal count2
            count2 += 1
            if count2 == n:
                done2.set()

        await bus.nc.subscribe("bench.raw", cb=on_nats, pending_msgs_limit=0, pending_bytes_limit=0)
        await bus.nc.flush()
        t = time.perf_counter()
        for _ in range(n):
            feeder.publish("bench.raw", PAYLOAD)
        await asyncio.wait_for(done2.wait(), 120)
        print(f"deliver  nats-py cb=          {rate(n, time.perf_counter() - t)}")

        fan = 100
        done3 = asyncio.Event()
        count3 = 0

        def on_fan(_: Msg) -> None:
            nonlocal count3
            count3 += 1
            if count3 == n * fan // 10:
                done3.set()

        for _ in range(fan):
            await bus.subscribe("bench.fan", on_fan)
        t = time.perf_counter()
        for _ in range(n // 10):
            feeder.publish("bench.fan", PAYLOAD)
        await asyncio.wait_for(done3.wait(), 120)
        print(
            f"fan-out  1 upstream sub x {fan} local: "
            f"{rate(n * fan // 10, time.perf_counter() - t)} (local deliveries)"
        )
        await nc.close()
        await feeder.close()
        await bus.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
