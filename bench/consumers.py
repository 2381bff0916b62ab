"""JetStream consumers per MQTT session: ``consumer_mode`` subscription vs session.

Run: ``.venv/bin/python bench/consumers.py [N]`` (N = 5000 by default). For each
mode, starts a fresh ``nats-server -js``, a jetgate gateway in upstream mode in
front of it, and one MQTT client that subscribes to N distinct topics at QoS 1
(SUBSCRIBE packets of 100 filters each). Prints, per mode: the consumers on
``$MQTT_msgs``, the time to subscribe everything (until the last SUBACK), the
nats-server RSS before and after, and a check that a message is delivered.

``max_ack_pending`` is set so that N subscriptions fit the session budget of
65535 in subscription mode (65535 // N, at least 1); session mode gets the same.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conf import loads
from gateway.mqtt.packets import Subscription
from gateway.options import build_options
from gateway.server import Gateway
from tests.integration.mqtt.helpers import ConnectionClosedError, TcpSession

NATS_SERVER = Path(sys.executable).parent / "nats-server"
BATCH = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(1000):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                if c.recv(4).startswith(b"INFO"):
                    break
        except OSError:
            time.sleep(0.01)
    return proc, f"nats://127.0.0.1:{port}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_mode(mode: str, n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "js")
        gateway: Gateway | None = None
        try:
            pending = max(1, 65535 // n)
            config = (
                "listen: 127.0.0.1:-1\n"
                f"mqtt {{ listen: 127.0.0.1:-1, consumer_mode: {mode}, "
                f"max_ack_pending: {pending} }}\n"
                f'upstream {{ urls: ["{url}"] }}\n'
            )
            gateway = Gateway(build_options(loads(config)))
            await gateway.start()
            assert gateway.mqtt is not None
            port = gateway.mqtt.port
            rss_before = rss_mib(proc.pid)
            client = await TcpSession.open(port, 4)
            await client.connect(f"bench-{mode}", clean=False)
            started = time.perf_counter()
            subscribed = 0
            failure = ""
            try:
                for start in range(0, n, BATCH):
                    end = min(n, start + BATCH)
                    subs = [Subscription(f"bench/{i}", 1) for i in range(start, end)]
                    codes = await client.subscribe(*subs)
                    subscribed += codes.count(1)
                    if codes != [1] * len(subs):
                        failure = f"SUBACK refused {len(subs) - codes.count(1)} at {start}"
                        break
            except ConnectionClosedError:
                failure = f"connection closed by the gateway after {subscribed} (see its log)"
            elapsed = time.perf_counter() - started
            nc = await nats.connect(url)
            try:
                info = await nc.jetstream().stream_info("$MQTT_msgs")
                consumers = info.state.consumer_count
            finally:
                await nc.close()
            await asyncio.sleep(0.5)
            rss_after = rss_mib(proc.pid)
            delivered = False
            if not failure:
                publisher = await TcpSession.open(port, 4)
                await publisher.connect(f"bench-{mode}-pub")
                await publisher.publish(f"bench/{n - 1}", b"hello", qos=1)
                (got,) = await client.receive_acked(1, timeout=10)
                delivered = got.topic == f"bench/{n - 1}" and got.payload == b"hello"
                await publisher.disconnect()
                await client.disconnect()
            return {
                "mode": mode,
                "subscribed": subscribed,
                "failure": failure,
                "consumers": consumers,
                "seconds": elapsed,
                "rss_before": rss_before,
                "rss_after": rss_after,
                "delivered": delivered,
            }
        finally:
            if gateway is not None:
                await gateway.stop()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def main(n: int) -> None:
    print(f"{n} QoS 1 subscriptions in one session, against nats-server in upstream mode")
    header = f"{'mode':<13}{'subscribed':>11}{'consumers':>10}{'subscribe':>12}{'per sub':>10}"
    print(header + f"{'RSS before':>12}{'RSS after':>11}{'delivered':>11}")
    failures = []
    for mode in ("subscription", "session"):
        r = await run_mode(mode, n)
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        done = int(r["subscribed"])  # type: ignore[call-overload]
        print(
            f"{mode:<13}{done:>11}{r['consumers']:>10}{seconds:>11.2f}s"
            f"{seconds / max(1, done) * 1e3:>8.2f}ms"
            f"{float(r['rss_before']):>10.1f}MiB{float(r['rss_after']):>8.1f}MiB"  # type: ignore[arg-type]
            f"{'yes' if r['delivered'] else 'NO':>11}"
        )
        if r["failure"]:
            failures.append(f"{mode}: {r['failure']}")
    for failure in failures:
        print(failure)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
