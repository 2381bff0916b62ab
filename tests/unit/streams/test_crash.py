"""Crash safety of the embedded store: SIGKILL a publisher at random points, reopen, verify.

After every kill, every publish that was acknowledged under sync ``always``
must be there, at its acknowledged sequence, in order, exactly once; a torn
tail is truncated and a corrupt record is never served.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.bus.local import LocalBus
from streams.embedded import EmbeddedLog
from streams.errors import MessageNotFound
from streams.types import StreamConfig

ROOT = Path(__file__).resolve().parents[3]
CHILD = Path(__file__).with_name("crash_child.py")


def _run_and_kill(store: Path, run: str, rng: random.Random) -> dict[str, int]:
    """Start the child, let it publish a random while, SIGKILL it; return acked payload->seq."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(store), run],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    acked: dict[str, int] = {}
    # Read a random number of acks, then kill while it keeps publishing.
    target = rng.randint(1, 400)
    while len(acked) < target:
        line = proc.stdout.readline()
        if not line:
            break
        payload, seq = line.decode().split()
        acked[payload] = int(seq)
    proc.send_signal(signal.SIGKILL)
    # Acks printed before death count too: the store promised them.
    for line in proc.stdout.read().decode().splitlines():
        parts = line.split()
        if len(parts) == 2:
            acked[parts[0]] = int(parts[1])
    proc.wait()
    return acked


async def _verify(store: Path, acked: dict[str, int]) -> None:
    log = await EmbeddedLog.open(store, LocalBus(), sync="always")
    try:
        info = await log.stream_info("CRASH")
        state = info.state
        # No deletes ever happen: the stream is a contiguous run of sequences.
        assert state.first_seq == 1
        assert state.messages == state.last_seq
        seen: dict[bytes, int] = {}
        for seq in range(1, state.last_seq + 1):
            msg = await log.get_msg("CRASH", seq)
            assert msg.data not in seen, f"{msg.data!r} stored twice"
            seen[msg.data] = seq
        for payload, seq in acked.items():
            assert seen.get(payload.encode()) == seq, f"acked {payload} at {seq} lost"
        # In order: within each run, payload counters increase with the sequence.
        last_by_run: dict[str, int] = {}
        for data, _seq in sorted(seen.items(), key=lambda kv: kv[1]):
            run, i = data.decode().split(":")
            assert int(i) > last_by_run.get(run, -1)
            last_by_run[run] = int(i)
        with pytest.raises(MessageNotFound):
            await log.get_msg("CRASH", state.last_seq + 1)
    finally:
        await log.close()


async def test_sigkill_at_random_points_loses_no_acknowledged_message(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked: dict[str, int] = {}
    for run in range(8):
        acked.update(_run_and_kill(store, f"r{run}", rng))
        await _verify(store, acked)
    assert len(acked) > 8
    assert len(_segments_of(store, "CRASH")) > 1  # kills also landed across segment rolls


def _segments_of(store: Path, stream: str) -> list[Path]:
    return sorted((store / "streams" / stream / "msgs").glob("*.seg"))


def _segments(store: Path) -> list[Path]:
    return _segments_of(store, "T")


async def _fill(store: Path, n: int) -> None:
    log = await EmbeddedLog.open(store, LocalBus(), sync="always")
    await log.add_stream(StreamConfig(name="T", subjects=["t"]))
    for i in range(n):
        await log.publish("t", b"payload-%d" % i)
    await log.close()


async def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    store = tmp_path / "store"
    await _fill(store, 5)
    seg = _segments(store)[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 3)  # the last record is now torn
    log = await EmbeddedLog.open(store, LocalBus(), sync="always")
    try:
        state = (await log.stream_info("T")).state
        assert (state.messages, state.last_seq) == (4, 4)
        assert (await log.get_msg("T", 4)).data == b"payload-3"
        assert (await log.publish("t", b"next")).seq == 5
    finally:
        await log.close()
    log = await EmbeddedLog.open(store, LocalBus(), sync="always")
    try:
        assert (await log.get_msg("T", 5)).data == b"next"
    finally:
        await log.close()


async def test_corrupt_record_is_never_served(tmp_path: Path) -> None:
    store = tmp_path / "store"
    await _fill(store, 5)
    seg = _segments(store)[-1]
    data = bytearray(seg.read_bytes())
    needle = data.find(b"payload-2")
    data[needle + 8] ^= 0xFF  # flip a byte inside record 3's payload
    seg.write_bytes(bytes(data))
    log = await EmbeddedLog.open(store, LocalBus(), sync="always")
    try:
        state = (await log.stream_info("T")).state
        assert state.last_seq == 2  # nothing from the bad record on is trusted
        for seq in (1, 2):
            assert (await log.get_msg("T", seq)).data == b"payload-%d" % (seq - 1)
    finally:
        await log.close()
