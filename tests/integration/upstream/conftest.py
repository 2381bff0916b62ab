"""Fixtures for the upstream-mode tests: real nats-server processes and in-process gateways.

- ``nats_server`` (from ``tests/conftest.py``): one ``nats-server -js``; its
  ``stop()``/``start()`` keep the port and the store dir, so a test can restart it.
- ``cluster``: three ``nats-server -js`` nodes routed on loopback, JetStream
  ready for R3 streams before the test starts.
- ``gateways(urls, mqtt, extra, upstream)``: a gateway in upstream mode in
  front of ``urls`` (MQTT with ``ack_wait: "1s"``); ``mqtt`` and ``upstream``
  add keys to those blocks, ``extra`` is appended to the configuration.
- ``configured_server(body)``: a nats-server from a configuration file
  (JetStream, monitoring, then ``body``: users, permissions ...).
- ``raw(gateway)``: a raw MQTT session; ``mqtt_client(gateway, id)``: a connected
  one; ``go_offline(session, id, urls)``: DISCONNECT and wait for the stored record;
  ``nats_connect(url)``: a nats-py client;
  ``jetstream(url)``: a JetStream management context on a direct connection.

Everything started here is stopped at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from conf import loads
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.store import hash8
from gateway.options import build_options
from gateway.server import Gateway
from tests.conftest import NATS_SERVER, free_port
from tests.integration.mqtt.conftest import mqtt_port
from tests.integration.mqtt.helpers import TcpSession

pytestmark = pytest.mark.integration

#: How long a node or a cluster may take to come up (process start-up only).
STARTUP = 20.0


def upstream_config(
    urls: Sequence[str], mqtt: str = "", extra: str = "", upstream: str = ""
) -> str:
    """A gateway in upstream mode: NATS and MQTT listeners on ephemeral ports.

    ``mqtt`` and ``upstream`` hold more keys of those blocks (a later
    ``ack_wait`` wins); a second ``mqtt { }`` block would replace the first,
    listen address included. ``extra`` is appended.
    """
    quoted = ", ".join(f'"{url}"' for url in urls)
    return (
        "listen: 127.0.0.1:-1\n"
        f'mqtt {{ listen: 127.0.0.1:-1, ack_wait: "1s", {mqtt} }}\n'
        f"upstream {{ urls: [{quoted}], {upstream} }}\n" + extra
    )


def gateway_nats_url(gateway: Gateway) -> str:
    """The URL of a gateway's own NATS listener."""
    assert gateway.nats is not None
    return f"nats://127.0.0.1:{gateway.nats.port}"


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateways() -> AsyncIterator[GatewayFactory]:
    """``await gateways(urls, mqtt="", extra="", upstream="")``: start a gateway (see
    ``upstream_config``); every one is stopped at teardown."""
    started: list[Gateway] = []

    async def start(
        urls: str | Sequence[str], mqtt: str = "", extra: str = "", upstream: str = ""
    ) -> Gateway:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        config = upstream_config(url_list, mqtt, extra, upstream)
        gateway = Gateway(build_options(loads(config)))
        await gateway.start()
        started.append(gateway)
        assert gateway.mqtt is not None
        return gateway

    try:
        yield start
    finally:
        for gateway in reversed(started):
            await gateway.stop()


RawFactory = Callable[..., Awaitable[TcpSession]]


@pytest.fixture
async def raw() -> AsyncIterator[RawFactory]:
    """``await raw(gateway, version=4)``: a raw MQTT session over TCP; closed at teardown."""
    sessions: list[TcpSession] = []

    async def open_session(gateway: Gateway, version: int = 4) -> TcpSession:
        session = await TcpSession.open(mqtt_port(gateway), version)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        with contextlib.suppress(Exception):
            await session.aclose()


ClientFactory = Callable[..., Awaitable[TcpSession]]


@pytest.fixture
def mqtt_client(raw: RawFactory) -> ClientFactory:
    """``await mqtt_client(gateway, client_id, version=4, clean=True)``: a connected raw session."""

    async def connect(
        gateway: Gateway, client_id: str, version: int = 4, clean: bool = True, **kwargs: Any
    ) -> TcpSession:
        session = await raw(gateway, version)
        connack = await session.connect(client_id, clean=clean, **kwargs)
        assert connack.reason_code == 0, f"{client_id}: CONNACK {connack.reason_code:#x}"
        return session

    return connect


NatsFactory = Callable[..., Awaitable[NatsClient]]


@pytest.fixture
async def nats_connect() -> AsyncIterator[NatsFactory]:
    """``await nats_connect(url_or_urls, **options)``: a nats-py client; closed at teardown."""
    clients: list[NatsClient] = []

    async def connect(servers: str | Sequence[str], **options: Any) -> NatsClient:
        options.setdefault("allow_reconnect", False)
        options.setdefault("connect_timeout", 5)
        urls = servers if isinstance(servers, str) else list(servers)
        nc = await nats.connect(servers=urls, **options)
        clients.append(nc)
        return nc

    yield connect
    for nc in clients:
        with contextlib.suppress(Exception):
            await nc.close()


OfflineFactory = Callable[[TcpSession, str, "str | Sequence[str]"], Awaitable[None]]
#: How long ``go_offline`` waits for the saved record (a loaded 2-core CI machine is slow).
OFFLINE_WAIT = 20.0
#: When ``go_offline`` stops waiting for the record's message and reads the stream instead.
LOOK_IN_STREAM_AFTER = 3.0


@pytest.fixture
def go_offline(nats_connect: NatsFactory) -> OfflineFactory:
    """``await go_offline(session, client_id, nats_urls)``: DISCONNECT, then wait until the
    gateway has stored the session as disconnected (its record on ``$MQTT.sess.<hash8>``).

    A client that comes back before that save may be refused (see
    ``test_reconnect_right_after_disconnect_resumes``); tests that are not about
    that race wait for the record instead.
    """

    async def offline(session: TcpSession, client_id: str, servers: str | Sequence[str]) -> None:
        # One watcher per server: a flushed SUB is known to its own server at once,
        # while in a cluster the interest reaches the other nodes a little later.
        saved: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_record(msg: Msg) -> None:
            saved.put_nowait(msg.data)

        for url in [servers] if isinstance(servers, str) else servers:
            nc = await nats_connect(url)
            await nc.subscribe(f"$MQTT.sess.{hash8(client_id)}", cb=on_record)
            await nc.flush()
        heard = _Recorder()
        gateway_log = logging.getLogger("jetgate")
        level = gateway_log.level
        gateway_log.addHandler(heard)
        gateway_log.setLevel(logging.DEBUG)
        await session.disconnect()
        seen: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OFFLINE_WAIT
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(remaining, LOOK_IN_STREAM_AFTER)):
                        seen.append(await saved.get())
                except TimeoutError:
                    # In full runs the record's message has (rarely) never reached the
                    # watcher although the gateway had logged the save: the stream decides.
                    if _disconnected(await _last_record(nc, client_id)):
                        return
                    continue
                if _disconnected(seen[-1]):
                    return
            stored = await _last_record(nc, client_id)
            raise AssertionError(
                f"no disconnected session record for {client_id!r} within {OFFLINE_WAIT}s; "
                f"records seen: {seen!r}; stored now: {stored!r}; "
                f"{_connection_states(client_id)}; "
                f"gateway log since the DISCONNECT: {heard.lines!r}"
            )
        finally:
            gateway_log.removeHandler(heard)
            gateway_log.setLevel(level)

    return offline


def _disconnected(record: bytes | None) -> bool:
    return record is not None and json.loads(record).get("disconnected_at") is not None


async def _last_record(nc: NatsClient, client_id: str) -> bytes | None:
    """The last record stored for ``client_id``, None if there is none (or it is unreadable)."""
    try:
        msg = await nc.jetstream().get_last_msg("$MQTT_sess", f"$MQTT.sess.{hash8(client_id)}")
    except (nats.errors.Error, nats.js.errors.Error):
        return None
    return msg.data


class _Recorder(logging.Handler):
    """Keeps the gateway's log lines (for a failed wait's message)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def _connection_states(client_id: str) -> str:
    """Where the gateways' connections of ``client_id`` are (for a failed wait's message)."""
    states = [
        f"cid {conn.cid}: ended={conn._closed.is_set()} graceful={conn._graceful} "
        f"holds={conn.broker.live.get(client_id) is conn} record={conn.record!r}"
        for conn in gc.get_objects()
        if type(conn) is MqttConnection and conn.client_id == client_id
    ]
    return "connections: " + ("; ".join(states) or "none")


JetStreamFactory = Callable[..., Awaitable[JetStreamContext]]


@pytest.fixture
def jetstream(nats_connect: NatsFactory) -> JetStreamFactory:
    """``await jetstream(url_or_urls)``: nats-py's JetStream context on a direct connection."""

    async def open_context(servers: str | Sequence[str], **options: Any) -> JetStreamContext:
        nc = await nats_connect(servers, **options)
        return nc.jetstream(timeout=5)

    return open_context


# -- nats-server processes from configuration files ------------------------------------


class ConfiguredServer:
    """A ``nats-server -c FILE`` with JetStream and monitoring; ``kill()`` is a crash."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.port = free_port()
        self.http_port = free_port()
        self.store_dir = base / f"{name}-store"
        self.config_file = base / f"{name}.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def configure(self, body: str = "") -> None:
        """Write the configuration: listen, monitoring, JetStream, then ``body``."""
        self.config_file.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.store_dir}" }}\n' + body
        )

    def start(self) -> None:
        if not NATS_SERVER.exists():
            pytest.skip(f"nats-server not installed at {NATS_SERVER}")
        self.proc = subprocess.Popen(
            [str(NATS_SERVER), "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self, timeout: float = STARTUP) -> None:
        """Wait until the client port sends INFO (polling start-up: no event to await)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.running, f"{self.name} exited"
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    if (await asyncio.wait_for(reader.read(4), 1)).startswith(b"INFO"):
                        return
                except TimeoutError:
                    pass
                finally:
                    writer.close()
            assert time.monotonic() < deadline, f"{self.name} did not start"
            await asyncio.sleep(0.02)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def client_names(self) -> list[str]:
        """The names of the client connections this server has (its ``/connz``)."""
        url = f"http://127.0.0.1:{self.http_port}/connz?limit=1024"

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)

        connz = await asyncio.to_thread(fetch)
        return [conn.get("name", "") for conn in connz.get("connections") or ()]

    def kill(self) -> None:
        """SIGKILL: the server is gone without a goodbye."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

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


ServerFactory = Callable[[str], Awaitable[ConfiguredServer]]


@pytest.fixture
async def configured_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """``await configured_server(body)``: a nats-server with JetStream and ``body`` in its
    configuration (e.g. ``authorization { ... }``); stopped at teardown."""
    servers: list[ConfiguredServer] = []

    async def start(body: str) -> ConfiguredServer:
        server = ConfiguredServer(f"s{len(servers) + 1}", tmp_path)
        server.configure(body)
        servers.append(server)
        server.start()
        await server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


# -- a three-node cluster -------------------------------------------------------------


class ClusterNode(ConfiguredServer):
    """One node of a cluster: its routes go to every other node."""

    def __init__(self, name: str, base: Path) -> None:
        super().__init__(name, base)
        self.route_port = free_port()

    def configure_routes(self, peers: Sequence[ClusterNode]) -> None:
        routes = ", ".join(f'"nats://127.0.0.1:{p.route_port}"' for p in peers if p is not self)
        self.configure(
            "cluster {\n"
            "  name: c\n"
            f"  listen: 127.0.0.1:{self.route_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )


class Cluster:
    """Three JetStream nodes ``n1``..``n3`` with routes on loopback."""

    def __init__(self, base: Path) -> None:
        self.nodes = [ClusterNode(f"n{i}", base) for i in (1, 2, 3)]
        for node in self.nodes:
            node.configure_routes(self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    async def node_serving(self, client_name: str) -> ClusterNode:
        """The running node that the client connection called ``client_name`` is on."""
        for node in self.nodes:
            if node.running and client_name in await node.client_names():
                return node
        raise AssertionError(f"no node has a connection named {client_name!r}")

    async def start(self) -> None:
        """Start every node and wait until an R3 stream can be created (meta leader, 3 peers)."""
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + STARTUP
        last: BaseException | None = None
        while time.monotonic() < deadline:
            for node in self.nodes:
                assert node.proc is not None and node.proc.poll() is None, f"{node.name} exited"
            try:
                nc = await nats.connect(self.urls, allow_reconnect=False, connect_timeout=1)
            except Exception as exc:
                last = exc
            else:
                try:
                    js = nc.jetstream(timeout=2)
                    await js.add_stream(
                        StreamConfig(name="probe", subjects=["probe"], num_replicas=3)
                    )
                    await js.delete_stream("probe")
                    return
                except Exception as exc:
                    last = exc
                finally:
                    await nc.close()
            await asyncio.sleep(0.1)  # polling cluster start-up: there is no event to await
        self.stop()
        raise TimeoutError(f"the cluster did not get JetStream ready: {last!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A three-node JetStream cluster, stopped at teardown."""
    c = Cluster(tmp_path)
    try:
        await c.start()
        yield c
    finally:
        c.stop()
