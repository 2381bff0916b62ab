"""Child process for the crash tests: publish forever with sync=always, print each ack.

Usage: python crash_child.py STORE_DIR RUN_ID. Prints ``ready`` once open, then
one ``<payload> <seq>`` line per acknowledged publish, flushed immediately,
until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.bus.local import LocalBus
from streams.embedded import EmbeddedLog
from streams.types import PubAck, StreamConfig

SEGMENT_BYTES = 4096  # small, so the crash can land during a segment roll too


async def main(store: Path, run: str) -> None:
    log = await EmbeddedLog.open(store, LocalBus(), sync="always", segment_bytes=SEGMENT_BYTES)
    await log.add_stream(StreamConfig(name="CRASH", subjects=["crash.>"]))  # idempotent
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    i = 0
    while True:
        batch: list[tuple[str, asyncio.Future[PubAck]]] = []
        for _ in range(20):
            payload = f"{run}:{i}"
            i += 1
            batch.append((payload, log.publish_async(f"crash.{i % 3}", payload.encode())))
        for payload, fut in batch:
            ack = await fut
            out.write(f"{payload} {ack.seq}\n")
        out.flush()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
