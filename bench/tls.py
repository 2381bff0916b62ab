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
  certificate, MQTT CONNECT and CONNACK, then close (``--concurrency`` threads in each
  of ``--procs`` load processes, blocking pyOpenSSL clients: OpenSSL 4 offers the
  X25519MLKEM768 key exchange first, as current OpenSSL and Go clients do, and both
  brokers take it);
- ``resumed``: the same, each client thread resuming the session of its previous
  connection (the ticket that came with the CONNACK), as a reconnecting device does;
- ``qos0``: one publisher process writing 64-byte QoS 0 PUBLISHes in batches, one
  subscriber process counting deliveries/s;
- ``qos1``: the same at QoS 1, the publisher keeping 256 PUBLISHes unacknowledged,
  the subscriber PUBACKing each delivery.

Each scenario runs ``--rounds`` times, the brokers taking turns within a round, and
the median round is printed: the load generators share the machine's cores with the
broker (and, on a shared machine, with whatever else runs), so one window alone can be
off by half. For handshakes the broker's own CPU time per handshake (user + system,
from ``/proc``) is printed too: it does not depend on how the cores were shared. So is
the load generators' CPU per handshake: a TLS client does about the same cryptography
as the server, so it cannot be much cheaper than the broker; on two cores the rate is
bound by the sum of both, and the broker's CPU per handshake is the figure to compare.

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
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

from OpenSSL import SSL

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

    def run_queue_seconds(self) -> float | None:
        """Time the broker's threads spent runnable but waiting for a core (Linux schedstat)."""
        if self.proc is None:
            return None
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None
        return total / 1e9

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


def _openssl_client_context(pki_dir: str) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(f"{pki_dir}/Test_CA.pem")
    context.use_certificate_chain_file(f"{pki_dir}/dn.crt")
    context.use_privatekey_file(f"{pki_dir}/dn.key")
    context.set_verify(SSL.VERIFY_PEER)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return context


def _handshake_proc(
    port: int,
    pki_dir: str | None,
    seconds: float,
    conc: int,
    nice: int,
    resume: bool,
    out: MpQueue[tuple[int, float]],
) -> None:
    """``conc`` threads, each connecting, handshaking and CONNECTing in a loop.

    Blocking sockets and pyOpenSSL: the handshake runs in one OpenSSL call with the GIL
    released, so a client costs about 0.65 ms of CPU per handshake where an asyncio
    client on Python's ``ssl`` cost about 1.1 ms (more than either broker).
    """
    if nice:
        os.nice(nice)
    # One context per process: a real device fleet does not share TLS sessions.
    context = _openssl_client_context(pki_dir) if pki_dir else None
    counts = [0] * conc
    stop = time.monotonic() + seconds
    tag = os.getpid()

    def loop(i: int) -> None:
        n = 0
        session: SSL.Session | None = None
        while time.monotonic() < stop:
            n += 1
            sock = socket.create_connection((HOST, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn: SSL.Connection | socket.socket = sock
            if context is not None:
                tls = SSL.Connection(context, sock)
                tls.set_connect_state()
                tls.set_tlsext_host_name(b"localhost")
                if session is not None:
                    tls.set_session(session)
                tls.do_handshake()
                conn = tls
            conn.sendall(ml.connect_packet(f"h{tag}-{i}-{n}"))
            connack = b""
            while len(connack) < 4:
                chunk = conn.recv(4 - len(connack))
                if not chunk:
                    raise SystemExit("broker closed before CONNACK")
                connack += chunk
            assert connack[0] == 0x20 and connack[3] == 0, connack
            if resume and isinstance(conn, SSL.Connection):
                session = conn.get_session()  # with the tickets that came before the CONNACK
                # OpenSSL makes the session of a connection freed without close_notify
                # unresumable.
                conn.shutdown()
            sock.close()
            counts[i] += 1

    cpu0 = time.process_time()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(conc)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((sum(counts), time.process_time() - cpu0))


@dataclass
class HandshakeRun:
    """One window of the handshakes scenario."""

    rate: float
    count: int
    broker_cpu: float | None
    loadgen_cpu: float
    #: Seconds the broker's threads were runnable but had no core (None if unknown).
    broker_waited: float | None


def handshakes(
    t: Target, pki_dir: str, seconds: float, procs: int, conc: int, nice: int, resume: bool
) -> HandshakeRun:
    """New TLS connections for ``seconds``, load processes at niceness ``nice``
    (``resume``: each client thread resuming its previous session)."""
    out: MpQueue[tuple[int, float]] = mp.Queue()
    jobs = [
        mp.Process(
            target=_handshake_proc,
            args=(t.mqtt_port, pki_dir if t.tls else None, seconds, conc, nice, resume, out),
        )
        for _ in range(procs)
    ]
    waited0 = t.run_queue_seconds()
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
    waited1 = t.run_queue_seconds()
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    waited = waited1 - waited0 if waited0 is not None and waited1 is not None else None
    return HandshakeRun(total / elapsed, total, cpu, loadgen, waited)


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


def _print_handshake_costs(runs: dict[str, list[HandshakeRun]]) -> None:
    def per_handshake(label: str, pick: Callable[[HandshakeRun], float | None], note: str) -> None:
        cells = []
        for name, done in runs.items():
            count = sum(run.count for run in done)
            values = [pick(run) for run in done]
            if count and all(v is not None for v in values):
                total = sum(v for v in values if v is not None)
                cells.append(f"{name} {total / count * 1e6:>6,.0f} us")
        print(f"{label:10} {'  '.join(cells)}   ({note})")

    per_handshake("cpu/hs", lambda run: run.broker_cpu, "broker CPU per handshake, all rounds")
    # When the load generators cost as much per handshake as the broker, the rate is
    # shared-CPU bound; the broker's CPU per handshake is not.
    per_handshake("loadgen/hs", lambda run: run.loadgen_cpu, "load generators' CPU per handshake")
    # A broker with fewer threads than the load generators keep runnable gets a smaller
    # share of the cores: time it was ready to run but had no core, per handshake.
    per_handshake("waited/hs", lambda run: run.broker_waited, "broker runnable without a core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scenarios", default="handshakes,resumed,qos0,qos1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loadgen-nice",
        type=int,
        default=10,
        help="handshakes are also measured with the load processes at this niceness (0: not)",
    )
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
    plan: list[tuple[str, int]] = []
    for scenario in args.scenarios.split(","):
        if scenario == "handshakes" and args.loadgen_nice:
            plan += [("handshakes", 0), (f"handshakes nice {args.loadgen_nice}", args.loadgen_nice)]
        else:
            plan.append((scenario, 0))
    try:
        for t in targets:
            t.start(tmp / f"{t.name.replace(' ', '-')}.log")
        for scenario, nice in plan:
            rates: dict[str, list[float]] = {t.name: [] for t in targets}
            runs: dict[str, list[HandshakeRun]] = {t.name: [] for t in targets}
            for _ in range(args.rounds):
                for t in targets:
                    if scenario.startswith("handshakes") or scenario == "resumed":
                        run = handshakes(
                            t,
                            pki_dir,
                            args.seconds,
                            args.procs,
                            args.concurrency,
                            nice,
                            scenario == "resumed",
                        )
                        runs[t.name].append(run)
                        rate = run.rate
                    else:
                        rate = throughput(t, pki_dir, 1 if scenario == "qos1" else 0, args.seconds)
                    rates[t.name].append(rate)
            for t in targets:
                results[(scenario, t.name)] = statistics.median(rates[t.name])
            row = "  ".join(f"{t.name} {results[(scenario, t.name)]:>10,.0f}/s" for t in targets)
            print(f"{scenario:10} {row}   (median of {args.rounds})")
            if scenario.startswith("handshakes") or scenario == "resumed":
                _print_handshake_costs(runs)
    finally:
        for t in targets:
            t.stop()
    for scenario, _ in plan:
        jt, jp, ns = (results.get((scenario, t.name), 0.0) for t in targets)
        print(
            f"{scenario:10} jetgate tls / plain {jt / jp if jp else 0:.0%}   "
            f"jetgate tls / nats-server tls {jt / ns if ns else 0:.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
