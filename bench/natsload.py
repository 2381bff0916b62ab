"""NATS client load-generator pieces for ``bench/nats_clients.py``: raw-socket workers.

Nothing here uses nats-py: every worker speaks the NATS text protocol on a plain
socket so the load generator costs far less than the server it measures.

- ``publisher`` writes a pre-encoded ``PUB`` line + payload, repeated into a
  ~128 KiB chunk, as fast as the socket takes it (pipelined, never waiting),
  then flushes with ``PING``/``PONG`` at the end (bounded).
- ``subscriber`` counts ``MSG`` deliveries of one fixed size with stepped-slice
  checks on the first and last byte of each (C speed, no per-message parse);
  anything else (``PING``, ``+OK``, ``INFO``) goes through a one-op parse.
- ``responder`` answers every request on a subject with the same payload to its
  reply subject; ``requester`` keeps ``concurrency`` requests in flight with
  per-slot reply subjects under one wildcard inbox (as nats-py does) and times
  each round trip.

Workers follow ``mqttload.Control``'s protocol: ``ready()`` once connected and
subscribed (confirmed by a ``PONG``), ``wait_go()`` for the shared start,
``result()`` with counts and the CPU time used inside the measured window.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from mqttload import Control

RECV_SIZE = 1 << 20
CRLF = b"\r\n"
M, LF = ord("M"), ord("\n")


class Reader:
    """``recv`` into one preallocated buffer: ``sock.recv(1 MiB)`` allocates (and on this
    allocator maps and unmaps) 1 MiB per call, ~9 us, which would swamp small reads."""

    def __init__(self, sock: socket.socket, size: int = RECV_SIZE) -> None:
        self.sock = sock
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)

    def recv(self) -> bytes:
        n = self.sock.recv_into(self.buf)
        return self.view[:n].tobytes()


# -- protocol ---------------------------------------------------------------------------------


def connect_line(name: str) -> bytes:
    opts = {
        "verbose": False,
        "pedantic": False,
        "name": name,
        "lang": "raw-python",
        "version": "0",
        "protocol": 1,
        "echo": True,
    }
    return b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + CRLF


def pub_frame(subject: str, payload: bytes, reply: str = "") -> bytes:
    head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
    return head.encode() + CRLF + payload + CRLF


def msg_frame_size(subject: str, sid: int, payload_size: int) -> int:
    """Size of ``MSG <subject> <sid> <size>\\r\\n<payload>\\r\\n`` (no reply subject)."""
    return len(f"MSG {subject} {sid} {payload_size}\r\n") + payload_size + 2


def next_op(
    buf: bytes | bytearray, pos: int, end: int | None = None
) -> tuple[bytes, bytes, int] | None:
    """The protocol op at ``pos`` (up to ``end``) as (control line, payload, next position),
    or None if incomplete.

    ``MSG``/``HMSG`` carry a payload (for ``HMSG`` headers and body together); other
    ops are a bare control line.
    """
    end = len(buf) if end is None else end
    eol = buf.find(CRLF, pos, end)
    if eol < 0:
        return None
    line = bytes(buf[pos:eol])
    if line[:4] in (b"MSG ", b"HMSG"):
        size = int(line.rsplit(b" ", 1)[1])
        start = eol + 2
        if start + size + 2 > end:
            return None
        return line, bytes(buf[start : start + size]), start + size + 2
    return line, b"", eol + 2


def recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 16) -> bytes:
    out = b""
    while marker not in out:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"server closed the connection: {out[-200:]!r}")
        out += chunk
        if b"-ERR" in out:
            raise ConnectionError(f"server error: {out[out.index(b'-ERR') :][:200]!r}")
        if len(out) > limit:
            raise ConnectionError("no reply from the server")
    return out


def open_conn(
    host: str, port: int, name: str, subs: tuple[str, ...] = (), timeout: float = 5.0
) -> socket.socket:
    """Connected after INFO, CONNECT, the ``SUB``s and a ``PING`` answered by ``PONG``."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv_until(sock, CRLF)  # INFO
        lines = [connect_line(name)]
        lines += [f"SUB {subject} {sid}\r\n".encode() for sid, subject in enumerate(subs, 1)]
        sock.sendall(b"".join(lines) + b"PING\r\n")
        recv_until(sock, b"PONG\r\n")
    except BaseException:
        sock.close()
        raise
    return sock


def probe(host: str, port: int, timeout: float) -> bool:
    """True if the server answers INFO/CONNECT/PING with a PONG within ``timeout``."""
    try:
        sock = open_conn(host, port, "probe", timeout=timeout)
    except (OSError, ConnectionError):
        return False
    sock.close()
    return True


class MsgCounter:
    """Counts ``MSG`` deliveries of one frame size read from a socket; answers ``PING``s.

    Reads go straight into one preallocated buffer behind the previous read's partial
    frame (no copy of the data in Python). The fast path checks, for the whole-frame
    prefix of what is buffered, that every frame starts with ``M`` and ends with ``\\n``,
    with two stepped slices; the first frame that does not (a ``PING`` in between, say)
    ends the fast run and goes through ``next_op``. ``pongs`` is what is owed.
    """

    def __init__(self, sock: socket.socket, frame_size: int, size: int = RECV_SIZE) -> None:
        self.sock = sock
        self.size = frame_size
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.have = 0  # bytes of a partial frame/op kept at the front of buf
        self.pongs = 0
        self.others: dict[str, int] = {}

    def read(self) -> int:
        """Deliveries completed by one ``recv``; -1 when the server closed the connection."""
        got = self.sock.recv_into(self.view[self.have :])
        if not got:
            return -1
        buf = self.buf
        size = self.size
        pos, end, count = 0, self.have + got, 0
        while pos < end:
            n = (end - pos) // size
            if n:
                stop = pos + n * size
                firsts = buf[pos:stop:size]
                lasts = buf[pos + size - 1 : stop : size]
                k = min(n - len(firsts.lstrip(b"M")), n - len(lasts.lstrip(b"\n")))
                if k:
                    count += k
                    pos += k * size
                    continue
            op = next_op(buf, pos, end)
            if op is None:
                break
            line, _, pos = op
            verb = line.split(b" ", 1)[0].decode(errors="replace")
            if verb in ("MSG", "HMSG"):
                count += 1
            else:
                if verb == "PING":
                    self.pongs += 1
                self.others[verb] = self.others.get(verb, 0) + 1
        self.have = end - pos
        if self.have:
            if self.have == len(buf):
                raise ConnectionError("protocol op larger than the receive buffer")
            buf[: self.have] = buf[pos:end]
        return count


# -- workers ----------------------------------------------------------------------------------


def publisher(
    ctl: Control,
    host: str,
    port: int,
    subject: str,
    payload: bytes,
    seconds: float,
    max_msgs: int,
) -> None:
    """Pipelined publishing of pre-encoded ``PUB`` frames; a bounded flush at the end."""
    sock = open_conn(host, port, f"pub-{ctl.index}-{os.getpid()}")
    frame = pub_frame(subject, payload)
    per_batch = max(1, 128 * 1024 // len(frame))
    batch = memoryview(frame * per_batch)
    sock.settimeout(0.05)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    sent_bytes = 0
    limit = max_msgs * len(frame)
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
    flushed = False
    rest = (len(frame) - sent_bytes % len(frame)) % len(frame)
    try:  # finish the frame in flight, then flush (bounded: a backlog may take long)
        sock.settimeout(2.0)
        if rest:
            sock.sendall(batch[off : off + rest])
        sock.sendall(b"PING\r\n")
        recv_until(sock, b"PONG\r\n", limit=1 << 20)
        flushed = True
    except (OSError, ConnectionError):
        pass
    sock.close()
    ctl.result(sent=sent_bytes // len(frame), cpu=cpu, flushed=flushed)


def subscriber(
    ctl: Control, host: str, port: int, subject: str, payload_size: int, seconds: float
) -> None:
    """One subscription; counts deliveries inside the window."""
    sock = open_conn(host, port, f"sub-{ctl.index}-{os.getpid()}", subs=(subject,))
    counter = MsgCounter(sock, msg_frame_size(subject, 1, payload_size))
    sock.settimeout(0.1)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    received = 0
    closed = False
    while time.monotonic() < deadline:
        try:
            got = counter.read()
        except TimeoutError:
            continue
        if got < 0:
            closed = True  # e.g. dropped as a slow consumer
            break
        received += got
        if counter.pongs:
            sock.sendall(b"PONG\r\n" * counter.pongs)
            counter.pongs = 0
    cpu = time.process_time() - cpu0
    sock.close()
    ctl.result(received=received, cpu=cpu, closed=closed, others=counter.others)


def responder(ctl: Control, host: str, port: int, subject: str, seconds: float) -> None:
    """Replies to every request on ``subject`` with its payload until the window ends."""
    sock = open_conn(host, port, f"resp-{ctl.index}-{os.getpid()}", subs=(subject,))
    sock.settimeout(0.1)
    reader = Reader(sock)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    answered = 0
    tail = b""
    while time.monotonic() < deadline:
        try:
            data = reader.recv()
        except TimeoutError:
            continue
        if not data:
            raise ConnectionError("server closed the responder connection")
        buf = tail + data if tail else data
        pos = 0
        out: list[bytes] = []
        while (op := next_op(buf, pos)) is not None:
            line, payload, pos = op
            if line.startswith(b"MSG "):
                parts = line.split(b" ")
                if len(parts) == 5:  # MSG <subject> <sid> <reply> <size>
                    out.append(b"PUB %s %d\r\n%s\r\n" % (parts[3], len(payload), payload))
                    answered += 1
            elif line == b"PING":
                out.append(b"PONG\r\n")
        tail = buf[pos:]
        if out:
            sock.sendall(b"".join(out))
    cpu = time.process_time() - cpu0
    sock.close()
    ctl.result(answered=answered, cpu=cpu)


def requester(
    ctl: Control,
    host: str,
    port: int,
    subject: str,
    payload: bytes,
    concurrency: int,
    seconds: float,
) -> None:
    """Keeps ``concurrency`` requests in flight (1 = sequential); counts replies in the window.

    Reply subjects are ``_INBOX.<id>.<slot>`` under one ``_INBOX.<id>.*`` subscription;
    a reply for a slot sends that slot's next request. Round-trip times are summarised
    here (p50/p99 in microseconds) rather than shipped back one by one.
    """
    inbox = f"_INBOX.bench{os.getpid()}x{ctl.index}."
    sock = open_conn(host, port, f"req-{ctl.index}-{os.getpid()}", subs=(inbox + "*",))
    frames = [pub_frame(subject, payload, reply=f"{inbox}{slot}") for slot in range(concurrency)]
    prefix = len(b"MSG " + inbox.encode())
    sent_at = [0] * concurrency
    rtts: list[int] = []
    sock.settimeout(0.1)
    reader = Reader(sock)
    ctl.ready()
    start = ctl.wait_go()
    deadline = start + seconds
    cpu0 = time.process_time()
    now_ns = time.monotonic_ns()
    for slot in range(concurrency):
        sent_at[slot] = now_ns
    sock.sendall(b"".join(frames))
    replies = 0
    tail = b""
    while time.monotonic() < deadline:
        try:
            data = reader.recv()
        except TimeoutError:
            continue
        if not data:
            raise ConnectionError("server closed the requester connection")
        now_ns = time.monotonic_ns()
        buf = tail + data if tail else data
        pos = 0
        out: list[bytes] = []
        while (op := next_op(buf, pos)) is not None:
            line, _, pos = op
            if line.startswith(b"MSG "):
                slot = int(line[prefix : line.index(b" ", prefix)])
                rtts.append(now_ns - sent_at[slot])
                sent_at[slot] = now_ns
                out.append(frames[slot])
                replies += 1
            elif line == b"PING":
                out.append(b"PONG\r\n")
        tail = buf[pos:]
        if out:
            sock.sendall(b"".join(out))
    cpu = time.process_time() - cpu0
    with contextlib.suppress(OSError):
        sock.close()
    rtts.sort()

    def pct(q: float) -> float:
        return rtts[min(len(rtts) - 1, round(q * (len(rtts) - 1)))] / 1000.0 if rtts else 0.0

    ctl.result(replies=replies, cpu=cpu, p50=pct(0.50), p99=pct(0.99))
