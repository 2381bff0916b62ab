"""The ``jetgate`` command line, run as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    ROOT / "deploy" / "jetgate.conf",
    ROOT / "deploy" / "examples" / "mqtt-permissions.conf",
    ROOT / "deploy" / "examples" / "upstream.conf",
    ROOT / "deploy" / "examples" / "operator.conf",
]


def jetgate(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "JETGATE_UPSTREAM_PASSWORD": "secret", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_checks_ok(path: Path) -> None:
    result = jetgate("-t", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration OK"


def test_long_flags_check_the_default_config() -> None:
    result = jetgate("--check", "--config", "deploy/jetgate.conf")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_check_points_at_the_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 4222\nmqtt {\n    port: 1883\n    max_ack_pending: 70000\n}\n")
    result = jetgate("-t", "-c", str(bad))
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:4:5: "), result.stderr
    assert "max_ack_pending" in first


def test_check_reports_syntax_errors_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.conf"
    bad.write_text("listen: 127.0.0.1:4222\nmqtt {\n  port: 1883 oops\n}\n")
    result = jetgate("-t", "-c", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:3:14: "), result.stderr


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "typo.conf"
    bad.write_text('mqtt {\n  ack_wiat: "10s"\n}\n')
    result = jetgate("-t", "-c", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:2:3: "), result.stderr
    assert "ack_wait" in result.stderr


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = jetgate("-t", "-c", str(tmp_path / "absent.conf"))
    assert result.returncode == 1
    assert "absent.conf:1:1:" in result.stderr


def test_check_without_file_uses_builtin_defaults() -> None:
    result = jetgate("-t")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_version() -> None:
    result = jetgate("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("jetgate ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_serves_nats_clients_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    logfile = tmp_path / "jetgate.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "-c",
            str(ROOT / "deploy" / "jetgate.conf"),
            "-p",
            str(port),
            "--mqtt-port",  # the shipped config's 1883 may be taken on this machine
            str(free_port()),
            "--store-dir",
            str(tmp_path / "store"),
            "-l",
            str(logfile),
            "-D",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.settimeout(5)
                    info = sock.recv(4096)
                    sock.sendall(b"CONNECT {}\r\nPING\r\n")
                    reply = b""
                    while b"PONG" not in reply:
                        chunk = sock.recv(4096)
                        assert chunk, "connection closed before PONG"
                        reply += chunk
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "gateway did not start listening"
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.05)  # polling a child process's port: no event to await
        assert info.startswith(b"INFO ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = logfile.read_text()
    assert "configuration loaded" in text
    assert "embedded mode" in text
    assert "shutting down" in text


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = jetgate(
            "-c",
            str(ROOT / "deploy" / "jetgate.conf"),
            "-p",
            str(port),
            "--mqtt-port",  # the shipped config's 1883 may be taken on this machine
            str(free_port()),
            "--store-dir",
            str(tmp_path),
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr
