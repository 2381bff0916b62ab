"""Persistent sessions survive a gateway killed with SIGKILL and restarted on the same store.

jetgate runs as a subprocess (``python -m gateway -c <file> --store-dir <dir>``); QoS 1
messages acknowledged with PUBACK while the persistent subscriber is offline must all be
delivered after ``kill -9`` and a restart -- none lost (DUP may be set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connack, Connect
from gateway.mqtt.properties import Properties
from tests.conftest import free_port
from tests.integration.mqtt.conftest import GatewayFactory
from tests.integration.mqtt.helpers import TcpSession

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
REPO = Path(__file__).resolve().parents[3]


class JetgateProcess:
    """jetgate as a child process on fixed ports; ``kill9`` and ``start`` keep the store."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = tmp_path / "store"
        self.mqtt_port = free_port()
        self.config = tmp_path / "jetgate.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{free_port()}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n"
            f'jetstream {{ store_dir: "{self.store}" }}\n'
        )
        self.log = tmp_path / "jetgate.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 15.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "-c",
                    str(self.config),
                    "--store-dir",
                    str(self.store),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        end = time.monotonic() + deadline
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jetgate exited with {self.proc.returncode}: {self.log.read_text()}"
                )
            if time.monotonic() > end:
                raise TimeoutError(f"jetgate did not answer MQTT: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)  # polling a port of another process: no event to await

    def _answers(self) -> bool:
        """Whether a CONNECT on the MQTT port gets a CONNACK."""
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1) as s:
                s.sendall(Connect("probe").encode(4))
                s.settimeout(2)
                decoder = Decoder(server=False, version=4)
                while True:
                    data = s.recv(64)
                    if not data:
                        return False
                    packets = decoder.feed(data)
                    if packets:
                        return isinstance(packets[0], Connack)
        except OSError:
            return False

    def kill9(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
async def jetgate(gateway_factory: GatewayFactory, tmp_path: Path) -> AsyncIterator[JetgateProcess]:
    await gateway_factory()  # skips this test while the MQTT listener has not landed
    (tmp_path / "proc").mkdir()
    process = JetgateProcess(tmp_path / "proc")
    try:
        yield process
    finally:
        process.stop()


@VERSIONS
async def test_mqtt_4_4_0_1_acknowledged_messages_survive_kill_9_and_restart(
    jetgate: JetgateProcess, version: int
) -> None:
    """Every QoS 1 message the gateway acknowledged for an offline persistent session is delivered
    after SIGKILL and restart; the session is present (DUP may be set on redelivery)."""
    props = Properties(session_expiry_interval=3600) if version == 5 else None
    await asyncio.to_thread(jetgate.start)
    sub = await TcpSession.open(jetgate.mqtt_port, version)
    connack = await sub.connect("survivor", clean=False, properties=props)
    assert connack.reason_code == 0
    assert await sub.subscribe("durable/t", qos=1) == [1]
    await sub.disconnect()
    pub = await TcpSession.open(jetgate.mqtt_port, version)
    assert (await pub.connect("restart-pub")).reason_code == 0
    total = 50
    for i in range(total):
        ack = await pub.publish("durable/t", str(i).encode(), qos=1)
        assert ack is not None and ack.reason_code in (0x00, 0x10)  # type: ignore[attr-defined]
    jetgate.kill9()
    with contextlib.suppress(Exception):
        await pub.aclose()
    await asyncio.to_thread(jetgate.start)
    back = await TcpSession.open(jetgate.mqtt_port, version)
    try:
        connack = await back.connect("survivor", clean=False, properties=props)
        assert connack.reason_code == 0
        assert connack.session_present is True
        expected = [str(i).encode() for i in range(total)]
        first_seen: list[bytes] = []
        while len(first_seen) < total:  # duplicates (DUP 1) are allowed, losses are not
            for msg in await back.receive_acked(1, timeout=10):
                if bytes(msg.payload) not in first_seen:
                    first_seen.append(bytes(msg.payload))
        assert first_seen == expected
    finally:
        await back.aclose()
