"""Wiring: options -> user table, bus and listeners; start, serve, stop.

``Gateway`` owns the listeners and routes each accepted connection by its kind
to the protocol that serves it. It counts connections against
``max_connections``. Stopping is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from typing import Any

from conf.errors import ConfigError
from gateway.accounts import Accounts
from gateway.accounts_errors import AccountUnavailable
from gateway.auth.users import UserTable
from gateway.backend import Backend, BackendError
from gateway.bus.api import Bus
from gateway.listeners.stream import ByteStream, ConnectionHandler
from gateway.listeners.tcp import TcpListener
from gateway.listeners.websocket import WebSocketListener
from gateway.mqtt.broker import MqttBroker
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.store import StoreError
from gateway.nats.connection import NatsConnection, ServerIdentity
from gateway.nats.protocol import encode_err, encode_info
from gateway.options.model import ConnectionType, Options, bind_port
from gateway.tls.errors import TLSError
from gateway.tls.runtime import ListenerTLS, TLSRuntime

log = logging.getLogger("jetgate")

ERR_MAX_CONNECTIONS = "maximum connections exceeded"
SHUTDOWN_DEADLINE = 5.0
_NATS_KINDS = frozenset({ConnectionType.STANDARD, ConnectionType.WEBSOCKET})
_MQTT_KINDS = frozenset({ConnectionType.MQTT, ConnectionType.MQTT_WS})


def _server_id() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "N" + "".join(secrets.choice(alphabet) for _ in range(55))


class GatewayError(Exception):
    """The gateway cannot start as configured (a port in use, an unsupported mode)."""


class Gateway:
    """The running gateway: listeners, the user table and the bus."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.users = UserTable(options)
        self.backend: Backend | None = None
        self.server_id = _server_id()
        self.needs_nonce = any(u.nkey for u in options.users) or options.operator_mode
        self.nats: TcpListener | None = None
        self.mqtt: TcpListener | None = None
        self.websocket: WebSocketListener | None = None
        self.broker: MqttBroker | None = None
        self.accounts: Accounts | None = None
        self.tls: TLSRuntime | None = None
        self._connections = 0
        self._open: dict[ByteStream, asyncio.Task[None] | None] = {}
        self._stopped = False

    async def start(self) -> None:
        """Bind every configured listener."""
        options = self.options
        try:
            self.tls = TLSRuntime(options)
        except (ConfigError, TLSError, OSError) as exc:
            raise GatewayError(f"cannot set up TLS: {exc}") from None
        self.accounts = Accounts(options, self.users, options.server_name or self.server_id)
        try:
            space = await self.accounts.start()
        except BackendError as exc:
            raise GatewayError(str(exc)) from None
        except StoreError as exc:
            raise GatewayError(f"cannot open the MQTT streams: {exc}") from None
        self.backend = space.backend
        self.broker = space.broker
        log.info("%s mode", self.backend.mode)
        nats_tls = self.tls.nats
        first = nats_tls if nats_tls is not None and nats_tls.options.handshake_first else None
        self.nats = TcpListener(
            options.host,
            bind_port(options.port),
            ConnectionType.STANDARD,
            self._handler(nats_tls),
            **_tcp_tls(first, fallback=first.options.handshake_first_fallback if first else None),
        )
        try:
            await self.nats.start()
            if options.websocket.port:
                ws = options.websocket
                self.websocket = WebSocketListener(
                    ws.host,
                    bind_port(ws.port),
                    self._handler(self.tls.websocket),
                    **_ws_tls(self.tls.websocket),
                    handshake_timeout=ws.handshake_timeout,
                    compression=ws.compression,
                    same_origin=ws.same_origin,
                    allowed_origins=ws.allowed_origins,
                    max_message_size=options.max_payload + options.max_control_line,
                )
                await self.websocket.start()
                log.info("listening for WebSocket clients on %s:%d", ws.host, self.websocket.port)
        except OSError as exc:
            await self.stop()
            raise GatewayError(f"cannot listen: {exc.strerror or exc}") from None
        log.info("listening for NATS clients on %s:%d", options.host, self.nats.port)
        if self.broker is not None:
            mqtt = options.mqtt
            self.mqtt = TcpListener(
                mqtt.host,
                bind_port(mqtt.port),
                ConnectionType.MQTT,
                self._handler(self.tls.mqtt),
                **_tcp_tls(self.tls.mqtt),
            )
            try:
                await self.mqtt.start()
            except OSError as exc:
                await self.stop()
                raise GatewayError(f"cannot listen for MQTT: {exc.strerror or exc}") from None
            log.info("listening for MQTT clients on %s:%d", mqtt.host, self.mqtt.port)
        await self.tls.start()

    def _handler(self, tls: ListenerTLS | None) -> ConnectionHandler:
        """``_serve``, behind the listener's certificate policy when it has TLS."""
        if tls is None or self.tls is None:
            return self._serve
        return self.tls.guard(tls, self._serve)

    async def _serve(self, stream: ByteStream) -> None:
        kind = stream.info.kind
        if self.options.max_connections and self._connections >= self.options.max_connections:
            log.warning("cid:%d: refused, %s", stream.info.id, ERR_MAX_CONNECTIONS)
            if kind in _NATS_KINDS:
                stream.write(encode_info({"server_id": self.server_id}))
                stream.write(encode_err(ERR_MAX_CONNECTIONS))
            return
        if kind in _MQTT_KINDS and self.broker is None:
            log.warning("cid:%d: MQTT is not enabled (mqtt port 0)", stream.info.id)
            return
        self._connections += 1
        self._open[stream] = asyncio.current_task()
        try:
            if kind in _MQTT_KINDS and self.broker is not None:
                await MqttConnection(stream, self.broker, broker_for=self._broker_for).run()
                return
            identity = ServerIdentity(
                self.server_id,
                self.options.server_name or self.server_id,
                self.options.host,
                self.nats.port if self.nats else 0,
            )
            connection = NatsConnection(
                stream,
                self.options,
                self.users,
                self.bus,
                identity,
                self.needs_nonce,
                tls=self.tls.nats if self.tls and kind is ConnectionType.STANDARD else None,
                bus_for=self._bus_for,
            )
            await connection.run()
        finally:
            self._connections -= 1
            self._open.pop(stream, None)

    async def _bus_for(self, account: str) -> Bus:
        assert self.accounts is not None
        return (await self.accounts.space(account)).bus

    async def _broker_for(self, account: str) -> MqttBroker:
        assert self.accounts is not None
        broker = (await self.accounts.space(account)).broker
        if broker is None:
            raise AccountUnavailable(f"account {account!r} has no MQTT broker")
        return broker

    @property
    def bus(self) -> Bus:
        """The Bus the gateway runs on (after ``start``)."""
        if self.backend is None:
            raise RuntimeError("gateway not started")
        return self.backend.bus

    @property
    def connections(self) -> int:
        """Clients connected now."""
        return self._connections

    async def stop(self) -> None:
        """Stop listening, close every client and the bus. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for listener in (self.nats, self.mqtt, self.websocket):
            if listener is not None:
                await listener.stop()
        # Closing a client's stream ends its session's read loop cleanly.
        open_now = list(self._open.items())
        await asyncio.gather(*(stream.close() for stream, _ in open_now))
        tasks = [task for _, task in open_now if task is not None and not task.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_DEADLINE)
            for task in late:
                task.cancel()
        if self.accounts is not None:
            await self.accounts.close()
        if self.tls is not None:
            await self.tls.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (SIGINT/SIGTERM in the command line)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


def _tcp_tls(tls: ListenerTLS | None, *, fallback: float | None = None) -> dict[str, Any]:
    """TcpListener arguments for TLS from the first byte (none without ``tls``).

    ``fallback``: the NATS port's ``handshake_first`` delay, after which a
    client that sent nothing is served in plain (INFO, then the upgrade).
    """
    if tls is None:
        return {}
    return {
        "ssl_context": tls.openssl,
        "tls_handshake_timeout": tls.timeout,
        "tls_failures": tls.refused,
        "tls_first_fallback": fallback,
    }


def _ws_tls(tls: ListenerTLS | None) -> dict[str, Any]:
    """WebSocketListener arguments for ``wss://`` (none without ``tls``)."""
    args = _tcp_tls(tls)
    args.pop("tls_first_fallback", None)
    if tls is not None:
        args["ssl_context"] = tls.context  # asyncio's TLS: an ssl.SSLContext
    return args
