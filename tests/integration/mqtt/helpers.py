"""Clients for the MQTT integration tests: raw sessions (TCP, WebSocket) and paho-mqtt.

``RawSession`` sends bytes built by :mod:`gateway.mqtt.packets` (or crafted by
hand, where a test needs a violation no encoder would produce) and reads the
gateway's answers with a client-side :class:`~gateway.mqtt.codec.Decoder`.
``PahoClient`` runs a real paho-mqtt client on its own network thread and
bridges every callback into asyncio queues and futures, so tests await events
with a timeout instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import Properties

TIMEOUT = 5.0
#: How long a test waits to conclude that something does NOT arrive.
QUIET = 0.4

P = TypeVar("P", bound=Packet)


class ConnectionClosedError(AssertionError):
    """The gateway closed the connection while a packet was awaited."""


class RawSession:
    """One MQTT connection driven packet by packet (subclasses give the transport)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.decoder = Decoder(server=False, version=version)
        self.inbox: list[Packet] = []
        self.eof = False
        self._next_id = 0

    # -- transport, provided by subclasses --------------------------------------------
    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def _read(self) -> bytes:
        """Bytes received, b"" at end of stream."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    # -- sending ------------------------------------------------------------------------
    def send(self, *packets: Packet | bytes) -> None:
        """Write packets (encoded for this session's version) or raw bytes, in one write."""
        self.write(b"".join(p if isinstance(p, bytes) else p.encode(self.version) for p in packets))

    def packet_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    # -- receiving ----------------------------------------------------------------------
    async def _fill(self, deadline: float) -> None:
        """Read until the inbox has a packet, or raise at EOF or the deadline."""
        while not self.inbox:
            if self.eof:
                raise ConnectionClosedError("connection closed by the gateway")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet from the gateway in time")
            try:
                data = await asyncio.wait_for(self._read(), left)
            except TimeoutError:
                raise TimeoutError("no packet from the gateway in time") from None
            if not data:
                self.eof = True
                continue
            self.inbox.extend(self.decoder.feed(data))

    async def recv(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet from the gateway."""
        await self._fill(time.monotonic() + timeout)
        return self.inbox.pop(0)

    async def expect(self, kind: type[P], timeout: float = TIMEOUT) -> P:
        """The next packet, which must be of type ``kind``."""
        packet = await self.recv(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    async def quiet(self, wait: float = QUIET) -> None:
        """Assert that no packet arrives within ``wait`` seconds (a bounded negative check)."""
        try:
            packet = await self.recv(wait)
        except TimeoutError:
            return
        except ConnectionClosedError:
            raise AssertionError("connection closed while expecting silence") from None
        raise AssertionError(f"unexpected packet {packet!r}")

    async def closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Wait until the gateway closes the connection; return what it sent first."""
        deadline = time.monotonic() + timeout
        seen: list[Packet] = []
        while True:
            try:
                await self._fill(deadline)
            except ConnectionClosedError:
                return seen
            except TimeoutError:
                raise AssertionError(
                    f"connection still open after {timeout}s (received {seen!r})"
                ) from None
            seen.extend(self.inbox)
            self.inbox.clear()

    async def publishes(self, count: int, timeout: float = TIMEOUT) -> list[Publish]:
        """The next ``count`` PUBLISH packets; other packets in between are an error."""
        return [await self.expect(Publish, timeout) for _ in range(count)]

    # -- conversations ------------------------------------------------------------------
    async def connect(
        self,
        client_id: str = "",
        clean: bool = True,
        keep_alive: int = 0,
        will: Will | None = None,
        username: str | None = None,
        password: bytes | None = None,
        properties: Properties | None = None,
        timeout: float = TIMEOUT,
    ) -> Connack:
        """Send CONNECT and return the CONNACK, whatever its code."""
        self.send(
            Connect(
                client_id,
                clean_start=clean,
                keep_alive=keep_alive,
                will=will,
                username=username,
                password=password,
                protocol_level=self.version,
                properties=properties,
            )
        )
        return await self.expect(Connack, timeout)

    async def subscribe(
        self, *subs: Subscription | str, qos: int = 0, properties: Properties | None = None
    ) -> list[int]:
        """SUBSCRIBE and return the SUBACK codes (checked against the packet identifier)."""
        pid = self.packet_id()
        subscriptions = [Subscription(s, qos) if isinstance(s, str) else s for s in subs]
        self.send(Subscribe(pid, subscriptions, properties))
        suback = await self.expect(Suback)
        assert suback.packet_id == pid, "SUBACK must carry the SUBSCRIBE's packet identifier"
        return list(suback.reason_codes)

    async def unsubscribe(self, *filters: str) -> Unsuback:
        pid = self.packet_id()
        self.send(Unsubscribe(pid, filters))
        unsuback = await self.expect(Unsuback)
        assert unsuback.packet_id == pid
        return unsuback

    async def publish(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> Packet | None:
        """PUBLISH and finish the exchange for its QoS; return the PUBACK or PUBCOMP."""
        pid = self.packet_id() if qos else 0
        self.send(Publish(topic, payload, qos, retain, packet_id=pid, properties=properties))
        if qos == 0:
            return None
        if qos == 1:
            ack = await self.expect(Puback)
            assert ack.packet_id == pid
            return ack
        rec = await self.expect(Pubrec)
        assert rec.packet_id == pid
        self.send(Pubrel(pid))
        comp = await self.expect(Pubcomp)
        assert comp.packet_id == pid
        return comp

    def ack(self, publish: Publish) -> None:
        """Acknowledge a received PUBLISH (PUBACK for QoS 1, PUBREC for QoS 2)."""
        if publish.qos == 1:
            self.send(Puback(publish.packet_id))
        elif publish.qos == 2:
            self.send(Pubrec(publish.packet_id))

    async def receive_acked(self, count: int, timeout: float = TIMEOUT) -> list[Publish]:
        """Receive ``count`` messages, completing each QoS 1/2 exchange."""
        out: list[Publish] = []
        while len(out) < count:
            packet = await self.recv(timeout)
            if isinstance(packet, Pubrel):
                self.send(Pubcomp(packet.packet_id))
                continue
            assert isinstance(packet, Publish), f"expected PUBLISH, got {packet!r}"
            self.ack(packet)
            out.append(packet)
        return out

    async def disconnect(self, reason: int = 0, properties: Properties | None = None) -> None:
        """Send DISCONNECT and close the socket."""
        with contextlib.suppress(OSError, ConnectionError, ConnectionClosed):
            self.send(Disconnect(reason, properties))
        await self.aclose()


class TcpSession(RawSession):
    """A raw MQTT session over TCP."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int
    ) -> None:
        super().__init__(version)
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, version: int = 4, rcvbuf: int | None = None) -> TcpSession:
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        return cls(reader, writer, version)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def _read(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except (ConnectionError, OSError):
            return b""

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (an ungraceful close)."""
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()


class WsSession(RawSession):
    """A raw MQTT session over WebSocket (subprotocol ``mqtt``, binary frames)."""

    def __init__(self, ws: ClientConnection, version: int) -> None:
        super().__init__(version)
        self.ws = ws
        self._pending: list[bytes] = []
        self._tasks: set[asyncio.Future[None]] = set()

    @classmethod
    async def open(cls, port: int, version: int = 4, path: str = "/mqtt") -> WsSession:
        ws = await ws_connect(f"ws://127.0.0.1:{port}{path}", subprotocols=["mqtt"])  # type: ignore[list-item]
        return cls(ws, version)

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._tasks.add(asyncio.ensure_future(self._flush()))
        self._tasks = {t for t in self._tasks if not t.done()}

    async def _flush(self) -> None:
        while self._pending:
            data = self._pending.pop(0)
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(data)

    async def send_frames(self, *frames: bytes) -> None:
        """Send each argument as its own binary frame, in order."""
        for frame in frames:
            await self.ws.send(frame)

    async def _read(self) -> bytes:
        try:
            data = await self.ws.recv()
        except ConnectionClosed:
            return b""
        assert isinstance(data, bytes), "MQTT over WebSocket uses binary frames only"
        return data

    async def aclose(self) -> None:
        await self.ws.close()


# -------------------------------------------------------------------------------------
# paho-mqtt, bridged into asyncio
# -------------------------------------------------------------------------------------


class PahoClient:
    """A paho-mqtt client whose callbacks feed asyncio queues and futures.

    paho runs its own network thread (``loop_start``); every callback hands its
    arguments to the event loop with ``call_soon_threadsafe``.
    """

    def __init__(
        self,
        port: int,
        version: int,
        client_id: str = "",
        clean: bool = True,
        transport: str = "tcp",
        ws_path: str = "/mqtt",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.port = port
        self.version = version
        self.clean = clean
        protocol = paho.MQTTv5 if version == 5 else paho.MQTTv311
        kwargs: dict[str, Any] = {}
        if version != 5:
            kwargs["clean_session"] = clean
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport=transport,  # type: ignore[arg-type]
            **kwargs,
        )
        if transport == "websockets":
            self.client.ws_set_options(path=ws_path)
        self.messages: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self.connected: asyncio.Future[tuple[Any, Any, Any]] = self.loop.create_future()
        self.disconnected: asyncio.Future[Any] = self.loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[Any]]] = {}
        self._pubacks: dict[int, asyncio.Future[Any]] = {}
        self._early_pubacks: dict[int, Any] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self._started = False

    # paho thread -> event loop
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed at teardown
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, props: Any) -> None:
        def done() -> None:
            if not self.connected.done():
                self.connected.set_result((flags, rc, props))

        self._call(done)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
        def done() -> None:
            if not self.disconnected.done():
                self.disconnected.set_result(rc)

        self._call(done)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        self._call(self.messages.put_nowait, msg)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        def done() -> None:
            fut = self._subacks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(codes)

        self._call(done)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        def done() -> None:
            fut = self._pubacks.pop(mid, None)
            if fut is None:
                self._early_pubacks[mid] = rc
            elif not fut.done():
                fut.set_result(rc)

        self._call(done)

    async def connect(
        self, keep_alive: int = 60, properties: PahoProperties | None = None
    ) -> tuple[Any, Any, Any]:
        """Connect and start the network thread; return (flags, reason code, properties)."""
        kwargs: dict[str, Any] = {"keepalive": keep_alive}
        if self.version == 5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = properties
        self.client.connect_async("127.0.0.1", self.port, **kwargs)
        self.client.loop_start()
        self._started = True
        return await asyncio.wait_for(self.connected, TIMEOUT)

    async def subscribe(self, topic: str, qos: int = 0, no_local: bool = False) -> list[Any]:
        """SUBSCRIBE one filter; return the reason codes of the SUBACK."""
        if self.version == 5:
            result, mid = self.client.subscribe(
                topic, options=SubscribeOptions(qos=qos, noLocal=no_local)
            )
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        fut = self.loop.create_future()
        assert mid is not None
        self._subacks[mid] = fut
        return await asyncio.wait_for(fut, TIMEOUT)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: PahoProperties | None = None,
    ) -> Any:
        """PUBLISH and wait until paho reports it sent (QoS 0) or acknowledged (QoS 1/2)."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS
        fut = self.loop.create_future()
        self._pubacks[info.mid] = fut
        if info.mid in self._early_pubacks:
            self._pubacks.pop(info.mid)
            return self._early_pubacks.pop(info.mid)
        return await asyncio.wait_for(fut, TIMEOUT)

    async def next_message(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def no_message(self, wait: float = QUIET) -> None:
        """Assert no message arrives within ``wait`` seconds (a bounded negative check)."""
        try:
            msg = await asyncio.wait_for(self.messages.get(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    async def stop(self) -> None:
        """Disconnect (if connected) and stop the network thread."""
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                self.client.disconnect()
            await asyncio.get_running_loop().run_in_executor(None, self.client.loop_stop)


def publish_properties(**values: Any) -> PahoProperties:
    """paho PUBLISH properties from keyword arguments (paho's CamelCase names)."""
    props = PahoProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


def payloads(packets: Iterable[Publish]) -> list[bytes]:
    return [bytes(p.payload) for p in packets]
