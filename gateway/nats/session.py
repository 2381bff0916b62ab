"""One NATS client's protocol state machine, sans-I/O.

``receive_data`` parses what the client sent and answers what the protocol
answers by itself (PONG, ``+OK`` in verbose mode, ``-ERR`` for violations);
what needs the outside world comes back as events for the asyncio driver:
``Authenticate`` (then ``accept``/``reject``), ``Publish``, ``Subscribe``,
``Unsubscribe`` and ``Close``. ``deliver`` encodes a Bus message for one of the
client's subscriptions, after the per-delivery permission checks.

States and transitions (the only ones there are)::

    AWAITING_CONNECT --CONNECT--> AUTHENTICATING --accept--> OPEN
    any --violation, reject, close--> CLOSED

Operations that arrive while authentication is under way wait in order and
run once the client is accepted.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.auth.limits import Limits
from gateway.auth.permissions import ResponsePermits
from gateway.auth.users import Credentials, Identity
from gateway.bus.api import Msg, MsgBatch
from gateway.bus.subjects import InvalidSubject, validate_subject
from gateway.nats.headers import HeaderError, decode_headers, encode_headers
from gateway.nats.protocol import (
    ERR_INVALID_PUBLISH_SUBJECT,
    ERR_INVALID_SUBJECT,
    ERR_MAX_PAYLOAD,
    OK,
    PING_BYTES,
    PONG_BYTES,
    ClientOp,
    ClientParser,
    Connect,
    Ping,
    Pong,
    ProtocolError,
    Pub,
    PubRun,
    Sub,
    Unsub,
    encode_err,
    encode_hmsg,
    encode_msg,
    encode_msgs,
)

ERR_AUTHORIZATION = "Authorization Violation"
#: The NATS server's text (2.10 and later; earlier versions capitalised it).
ERR_MAX_SUBSCRIPTIONS = "maximum subscriptions exceeded"
ERR_NO_RESPONDERS_NEEDS_HEADERS = "no responders requires headers support"


class State(enum.Enum):
    """Where the connection is in its life."""

    AWAITING_CONNECT = "awaiting connect"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Authenticate:
    """The client sent CONNECT: check ``credentials``, then call ``accept`` or ``reject``."""

    credentials: Credentials
    name: str | None
    lang: str | None
    version: str | None


@dataclass(slots=True)
class Publish:
    """Publish on the Bus (subject, permissions and size already checked)."""

    subject: str
    reply: str
    payload: bytes
    headers: Mapping[str, str] | None
    check_responders: bool


@dataclass(slots=True)
class PublishMany:
    """Publish header-less, reply-less payloads on one subject (all checked), in order."""

    subject: str
    payloads: list[bytes]


@dataclass(slots=True)
class Subscribe:
    """Subscribe on the Bus for ``sid``; deliveries go through ``deliver(sid, msg)``."""

    sid: str
    subject: str
    queue: str | None


@dataclass(slots=True)
class Unsubscribe:
    """End ``sid`` now (``max_msgs`` None) or after ``max_msgs`` deliveries in total."""

    sid: str
    max_msgs: int | None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once what is queued has been sent; ``reason`` is for the log."""

    reason: str


@dataclass(slots=True)
class Send:
    """Protocol answers to write before the events that follow (keeps the wire order)."""

    data: bytes


Event = Authenticate | Publish | PublishMany | Subscribe | Unsubscribe | Close | Send


@dataclass(slots=True)
class _SubState:
    subject: str
    queue: str | None
    wildcard: bool


def permissions_violation_publish(subject: str) -> str:
    """The NATS server's text for a refused publish."""
    return f'Permissions Violation for Publish to "{subject}"'


def permissions_violation_subscribe(subject: str, queue: str | None) -> str:
    """The NATS server's text for a refused subscription."""
    if queue:
        return f'Permissions Violation for Subscription to "{subject}" using queue "{queue}"'
    return f'Permissions Violation for Subscription to "{subject}"'


class NatsSession:
    """The protocol state of one NATS client connection (see the module docstring)."""

    def __init__(
        self,
        *,
        auth_required: bool,
        nonce: bytes | None = None,
        max_payload: int,
        max_control_line: int,
        max_subscriptions: int = 0,
    ) -> None:
        self.state = State.AWAITING_CONNECT
        self.auth_required = auth_required
        self.nonce = nonce
        self.max_subscriptions: int | None = max_subscriptions or None
        """How many subscriptions the client may hold (``None``: no limit; the argument's 0 is no limit)."""
        self.identity: Identity | None = None
        self.client_options: dict[str, Any] = {}
        self.verbose = False
        self.pedantic = False
        self.echo = True
        self.headers = False
        self.no_responders = False
        self.subscriptions: dict[str, _SubState] = {}
        self._ending: dict[str, _SubState] = {}
        self._parser = ClientParser(max_payload, max_control_line, group=True)
        self._waiting: deque[ClientOp] = deque()
        self._out: list[bytes] = []
        self._responses: ResponsePermits | None = None
        self._failure: ProtocolError | None = None
        self.outstanding_pings = 0

    # -- input --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it produces, in order."""
        if self.state is State.CLOSED:
            return []
        try:
            self._waiting.extend(self._parser.feed(data))
        except ProtocolError as exc:
            # Operations before the violation run first, as in the NATS server.
            self._waiting.extend(exc.parsed)
            events = self._run()
            if self.state is State.AUTHENTICATING:
                self._failure = exc
                return events
            return events + self._fail(exc.wire_text, exc.detail)
        return self._run()

    def _run(self) -> list[Event]:
        events: list[Event] = []
        while self._waiting and self.state in (State.AWAITING_CONNECT, State.OPEN):
            op = self._waiting.popleft()
            if self.state is State.AWAITING_CONNECT:
                if isinstance(op, Connect):
                    events.append(self._connect(op))
                    continue
                if self.auth_required:
                    return events + self._fail(ERR_AUTHORIZATION, "operation before CONNECT")
                self._open(None)
            produced = self._operate(op)
            if produced and self._out:
                events.append(Send(self.data_to_send()))
            events.extend(produced)
        return events

    def _connect(self, op: Connect) -> Event:
        options = op.options
        self.client_options = options
        self.verbose = bool(options.get("verbose", False))
        self.pedantic = bool(options.get("pedantic", False))
        self.echo = bool(options.get("echo", True))
        self.headers = bool(options.get("headers", False))
        self.no_responders = bool(options.get("no_responders", False))
        if self.no_responders and not self.headers:
            return self._fail(ERR_NO_RESPONDERS_NEEDS_HEADERS, "no_responders without headers")[0]
        credentials = Credentials(
            username=_opt_str(options, "user"),
            password=_opt_str(options, "pass"),
            token=_opt_str(options, "auth_token"),
            nkey=_opt_str(options, "nkey"),
            signature=_opt_str(options, "sig"),
            jwt=_opt_str(options, "jwt"),
        )
        self.state = State.AUTHENTICATING
        return Authenticate(
            credentials,
            _opt_str(options, "name"),
            _opt_str(options, "lang"),
            _opt_str(options, "version"),
        )

    def _operate(self, op: ClientOp) -> list[Event]:
        if op.__class__ is PubRun:
            return self._publish_run(op)
        if isinstance(op, Pub):
            return self._publish(op)
        if isinstance(op, Sub):
            return self._subscribe(op)
        if isinstance(op, Unsub):
            self._ok()
            if op.sid not in self.subscriptions:
                return []
            if op.max_msgs is None:
                # Messages published before the UNSUB still reach it: the state is kept
                # for them until the driver has ended the subscription.
                self._ending[op.sid] = self.subscriptions.pop(op.sid)
            return [Unsubscribe(op.sid, op.max_msgs)]
        if isinstance(op, Connect):
            # A second CONNECT only updates options, as in the NATS server.
            self.verbose = bool(op.options.get("verbose", self.verbose))
            self.pedantic = bool(op.options.get("pedantic", self.pedantic))
            self._ok()
            return []
        if isinstance(op, Ping):
            self._out.append(PONG_BYTES)
        elif isinstance(op, Pong):
            self.outstanding_pings = 0
        return []

    def _publish(self, op: Pub) -> list[Event]:
        size = len(op.payload) + (len(op.headers) if op.headers is not None else 0)
        if size > self._parser.max_payload:
            # Parsed before CONNECT lowered the limit (same chunk): as the parser would.
            return self._fail(ERR_MAX_PAYLOAD, f"payload of {size} bytes over the limit")
        if not _valid(op.subject, False) or (op.reply and not _valid(op.reply, False)):
            self._err(ERR_INVALID_PUBLISH_SUBJECT)
            return []
        identity = self.identity
        if (
            identity is not None
            and not identity.permissions.may_publish(op.subject)
            and (self._responses is None or not self._responses.use(op.subject))
        ):
            self._err(permissions_violation_publish(op.subject))
            return []
        headers: Mapping[str, str] | None = None
        if op.headers is not None:
            try:
                headers = decode_headers(op.headers)
            except HeaderError as exc:
                return self._fail("Unknown Protocol Operation", str(exc))
        self._ok()
        check = bool(op.reply) and self.no_responders
        return [Publish(op.subject, op.reply or "", op.payload, headers, check)]

    def _publish_run(self, run: PubRun) -> list[Event]:
        """Plain PUBs on one subject: checked once when every one would pass alike."""
        subject, payloads = run.subject, run.payloads
        identity = self.identity
        if (
            len(payloads) == 1
            or max(map(len, payloads)) > self._parser.max_payload
            or not _valid(subject, False)
            or (identity is not None and not identity.permissions.may_publish(subject))
        ):
            # An error, or an allow_responses permit per message: one by one.
            events: list[Event] = []
            for payload in payloads:
                events += self._publish(Pub(subject, None, payload))
                if self.state is State.CLOSED:
                    break
            return events
        if self.verbose:
            self._out.extend([OK] * len(payloads))
        return [PublishMany(subject, payloads)]

    def _subscribe(self, op: Sub) -> list[Event]:
        if not _valid(op.subject, True) or (
            op.queue is not None and (not op.queue or any(c in op.queue for c in " \t*>"))
        ):
            self._err(ERR_INVALID_SUBJECT)
            return []
        identity = self.identity
        if identity is not None and not identity.permissions.may_subscribe(op.subject, op.queue):
            self._err(permissions_violation_subscribe(op.subject, op.queue))
            return []
        if op.sid in self.subscriptions:
            self._ok()
            return []
        if self.max_subscriptions is not None and len(self.subscriptions) >= self.max_subscriptions:
            self._err(ERR_MAX_SUBSCRIPTIONS)
            return []
        wildcard = any(t in ("*", ">") for t in op.subject.split("."))
        self.subscriptions[op.sid] = _SubState(op.subject, op.queue, wildcard)
        self._ok()
        return [Subscribe(op.sid, op.subject, op.queue)]

    # -- commands from the driver -------------------------------------------

    def accept(self, identity: Identity, info: bytes = b"") -> list[Event]:
        """Authentication succeeded: answer CONNECT and run the operations that waited.

        ``info`` (an INFO telling the client its lowered ``max_payload``) goes
        out after the answers to those operations, where the NATS server sends it.
        """
        if self.state is not State.AUTHENTICATING:
            return []
        self._open(identity)
        self._ok()
        events = self._run()
        if info and self._running():  # not closed by an operation that waited
            self._out.append(info)
        failure = self._failure
        if failure is not None:
            self._failure = None
            events += self._fail(failure.wire_text, failure.detail)
        elif self.max_subscriptions is not None and self.max_subscriptions <= 0:
            # As the NATS server: a user whose JWTs allow no subscription at all
            # (a v2 JWT without "subs") is closed right after it is accepted.
            events += self._fail(
                ERR_MAX_SUBSCRIPTIONS, "the user's JWT limits allow no subscription"
            )
        return events

    def _open(self, identity: Identity | None) -> None:
        self.identity = identity
        self.state = State.OPEN
        if identity is not None:
            self._responses = identity.permissions.new_response_permits()
            self._apply_limits(identity.limits)

    def _running(self) -> bool:
        return self.state is State.OPEN

    def _apply_limits(self, limits: Limits) -> None:
        """Operator mode: the user's and account's ``subs`` and ``payload`` tighten the server's."""
        if limits.payload is not None and limits.payload < self._parser.max_payload:
            self._parser.max_payload = limits.payload
        subs = limits.subscriptions
        if subs is not None and (self.max_subscriptions is None or subs < self.max_subscriptions):
            self.max_subscriptions = subs

    @property
    def max_payload(self) -> int:
        """The largest payload this client may publish now (lowered by a user's JWT limits)."""
        return self._parser.max_payload

    def reject(self, reason: str) -> list[Event]:
        """Authentication failed: ``-ERR 'Authorization Violation'`` and close."""
        return self._fail(ERR_AUTHORIZATION, reason)

    def fail(self, wire_text: str, reason: str) -> list[Event]:
        """Send ``-ERR 'wire_text'`` and close (authorization timeout, stale connection ...)."""
        return self._fail(wire_text, reason)

    def unsubscribed(self, sid: str) -> None:
        """The driver carried out an UNSUB of ``sid``: forget the state kept for it."""
        self._ending.pop(sid, None)

    def subscription_ended(self, sid: str) -> None:
        """The Bus ended ``sid`` (unsubscribed, or auto-unsubscribe reached its count)."""
        self.subscriptions.pop(sid, None)
        self._ending.pop(sid, None)

    def deliver(self, sid: str, msg: Msg) -> bytes | None:
        """The bytes that deliver ``msg`` on ``sid``, or None when it must not be delivered."""
        if not self._may_deliver(sid, msg.subject):
            return None
        if msg.reply and self._responses is not None:
            self._responses.grant(msg.reply)
        if msg.headers is not None and self.headers:
            return encode_hmsg(
                msg.subject, sid, msg.reply, encode_headers(msg.headers), msg.payload
            )
        return encode_msg(msg.subject, sid, msg.reply, msg.payload)

    def deliver_batch(self, sid: str, batch: MsgBatch) -> bytes | None:
        """``deliver`` for each message of ``batch`` (no reply, no headers), joined."""
        if not self._may_deliver(sid, batch.subject):
            return None
        return encode_msgs(batch.subject, sid, batch.payloads)

    def _may_deliver(self, sid: str, subject: str) -> bool:
        """Whether ``sid`` still exists and, for a wildcard, the user may receive ``subject``."""
        sub = self.subscriptions.get(sid) or self._ending.get(sid)
        if sub is None or self.state is not State.OPEN:
            return False
        identity = self.identity
        return identity is None or not sub.wildcard or identity.permissions.may_deliver(subject)

    def ping(self) -> None:
        """Queue a keep-alive PING; the client's PONG clears ``outstanding_pings``."""
        self.outstanding_pings += 1
        self._out.append(PING_BYTES)

    @property
    def outstanding_output(self) -> bool:
        """Whether protocol answers wait in ``data_to_send``."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Protocol answers queued since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    # -- helpers ------------------------------------------------------------

    def _ok(self) -> None:
        if self.verbose:
            self._out.append(OK)

    def _err(self, text: str) -> None:
        self._out.append(encode_err(text))

    def _fail(self, wire_text: str, reason: str) -> list[Event]:
        if self.state is State.CLOSED:
            return []
        self._err(wire_text)
        self.state = State.CLOSED
        self._waiting.clear()
        return [Close(f"{wire_text}: {reason}")]


def _valid(subject: str, wildcards: bool) -> bool:
    try:
        validate_subject(subject, wildcards=wildcards)
    except InvalidSubject:
        return False
    return True


def _opt_str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    return value if isinstance(value, str) and value else None
