"""TLS benchmark: handshakes/s and QoS 0/1 throughput over TLS, beside plain TCP and nats-server.

Brokers, each a subprocess on free loopback ports, started in the same run with
the same certificates (an ECDSA P-256 CA, broker and client certificate made
with ``cryptography``):

- ``jetgate tls``: ``mqtt { tls { cert_file, key_file, ca_file, verify: true } }``;
- ``jetgate plain``: the same gateway's plain MQTT listener (a second ``mqtt`` port is not
  possible, so a second jetgate process without TLS);
- ``nats-server tls``: the NATS server's MQTT listener with the same ``tls`` block.

Scenarios (``--seconds`` each):

- ``handshakes``: new connections per second, each a TLS handshake with the client
  certificate, MQTT CONNECT and CONNACK, then close (``--concurrency`` at a time,
  from ``--procs`` load processes);
- ``qos0``: one publisher process writing 64-byte QoS 0 PUBLISHes in batches, one
  subscriber process counting deliveries/s;
- ``qos1``: the same at QoS 1, the publisher keeping 256 PUBLISHes unacknowledged,
  the subscriber PUBACKing each delivery.

Each scenario runs ``--rounds`` times, the brokers taking turns within a round, and
the median round is printed: the load generators share the machine's cores with the
broker (and, on a shared machine, with whatever else runs), so one window alone can be
off by half. For handshakes the broker's own CPU time per handshake (user + system,
from ``/proc``) is printed too: it does not depend on how the cores were shared. So is
the load generators' CPU per handshake: a Python TLS client costs about as much per
handshake as the broker, so on two cores the rate is bound by the sum of both and the
broker's CPU per handshake is the figure to compare.

Helpers (free ports, broker command lines, MQTT packets) come from ``bench/broker.py``
and ``bench/mqttload.py``. Run: ``.venv/bin/python bench/tls.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import multiprocessing as mp
import os
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker as bb
import mqttload as ml

from tests.integration.tls.pki import make_pki

HOST = bb.HOST
PAYLOAD = b"x" * 64
TOPIC = "bench/tls"


@dataclass
class Target:
    """One broker under test."""

    name: str
    argv: list[str]
    mqtt_port: int
    tls: bool
    proc: subprocess.Popen[bytes] | None = None

    def start(self, log: Path) -> None:
        out = open(log, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=bb.ROOT, stdin=subprocess.DEVNULL
        )
        out.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection((HOST, self.mqtt_port), 0.5).close()
                return
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start; see {log}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the broker process so far (Linux), else None."""
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc.kill()


def client_context(pki_dir: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=f"{pki_dir}/Test_CA.pem")
    context.load_cert_chain(f"{pki_dir}/dn.crt", f"{pki_dir}/dn.key")
    return context


async def _open(
    port: int, pki_dir: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if pki_dir is None:
        return await asyncio.open_connection(HOST, port)
    return await asyncio.open_connection(
        HOST, port, ssl=client_context(pki_dir), server_hostname="localhost"
    )


async def _session(
    port: int, pki_dir: str | None, cid: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(port, pki_dir)
    writer.write(ml.connect_packet(cid))
    connack = await reader.readexactly(4)
    assert connack[0] == 0x20 and connack[3] == 0, connack
    return reader, writer


# -- handshakes ---------------------------------------------------------------------------


def _handshake_proc(
    port: int, pki_dir: str | None, seconds: float, conc: int, out: MpQueue[tuple[int, float]]
) -> None:
    async def run() -> int:
        # One context per process: a real device fleet does not share TLS sessions.
        context = client_context(pki_dir) if pki_dir else None
        count = 0
        stop = time.monotonic() + seconds

        async def loop(i: int) -> None:
            nonlocal count
            n = 0
            while time.monotonic() < stop:
                n += 1
                if context is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                else:
                    reader, writer = await asyncio.open_connection(
                        HOST, port, ssl=context, server_hostname="localhost"
                    )
                writer.write(ml.connect_packet(f"h{i}-{n}-{id(writer)}"))
                await reader.readexactly(4)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                count += 1

        await asyncio.gather(*(loop(i) for i in range(conc)))
        return count

    cpu0 = time.process_time()
    count = asyncio.run(run())
    out.put((count, time.process_time() - cpu0))


def handshakes(
    t: Target, pki_dir: str, seconds: float, procs: int, conc: int
) -> tuple[float, int, float | None, float]:
    """Handshakes/s, how many, the broker's CPU seconds meanwhile (None if unknown), and the
    load generators' CPU seconds."""
    out: MpQueue[tuple[int, float]] = mp.Queue()
    jobs = [
        mp.Process(
            target=_handshake_proc,
            args=(t.mqtt_port, pki_dir if t.tls else None, seconds, conc, out),
        )
        for _ in range(procs)
    ]
    cpu0 = t.cpu_seconds()
    start = time.monotonic()
    for job in jobs:
        job.start()
    results = [out.get(timeout=seconds + 60) for _ in jobs]
    total = sum(count for count, _ in results)
    loadgen = sum(cpu for _, cpu in results)
    for job in jobs:
        job.join()
    elapsed = time.monotonic() - start
    cpu1 = t.cpu_seconds()
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return total / elapsed, total, cpu, loadgen


# -- throughput -----------------------------------------------------------------------------


def _subscriber(
    port: int, pki_dir: str | None, qos: int, seconds: float, ready: MpEvent, out: MpQueue[float]
) -> None:
    async def run() -> float:
        reader, writer = await _session(port, pki_dir, f"sub{qos}")
        writer.write(ml.subscribe_packet(1, TOPIC, qos))
        await reader.readexactly(5)
        ready.set()
        buf, pos, count = b"", 0, 0
        first = None
        deadline = None
        while True:
            timeout = 5.0 if deadline is None else max(0.01, deadline - time.monotonic())
            try:
                data = await asyncio.wait_for(reader.read(256 * 1024), timeout)
            except TimeoutError:
                break
            if not data:
                break
            if first is None:
                first = time.monotonic()
                deadline = first + seconds
            buf = buf[pos:] + data
            packets, pos = ml.split_packets(buf)
            acks = []
            for kind, body in packets:
                if kind >> 4 == 3:
                    count += 1
                    if qos:
                        topic_len = struct.unpack_from("!H", body)[0]
                        acks.append(
                            ml.puback_packet(struct.unpack_from("!H", body, 2 + topic_len)[0])
                        )
            if acks:
                writer.write(b"".join(acks))
            if deadline is not None and time.monotonic() >= deadline:
                break
        writer.close()
        return count / (time.monotonic() - first) if first else 0.0

    out.put(asyncio.run(run()))


def _publisher(port: int, pki_dir: str | None, qos: int, seconds: float, ready: MpEvent) -> None:
    async def run() -> None:
        reader, writer = await _session(port, pki_dir, f"pub{qos}")
        ready.wait(10)
        stop = time.monotonic() + seconds + 0.5
        if qos == 0:
            batch = ml.publish_packet(TOPIC, PAYLOAD) * 500
            while time.monotonic() < stop:
                writer.write(batch)
                await writer.drain()
        else:
            window, pid = 256, 0
            buf, pos = b"", 0
            while time.monotonic() < stop:
                packets = []
                for _ in range(window):
                    pid = pid % 0xFFFF + 1
                    packets.append(ml.publish_packet(TOPIC, PAYLOAD, 1, pid))
                writer.write(b"".join(packets))
                acked = 0
                while acked < window:
                    buf = buf[pos:] + await reader.read(65536)
                    got, pos = ml.split_packets(buf)
                    acked += sum(1 for kind, _ in got if kind >> 4 == 4)
        writer.close()

    asyncio.run(run())


def throughput(t: Target, pki_dir: str, qos: int, seconds: float) -> float:
    ready: MpEvent = mp.Event()
    out: MpQueue[float] = mp.Queue()
    pki = pki_dir if t.tls else None
    sub = mp.Process(target=_subscriber, args=(t.mqtt_port, pki, qos, seconds, ready, out))
    pub = mp.Process(target=_publisher, args=(t.mqtt_port, pki, qos, seconds, ready))
    sub.start()
    pub.start()
    rate: float = out.get(timeout=seconds + 60)
    pub.join(seconds + 30)
    sub.join(10)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scenarios", default="handshakes,qos0,qos1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlsbench-"))
    (tmp / "pki").mkdir()
    pki = make_pki(tmp / "pki")
    pki_dir = str(pki.root)
    tls = (
        f'tls {{ cert_file: "{pki.server.cert}", key_file: "{pki.server.key}", '
        f'ca_file: "{pki.ca}", verify: true, timeout: 2 }}'
    )
    targets: list[Target] = []
    for name, with_tls, argv_of in (
        ("jetgate tls", True, bb.jetgate_argv),
        ("jetgate plain", False, bb.jetgate_argv),
        ("nats-server tls", True, bb.nats_server_argv),
    ):
        port, mqtt_port = bb.free_port(), bb.free_port()
        conf = tmp / f"{name.replace(' ', '-')}.conf"
        conf.write_text(
            f"server_name: bench\nlisten: {HOST}:{port}\n"
            f'jetstream {{ store_dir: "{tmp / name.replace(" ", "-")}" }}\n'
            f"mqtt {{ listen: {HOST}:{mqtt_port}\n {tls if with_tls else ''} }}\n"
        )
        targets.append(Target(name, argv_of(conf), mqtt_port, with_tls))
    print(
        f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  seconds={args.seconds} "
        f"procs={args.procs} concurrency={args.concurrency} rounds={args.rounds}  "
        "(ECDSA P-256, TLS 1.3)"
    )
    results: dict[tuple[str, str], float] = {}
    try:
        for t in targets:
            t.start(tmp / f"{t.name.replace(' ', '-')}.log")
        for scenario in args.scenarios.split(","):
            rates: dict[str, list[float]] = {t.name: [] for t in targets}
            counts: dict[str, int] = dict.fromkeys(rates, 0)
            cpus: dict[str, float | None] = dict.fromkeys(rates, 0.0)
            loadgen: dict[str, float] = dict.fromkeys(rates, 0.0)
            for _ in range(args.rounds):
                for t in targets:
                    if scenario == "handshakes":
                        rate, count, cpu, load_cpu = handshakes(
                            t, pki_dir, args.seconds, args.procs, args.concurrency
                        )
                        counts[t.name] += count
                        loadgen[t.name] += load_cpu
                        spent = cpus[t.name]
                        cpus[t.name] = None if spent is None or cpu is None else spent + cpu
                    else:
                        rate = throughput(t, pki_dir, 1 if scenario == "qos1" else 0, args.seconds)
                    rates[t.name].append(rate)
            for t in targets:
                results[(scenario, t.name)] = statistics.median(rates[t.name])
            row = "  ".join(f"{t.name} {results[(scenario, t.name)]:>10,.0f}/s" for t in targets)
            print(f"{scenario:10} {row}   (median of {args.rounds})")
            if scenario == "handshakes":
                per = "  ".join(
                    f"{name} {spent / counts[name] * 1e6:>6,.0f} us"
                    for name, spent in cpus.items()
                    if spent is not None and counts[name]
                )
                print(f"{'cpu/hs':10} {per}   (broker CPU per handshake, all rounds)")
                gen = "  ".join(
                    f"{name} {spent / counts[name] * 1e6:>6,.0f} us"
                    for name, spent in loadgen.items()
                    if counts[name]
                )
                # When the load generators cost as much per handshake as the broker, the
                # rate above is shared-CPU bound; the broker's CPU per handshake is not.
                print(f"{'loadgen/hs':10} {gen}   (load generators' CPU per handshake)")
    finally:
        for t in targets:
            t.stop()
    for scenario in args.scenarios.split(","):
        jt, jp, ns = (results.get((scenario, t.name), 0.0) for t in targets)
        print(
            f"{scenario:10} jetgate tls / plain {jt / jp if jp else 0:.0%}   "
            f"jetgate tls / nats-server tls {jt / ns if ns else 0:.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
