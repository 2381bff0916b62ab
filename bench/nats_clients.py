"""NATS client benchmark over loopback: nats-server as reference, then jetgate, side by side.

What it measures, per server, each scenario one window of ``--seconds``:

- ``nats pub 64B`` / ``nats pub 1KiB``: one pipelined publisher (nats-py style: ``PUB``s
  written back to back without waiting, a ``PING``/``PONG`` flush at the end) through the
  server to one subscriber on the same subject; messages/s counted at the subscriber
  (what the publisher wrote is in the note).
- ``nats req/rep seq``: one responder, one requester doing sequential requests (64-byte
  payload, reply subjects under a wildcard ``_INBOX.<id>.*`` subscription as nats-py
  does); round trips/s, with round-trip p50/p99 in the note.
- ``nats req/rep x16``: the same with 16 requests kept in flight.

How: each server runs as a subprocess on a free loopback port with a temporary config
(nats-server: ``listen``; jetgate: ``python -m gateway -c``, ``listen`` and
``mqtt { port: 0 }``, or with ``--jetgate-mqtt`` an MQTT listener and a temporary
``jetstream { store_dir }``) and is stopped with SIGTERM. The load comes from separate
processes on raw sockets, not nats-py (see ``bench/natsload.py``): pre-encoded ``PUB``
frames written in ~128 KiB chunks, and a subscriber that counts fixed-size ``MSG`` frames
with stepped-slice checks rather than parsing each one. Process management, the windows
and the CPU accounting come from ``bench/broker.py``: next to every figure is the server's
CPU (utime+stime from /proc/<pid>/stat over the window) and, at the end of the line, the
load generator's (the workers' process CPU over the same window, against nats-server /
against jetgate), in % of one core, so one can tell which side was the limit.

Output: one line per figure, ``<scenario>: nats-server <value> (cpu ..) | jetgate <value>
(cpu ..) | ratio <jetgate/nats-server> | loadgen cpu <nats>% / <jetgate>%``.

Run: ``.venv/bin/python bench/nats_clients.py [--only nats|jetgate] [--seconds 5]
[--scenarios pub64,pub1k,req1,req16] [--jetgate-mqtt]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import broker as bm
import mqttload as ml
import natsload as nl

HOST = bm.HOST
SUBJECT = "bench.data"
REQ_SUBJECT = "bench.req"
REQ_PAYLOAD = 64
TARGET = 0.5  # jetgate / nats-server


# -- servers ----------------------------------------------------------------------------------


def nats_conf(port: int, tmp: Path) -> str:
    return f"server_name: bench\nlisten: {HOST}:{port}\n"


def jetgate_conf(port: int, tmp: Path) -> str:
    return f"listen: {HOST}:{port}\nmqtt {{ port: 0 }}\n"


def jetgate_mqtt_conf(port: int, tmp: Path) -> str:
    return (
        f"listen: {HOST}:{port}\n"
        f'jetstream {{ store_dir: "{tmp / "store"}" }}\n'
        f"mqtt {{ listen: {HOST}:{bm.free_port()} }}\n"
    )


@dataclass
class NatsServer(bm.Broker):
    """``bench/broker.py``'s broker subprocess, configured and probed as a NATS server."""

    config: Callable[[int, Path], str] = nats_conf

    def start(self) -> bool:
        self.tmp = Path(tempfile.mkdtemp(prefix="natsbench-"))
        self.port = bm.free_port()
        conf = self.tmp / "bench.conf"
        conf.write_text(self.config(self.port, self.tmp))
        log = open(self.tmp / "broker.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv_of(conf),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=bm.ROOT,
            preexec_fn=bm._die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if nl.probe(HOST, self.port, timeout=min(2.0, self.ready_timeout)):
                self.available = True
                return True
            time.sleep(0.1)
        return False


# -- scenarios --------------------------------------------------------------------------------

Jobs = list[tuple[Callable[..., None], tuple[Any, ...]]]


@dataclass
class Options:
    seconds: float
    max_msgs: int


def scenario_pub(size: int) -> Callable[[NatsServer, Options], bm.Figure]:
    def run(s: NatsServer, o: Options) -> bm.Figure:
        payload = ml.payload_of(size)
        jobs: Jobs = [
            (nl.subscriber, (HOST, s.port, SUBJECT, size, o.seconds)),
            (nl.publisher, (HOST, s.port, SUBJECT, payload, o.seconds, o.max_msgs)),
        ]
        w = bm.measure(s, jobs, o.seconds)
        sub, pub = w.results
        note = f"published {pub['sent'] / w.seconds:,.0f}/s"
        if sub["closed"]:
            note += ", subscriber disconnected by the server"
        if not pub["flushed"]:
            note += ", final flush not answered in 2 s"
        rate = sub["received"] / w.seconds
        return bm.Figure(rate, "msgs/s", w.broker_pct, w.loadgen_pct, note)

    return run


def scenario_req(concurrency: int) -> Callable[[NatsServer, Options], bm.Figure]:
    def run(s: NatsServer, o: Options) -> bm.Figure:
        payload = ml.payload_of(REQ_PAYLOAD)
        jobs: Jobs = [
            (nl.responder, (HOST, s.port, REQ_SUBJECT, o.seconds)),
            (nl.requester, (HOST, s.port, REQ_SUBJECT, payload, concurrency, o.seconds)),
        ]
        w = bm.measure(s, jobs, o.seconds)
        req = w.results[1]
        note = f"rtt p50 {req['p50']:,.0f} us, p99 {req['p99']:,.0f} us"
        rate = req["replies"] / w.seconds
        return bm.Figure(rate, "req/s", w.broker_pct, w.loadgen_pct, note)

    return run


SCENARIOS: dict[str, tuple[str, Callable[[NatsServer, Options], bm.Figure]]] = {
    "pub64": ("nats pub 64B", scenario_pub(64)),
    "pub1k": ("nats pub 1KiB", scenario_pub(1024)),
    "req1": ("nats req/rep seq", scenario_req(1)),
    "req16": ("nats req/rep x16", scenario_req(16)),
}


def run_server(server: NatsServer, scenarios: list[str], o: Options) -> dict[str, bm.Figure]:
    """All scenarios against one server, started once; stopped (SIGTERM) in ``finally``."""
    figures: dict[str, bm.Figure] = {}
    print(f"{server.name}: starting", file=sys.stderr, flush=True)
    try:
        if not server.start():
            print(f"{server.name}: NATS not available", file=sys.stderr)
            if tail := server.log_tail():
                print("  " + tail.replace("\n", "\n  "), file=sys.stderr)
            return figures
        print(f"{server.name}: pid {server.pid}, nats {HOST}:{server.port}", file=sys.stderr)
        for key in scenarios:
            label, fn = SCENARIOS[key]
            try:
                fig = fn(server, o)
            except (RuntimeError, TimeoutError, OSError) as exc:
                first = str(exc).strip().splitlines()
                fig = bm.Figure(None, "", note=f"failed: {first[-1] if first else exc!r}")
                print(f"{server.name} {label}: failed: {exc}", file=sys.stderr)
            print(f"  {server.name} {label}: {fig.text()}", file=sys.stderr, flush=True)
            figures[label] = fig
            if server.proc is not None and server.proc.poll() is not None:
                print(f"{server.name}: exited during {label}", file=sys.stderr)
                break
            bm.settle(server)
    finally:
        server.stop()
    return figures


def line(label: str, nats: dict[str, bm.Figure] | None, gate: dict[str, bm.Figure] | None) -> str:
    parts = []
    loadgen = []
    for name, figs in (("nats-server", nats), ("jetgate", gate)):
        if figs is None:
            continue
        fig = figs.get(label)
        if fig is None:
            parts.append(f"{name} n/a")
            loadgen.append("-")
            continue
        parts.append(f"{name} " + dataclasses.replace(fig, loadgen_pct=None).text())
        loadgen.append("-" if fig.loadgen_pct is None else f"{fig.loadgen_pct:.0f}%")
    if nats is not None and gate is not None:
        r = bm.ratio(nats.get(label), gate.get(label))
        flag = "" if r == "-" or float(r) >= TARGET else f" (below {TARGET:g})"
        parts.append(f"ratio {r}{flag}")
    parts.append("loadgen cpu " + " / ".join(loadgen))
    return f"{label}: " + " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--only", choices=("nats", "jetgate"))
    p.add_argument("--seconds", type=float, default=5.0, help="length of each window")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--max-msgs", type=int, default=100_000_000, help="cap for the publisher")
    p.add_argument(
        "--jetgate-mqtt",
        action="store_true",
        help="run jetgate with MQTT on and a temporary jetstream store_dir",
    )
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; known: {', '.join(SCENARIOS)}")
    o = Options(args.seconds, args.max_msgs)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    servers = []
    if args.only in (None, "nats"):
        servers.append(NatsServer("nats-server", bm.nats_server_argv, 20.0, config=nats_conf))
    if args.only in (None, "jetgate"):
        conf = jetgate_mqtt_conf if args.jetgate_mqtt else jetgate_conf
        servers.append(NatsServer("jetgate", bm.jetgate_argv, 10.0, config=conf))
    results: dict[str, dict[str, bm.Figure]] = {}
    try:
        for server in servers:
            results[server.name] = run_server(server, scenarios, o)
    finally:
        for server in servers:
            server.stop()

    nats, gate = results.get("nats-server"), results.get("jetgate")
    header = f"# {os.cpu_count()} cores, {o.seconds:g} s per window; cpu = % of one core"
    if nats is not None and gate is not None:
        header += f"; ratio = jetgate / nats-server (target >= {TARGET:g})"
        header += "; loadgen cpu = against nats-server / against jetgate"
    print(header, flush=True)
    for key in scenarios:
        print(line(SCENARIOS[key][0], nats, gate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
