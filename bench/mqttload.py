"""MQTT 3.1.1 load-generator pieces for ``bench/broker.py``: a tiny encoder, stream scanners, workers.

Everything on the hot path is pre-encoded bytes written in large chunks on
raw sockets. Receivers count PUBLISH packets without decoding them one by one
when every delivery has the same size (the case in these benchmarks): the
packets' first and second bytes are checked with stepped slices, in C, and
the count is a division. Anything else (a redelivery with DUP set, a
PINGRESP) falls back to a per-packet parse.

Each worker runs in its own process and talks to the parent through a
``Control``: ``ready()`` once connected and subscribed, ``wait_go()`` for the
shared start time, ``result()`` with its counts and the CPU time it used
inside the measured window.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
DISCONNECT_PACKET = b"\xe0\x00"

# Reads go into one buffer per connection, allocated once, with ``recv_into``: a
# ``recv(1 << 20)`` allocates (and shrinks) a 1 MiB bytes object on every call, ~9 us
# against ~1 us, which dominated the receivers at high message rates.
RECV_SIZE = 1 << 16


# -- encoder ---------------------------------------------------------------------------------


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining_length(len(body)) + body


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, clean: bool = True, keepalive: int = 0) -> bytes:
    """CONNECT for MQTT 3.1.1 (protocol level 4), no will, no credentials."""
    flags = 0x02 if clean else 0x00
    return _packet(
        CONNECT,
        _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id),
    )


def subscribe_packet(packet_id: int, topic_filter: str, qos: int) -> bytes:
    return _packet(SUBSCRIBE, struct.pack("!H", packet_id) + _string(topic_filter) + bytes([qos]))


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(PUBLISH | (qos << 1), body)


def puback_packet(packet_id: int) -> bytes:
    return bytes([PUBACK, 2]) + struct.pack("!H", packet_id)


# -- decoding ---------------------------------------------------------------------------------


def split_packets(buf: bytes, pos: int = 0) -> tuple[list[tuple[int, bytes]], int]:
    """Whole packets in ``buf`` from ``pos`` as (first byte, body), and where the next one starts."""
    out: list[tuple[int, bytes]] = []
    while (one := _one_packet(buf, pos)) is not None:
        out.append((one[0], one[1]))
        pos = one[2]
    return out, pos


@dataclass(frozen=True)
class Shape:
    """The fixed layout of the deliveries a receiver expects: size, header bytes, packet id offset."""

    size: int
    first: int
    second: int
    pid_offset: int  # 0 for QoS 0

    @classmethod
    def of(cls, packet: bytes) -> Shape:
        qos = (packet[0] >> 1) & 3
        topic_len = struct.unpack_from("!H", packet, 2)[0]
        assert packet[1] < 0x80, "shape assumes a one-byte remaining length"
        return cls(len(packet), packet[0], packet[1], 4 + topic_len if qos else 0)


class Receiver:
    """Counts PUBLISH packets in a byte stream and collects the PUBACKs owed for QoS 1 ones.

    ``recv`` reads from a socket into the receiver's buffer (allocated once, the partial
    packet at the end of one read moved to its front for the next) and returns the number
    of PUBLISH packets completed; ``feed`` does the same for bytes already read. With
    ``on_publish`` each PUBLISH body goes through the slow path to the callback (used for
    latency, at low rates). Other packets are counted in ``others``.
    """

    def __init__(
        self,
        shape: Shape | None,
        ack: bool,
        on_publish: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self.shape = shape if on_publish is None else None
        self.ack = ack
        self.on_publish = on_publish
        self.buf = bytearray(RECV_SIZE)
        self.view = memoryview(self.buf)
        self.fill = 0  # bytes of an incomplete packet carried over at the buffer's front
        self.acks: list[bytes] = []
        self.others: dict[int, int] = {}

    def recv(self, sock: socket.socket) -> int:
        """One ``recv_into`` from ``sock``; the PUBLISH packets it completed. Raises
        ``ConnectionError`` when the broker closed the connection."""
        if self.fill == len(self.buf):
            self._grow()
        n = sock.recv_into(self.view[self.fill :])
        if not n:
            raise ConnectionError("connection closed by the broker")
        return self._scan(self.fill + n)

    def feed(self, data: bytes) -> int:
        """The PUBLISH packets completed by ``data`` (bytes read elsewhere)."""
        while len(self.buf) - self.fill < len(data):
            self._grow()
        end = self.fill + len(data)
        self.buf[self.fill : end] = data
        return self._scan(end)

    @property
    def tail(self) -> bytes:
        """The incomplete packet carried over to the next read."""
        return bytes(self.buf[: self.fill])

    def _grow(self) -> None:
        """A buffer twice as large (a packet longer than the buffer), the carried bytes kept."""
        bigger = bytearray(2 * len(self.buf))
        bigger[: self.fill] = self.buf[: self.fill]
        self.view.release()
        self.buf = bigger
        self.view = memoryview(bigger)

    def _scan(self, end: int) -> int:
        """Counts the packets in ``buf[:end]``; keeps the incomplete rest at the front."""
        buf = self.buf
        pos = 0
        count = 0
        shape = self.shape
        while pos < end:
            if shape is not None:
                size = shape.size
                n = (end - pos) // size
                if n:
                    stop = pos + n * size
                    if (
                        buf[pos:stop:size].count(shape.first) == n
                        and buf[pos + 1 : stop : size].count(shape.second) == n
                    ):
                        if self.ack and shape.pid_offset:
                            start = pos + shape.pid_offset
                            self.acks.append(
                                b"".join(
                                    [b"\x40\x02" + buf[p : p + 2] for p in range(start, stop, size)]
                                )
                            )
                        count += n
                        pos = stop
                        continue
            # slow path: one packet
            one = _one_packet(buf, pos, end)
            if one is None:
                break
            first, body, pos = one
            if first >> 4 == 3:
                count += 1
                qos = (first >> 1) & 3
                if qos and self.ack:
                    topic_len = struct.unpack_from("!H", body, 0)[0]
                    self.acks.append(b"\x40\x02" + body[2 + topic_len : 4 + topic_len])
                if self.on_publish is not None:
                    self.on_publish(first, body)
            else:
                self.others[first >> 4] = self.others.get(first >> 4, 0) + 1
        self.fill = end - pos
        if self.fill:
            buf[: self.fill] = buf[pos:end]
        return count

    def take_acks(self) -> bytes:
        out = b"".join(self.acks)
        self.acks.clear()
        return out


def _one_packet(
    buf: bytes | bytearray, pos: int, end: int | None = None
) -> tuple[int, bytes, int] | None:
    """The packet at ``pos`` in ``buf[:end]`` as (first byte, body, next position), or None if
    incomplete."""
    if end is None:
        end = len(buf)
    length = 0
    shift = 0
    i = pos + 1
    while True:
        if i >= end:
            return None
        byte = buf[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            break
        shift += 7
    if i + length > end:
        return None
    return buf[pos], bytes(buf[i : i + length]), i + length


# -- connections ------------------------------------------------------------------------------


def open_session(
    host: str, port: int, client_id: str, timeout: float = 5.0, clean: bool = True
) -> socket.socket:
    """A connected TCP socket after CONNECT/CONNACK (return code 0); raises otherwise."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(client_id, clean=clean))
        ack = recv_exact(sock, 4)
        if ack[0] != CONNACK or ack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {ack.hex()}")
    except BaseException:
        sock.close()
        raise
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        out += chunk
    return out


def subscribe(sock: socket.socket, topic_filter: str, qos: int) -> None:
    sock.sendall(subscribe_packet(1, topic_filter, qos))
    ack = recv_exact(sock, 5)
    if ack[0] != SUBACK or ack[4] > 2:
        raise ConnectionError(f"SUBACK refused: {ack.hex()}")


def probe(host: str, port: int, timeout: float) -> bool:
    """True if the broker answers CONNECT with a CONNACK within ``timeout``."""
    try:
        sock = open_session(host, port, f"probe-{time.monotonic_ns()}", timeout=timeout)
    except (OSError, ConnectionError):
        return False
    with contextlib.suppress(OSError):
        sock.sendall(DISCONNECT_PACKET)
    sock.close()
    return True


# -- workers ----------------------------------------------------------------------------------


class Control:
    """The worker's side of the parent's start/stop protocol (multiprocessing primitives)."""

    def __init__(self, index: int, ready_q: Any, result_q: Any, go: Any, start: Any) -> None:
        self.index = index
        self.ready_q = ready_q
        self.result_q = result_q
        self.go = go
        self.start = start

    def ready(self, **info: Any) -> None:
        self.ready_q.put((self.index, "ready", info))

    def wait_go(self, timeout: float = 60.0) -> float:
        if not self.go.wait(timeout):
            raise TimeoutError("no start signal from the parent")
        return float(self.start.value)

    def result(self, **info: Any) -> None:
        self.result_q.put((self.index, "result", info))


TOPIC_PREFIX = "bench/p"


def publisher_topic(i: int) -> str:
    """Topics of equal length for all publishers, so every delivery has one size."""
    return f"{TOPIC_PREFIX}{i:03d}"


def payload_of(size: int) -> bytes:
    return bytes(i & 0xFF for i in range(size))


def qos0_publisher(
    ctl: Control, host: str, port: int, topic: str, payload: bytes, seconds: float, max_msgs: int
) -> None:
    """Writes pre-encoded QoS 0 PUBLISH batches as fast as the socket takes them."""
    sock = open_session(host, port, f"pub-{ctl.index}-{time.monotonic_ns()}")
    packet = publish_packet(topic, payload)
    per_batch = max(1, 128 * 1024 // len(packet))
    batch = memoryview(packet * per_batch)
    sock.settimeout(0.05)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    sent_bytes = 0
    limit = max_msgs * len(packet)
    off = 0
    size = len(batch)
    while sent_bytes < limit and time.monotonic() < deadline:
        try:
            n = sock.send(batch[off:])
        except TimeoutError:
            continue
        sent_bytes += n
        off = (off + n) % size
    cpu = time.process_time() - cpu0
    # finish the packet in flight so the broker does not see a torn one
    rest = (len(packet) - sent_bytes % len(packet)) % len(packet)
    try:
        if rest:
            sock.settimeout(1.0)
            sock.sendall(batch[off : off + rest])
        sock.sendall(DISCONNECT_PACKET)
    except OSError:
        pass
    sock.close()
    ctl.result(sent=sent_bytes // len(packet), cpu=cpu)


def qos1_publisher(
    ctl: Control,
    host: str,
    port: int,
    topic: str,
    payload: bytes,
    seconds: float,
    max_msgs: int,
    window: int,
) -> None:
    """Keeps up to ``window`` QoS 1 PUBLISHes unacknowledged, refilling as PUBACKs arrive."""
    sock = open_session(host, port, f"pub1-{ctl.index}-{time.monotonic_ns()}")
    ids = 65535
    one = publish_packet(topic, payload, qos=1, packet_id=1)
    size = len(one)
    ring = memoryview(b"".join(publish_packet(topic, payload, 1, pid) for pid in range(1, ids + 1)))
    sock.settimeout(0.05)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    sent = acked = 0
    nxt = 0
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    fill = 0  # bytes of an incomplete packet at the buffer's front
    while time.monotonic() < deadline:
        room = min(window - (sent - acked), max_msgs - sent)
        if room > 0:
            first = min(room, ids - nxt)
            sock.sendall(ring[nxt * size : (nxt + first) * size])
            if room > first:
                sock.sendall(ring[: (room - first) * size])
            nxt = (nxt + room) % ids
            sent += room
        elif sent >= max_msgs and acked >= sent:
            break
        try:
            got = sock.recv_into(view[fill:])
        except TimeoutError:
            continue
        if not got:
            raise ConnectionError("broker closed the publisher connection")
        end = fill + got
        n = end // 4
        if buf[0 : n * 4 : 4].count(PUBACK) == n:
            acked += n
            pos = n * 4
        else:
            packets, pos = split_packets(bytes(buf[:end]))
            acked += sum(1 for first, _ in packets if first >> 4 == 4)
        fill = end - pos
        if fill:
            buf[:fill] = buf[pos:end]
    cpu = time.process_time() - cpu0
    sock.close()
    ctl.result(sent=sent, acked=acked, cpu=cpu)


def qos2_publisher(
    ctl: Control,
    host: str,
    port: int,
    topic: str,
    payload: bytes,
    seconds: float,
    max_msgs: int,
    window: int,
) -> None:
    """Keeps up to ``window`` QoS 2 exchanges open: PUBREL for each PUBREC, a new PUBLISH
    for each PUBCOMP."""
    sock = open_session(host, port, f"pub2-{ctl.index}-{time.monotonic_ns()}")
    ids = 65535
    sock.settimeout(0.05)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    sent = completed = 0
    nxt = 1
    pending = b""
    while time.monotonic() < deadline:
        room = min(window - (sent - completed), max_msgs - sent)
        if room > 0:
            batch = []
            for _ in range(room):
                batch.append(publish_packet(topic, payload, 2, nxt))
                nxt = nxt % ids + 1
            sock.sendall(b"".join(batch))
            sent += room
        elif sent >= max_msgs and completed >= sent:
            break
        try:
            got = sock.recv(RECV_SIZE)
        except TimeoutError:
            continue
        if not got:
            raise ConnectionError("broker closed the publisher connection")
        packets, pos = split_packets(pending + got)
        pending = (pending + got)[pos:]
        releases = []
        for first, body in packets:
            if first >> 4 == 5:  # PUBREC
                releases.append(b"\x62\x02" + body[:2])
            elif first >> 4 == 7:  # PUBCOMP
                completed += 1
        if releases:
            sock.sendall(b"".join(releases))
    cpu = time.process_time() - cpu0
    sock.close()
    ctl.result(sent=sent, acked=completed, cpu=cpu)


def subscriber(
    ctl: Control,
    host: str,
    port: int,
    count: int,
    topic_filter: str,
    qos: int,
    shape: Shape,
    seconds: float,
) -> None:
    """``count`` subscriptions on one selector; counts deliveries inside the window, acks QoS 1."""
    socks = []
    for i in range(count):
        sock = open_session(host, port, f"sub-{ctl.index}-{i}-{time.monotonic_ns()}")
        subscribe(sock, topic_filter, qos)
        sock.settimeout(5.0)
        socks.append(sock)
    sel = selectors.DefaultSelector()
    receivers = []
    for sock in socks:
        rec = Receiver(shape, ack=qos > 0)
        receivers.append(rec)
        sel.register(sock, selectors.EVENT_READ, (sock, rec))
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    received = 0
    while (now := time.monotonic()) < deadline:
        for key, _ in sel.select(deadline - now):
            sock, rec = key.data
            received += rec.recv(sock)
            if rec.acks:
                sock.sendall(rec.take_acks())
    cpu = time.process_time() - cpu0
    others: dict[int, int] = {}
    for rec in receivers:
        for k, v in rec.others.items():
            others[k] = others.get(k, 0) + v
    for sock in socks:
        sock.close()
    ctl.result(received=received, cpu=cpu, others=others)


def latency_probe(
    ctl: Control,
    host: str,
    port: int,
    qos: int,
    rate: float,
    seconds: float,
    payload_size: int,
) -> None:
    """Publishes at ``rate`` msgs/s with a monotonic timestamp in the payload; the subscriber
    (a second connection in this process) records publish-to-delivery times."""
    pub = open_session(host, port, f"latpub-{time.monotonic_ns()}")
    sub = open_session(host, port, f"latsub-{time.monotonic_ns()}")
    topic = "bench/lat"
    subscribe(sub, topic, qos)
    pad = b"\0" * max(0, payload_size - 8)
    latencies: list[int] = []

    def on_publish(first: int, body: bytes) -> None:
        now = time.monotonic_ns()
        topic_len = struct.unpack_from("!H", body, 0)[0]
        off = 2 + topic_len + (2 if (first >> 1) & 3 else 0)
        latencies.append(now - struct.unpack_from("!Q", body, off)[0])

    sub_rx = Receiver(None, ack=qos > 0, on_publish=on_publish)
    pub_rx = Receiver(None, ack=False)
    sel = selectors.DefaultSelector()
    sel.register(pub, selectors.EVENT_READ, "pub")
    sel.register(sub, selectors.EVENT_READ, "sub")
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    interval = 1.0 / rate
    next_send = start
    sent = 0
    pid = 0
    while (now := time.monotonic()) < deadline:
        if now >= next_send:
            pid = pid % 65535 + 1
            stamp = struct.pack("!Q", time.monotonic_ns())
            pub.sendall(publish_packet(topic, stamp + pad, qos, pid))
            sent += 1
            next_send += interval
            continue
        for key, _ in sel.select(max(0.0, min(next_send, deadline) - now)):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "sub":
                sub_rx.recv(sock)
                if sub_rx.acks:
                    sock.sendall(sub_rx.take_acks())
            else:
                pub_rx.recv(sock)
    cpu = time.process_time() - cpu0
    pub.close()
    sub.close()
    ctl.result(sent=sent, latencies=latencies, cpu=cpu)


def connector(ctl: Control, host: str, port: int, count: int, concurrency: int, hold: Any) -> None:
    """Opens ``count`` MQTT connections (CONNECT+CONNACK), ``concurrency`` at a time, then holds
    them open until the parent sets ``hold``."""
    sel = selectors.DefaultSelector()
    ctl.ready()
    start = ctl.wait_go()
    cpu0 = time.process_time()
    base = f"idle-{ctl.index}-{time.monotonic_ns()}-"
    done: list[socket.socket] = []
    pending: dict[int, tuple[socket.socket, bytes]] = {}
    opened = 0
    failed = 0
    deadline = start + 60.0
    while len(done) + failed < count and time.monotonic() < deadline:
        while opened < count and len(pending) < concurrency:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            rc = sock.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                sock.close()
                failed += 1
                opened += 1
                continue
            pending[sock.fileno()] = (sock, b"")
            sel.register(sock, selectors.EVENT_WRITE, base + str(opened))
            opened += 1
        for key, events in sel.select(1.0):
            sock, got = pending[key.fd]
            if events & selectors.EVENT_WRITE:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(sock)
                    del pending[key.fd]
                    sock.close()
                    failed += 1
                    continue
                sock.send(connect_packet(key.data))
                sel.modify(sock, selectors.EVENT_READ, key.data)
                continue
            try:
                chunk = sock.recv(4 - len(got))
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            got += chunk
            if not chunk or (len(got) == 4 and got[3] != 0):
                sel.unregister(sock)
                del pending[key.fd]
                sock.close()
                failed += 1
            elif len(got) == 4:
                sel.unregister(sock)
                del pending[key.fd]
                done.append(sock)
            else:
                pending[key.fd] = (sock, got)
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu0
    for sock, _ in pending.values():
        sock.close()
    ctl.result(connected=len(done), failed=failed, elapsed=elapsed, cpu=cpu)
    hold.wait(120.0)
    for sock in done:
        sock.close()
