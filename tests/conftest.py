"""Shared fixtures: a real ``nats-server -js`` on a free port with its own store dir."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NATS_SERVER = Path(sys.executable).parent / "nats-server"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test compiled modules older than their sources (they would shadow them)."""
    from gateway.build_info import stale_extensions

    stale = stale_extensions()
    if stale:
        names = ", ".join(str(path.name) for path in stale[:3])
        pytest.exit(f"compiled modules older than their sources ({names}): run make test", 2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process with JetStream; stop() and start() keep the store dir."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if not NATS_SERVER.exists():
            pytest.skip(f"nats-server not installed at {NATS_SERVER}")
        self.proc = subprocess.Popen(
            [
                str(NATS_SERVER),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                # The INFO line is sent once the client listener is really up.
                if conn.recv(4).startswith(b"INFO"):
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nats-server did not answer on port {self.port}")
            time.sleep(0.02)  # polling a port: there is no event to await

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh ``nats-server -js`` for one test, stopped at teardown."""
    server = NatsServer(tmp_path / "nats-store")
    server.start()
    try:
        yield server
    finally:
        server.stop()
