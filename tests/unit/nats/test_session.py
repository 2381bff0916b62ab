"""``NatsSession``: the NATS client protocol state machine, driven with bytes, no event loop.

Every client stream is fed whole and one byte at a time and must give the
same events and the same bytes on the wire. ``wire`` puts the events' ``Send``
data and what ``data_to_send`` returns in the order a driver writes them, with
each ``Publish`` marked where it happens, so the order of answers relative to
publishes is checked. Texts are the NATS server's (client protocol reference:
``-ERR 'Authorization Violation'``, ``'Invalid Subject'``, permission
violations).
"""

from __future__ import annotations

import pytest

from gateway.auth.permissions import Permissions
from gateway.auth.users import Identity
from gateway.bus.api import Msg
from gateway.nats.headers import NO_RESPONDERS
from gateway.nats.session import (
    ERR_AUTHORIZATION,
    ERR_MAX_SUBSCRIPTIONS,
    ERR_NO_RESPONDERS_NEEDS_HEADERS,
    Authenticate,
    Close,
    Event,
    NatsSession,
    Publish,
    Send,
    State,
    Subscribe,
    Unsubscribe,
    permissions_violation_publish,
    permissions_violation_subscribe,
)
from gateway.options.model import Permissions as PermissionOptions
from gateway.options.model import ResponsePermission, SubjectPermission

WHOLE = 0
STEPS = pytest.mark.parametrize("step", [WHOLE, 1], ids=["whole", "bytewise"])

CONNECT = b'CONNECT {"user":"u","pass":"p","name":"n","lang":"python","version":"2.0"}\r\n'
VERBOSE = b'CONNECT {"verbose":true,"headers":true}\r\n'


def err(text: str) -> bytes:
    return f"-ERR '{text}'\r\n".encode()


def new_session(auth_required: bool = True, max_subscriptions: int = 0) -> NatsSession:
    return NatsSession(
        auth_required=auth_required,
        max_payload=1024,
        max_control_line=256,
        max_subscriptions=max_subscriptions,
    )


def feed(session: NatsSession, data: bytes, step: int) -> list[Event]:
    size = step or max(1, len(data))
    events: list[Event] = []
    for i in range(0, len(data), size):
        events.extend(session.receive_data(data[i : i + size]))
    return events


def wire(session: NatsSession, events: list[Event]) -> list[bytes | Event]:
    """Bytes written and non-Send events, in the order a driver acts on them."""
    out: list[bytes | Event] = []
    for event in events:
        if isinstance(event, Send):
            out.append(event.data)
        else:
            out.append(event)
    tail = session.data_to_send()
    if tail:
        out.append(tail)
    return _merge(out)


def _merge(items: list[bytes | Event]) -> list[bytes | Event]:
    """Join adjacent byte chunks (chunking differs between whole and bytewise feeding)."""
    merged: list[bytes | Event] = []
    for item in items:
        if isinstance(item, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + item
        else:
            merged.append(item)
    return merged


def identity(
    publish: SubjectPermission | None = None,
    subscribe: SubjectPermission | None = None,
    responses: ResponsePermission | None = None,
) -> Identity:
    options = PermissionOptions(publish=publish, subscribe=subscribe, allow_responses=responses)
    return Identity("u", permissions=Permissions(options))


def opened(
    connect: bytes = CONNECT, who: Identity | None = None, max_subscriptions: int = 0
) -> NatsSession:
    session = new_session(max_subscriptions=max_subscriptions)
    events = session.receive_data(connect)
    assert len(events) == 1 and isinstance(events[0], Authenticate)
    session.accept(who or identity())
    assert session.state is State.OPEN
    session.data_to_send()
    return session


def run(session: NatsSession, data: bytes, step: int) -> list[bytes | Event]:
    return wire(session, feed(session, data, step))


# -- CONNECT and authentication -------------------------------------------------------


@STEPS
def test_connect_asks_for_authentication(step: int) -> None:
    session = new_session()
    events = feed(session, CONNECT, step)
    assert len(events) == 1
    auth = events[0]
    assert isinstance(auth, Authenticate)
    assert (auth.credentials.username, auth.credentials.password) == ("u", "p")
    assert (auth.name, auth.lang, auth.version) == ("n", "python", "2.0")
    assert session.state is State.AUTHENTICATING
    assert session.data_to_send() == b""


@STEPS
def test_operations_during_authentication_run_after_accept_in_order(step: int) -> None:
    session = new_session()
    data = CONNECT + b"SUB a 1\r\nPING\r\nPUB a 2\r\nhi\r\nUNSUB 1\r\n"
    events = feed(session, data, step)
    assert [type(e) for e in events] == [Authenticate]
    assert session.data_to_send() == b""  # nothing answered before accept
    after = session.accept(identity())
    assert wire(session, after) == [
        Subscribe("1", "a", None),
        b"PONG\r\n",
        Publish("a", "", b"hi", None, False),
        Unsubscribe("1", None),
    ]
    assert session.state is State.OPEN


@STEPS
def test_reject_answers_authorization_violation_and_closes(step: int) -> None:
    session = new_session()
    feed(session, CONNECT + b"PUB a 2\r\nhi\r\n", step)
    events = session.reject("bad password")
    assert len(events) == 1 and isinstance(events[0], Close)
    assert session.data_to_send() == err(ERR_AUTHORIZATION)
    assert session.state is State.CLOSED
    assert session.accept(identity()) == []  # the queued PUB never runs
    assert session.receive_data(b"PING\r\n") == []
    assert session.data_to_send() == b""


@STEPS
def test_operation_before_connect_with_auth_required_is_a_violation(step: int) -> None:
    session = new_session(auth_required=True)
    events = feed(session, b"PUB a 2\r\nhi\r\n", step)
    assert len(events) == 1 and isinstance(events[0], Close)
    assert session.data_to_send() == err(ERR_AUTHORIZATION)


@STEPS
def test_operations_before_connect_allowed_without_auth(step: int) -> None:
    session = new_session(auth_required=False)
    result = run(session, b"PING\r\nSUB a 1\r\nPUB a 2\r\nhi\r\n", step)
    assert result == [
        b"PONG\r\n",
        Subscribe("1", "a", None),
        Publish("a", "", b"hi", None, False),
    ]
    assert session.state is State.OPEN


@STEPS
def test_verbose_answers_ok_for_connect_and_each_operation(step: int) -> None:
    session = new_session()
    feed(session, VERBOSE + b"SUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n", step)
    after = session.accept(identity())
    assert wire(session, after) == [
        b"+OK\r\n+OK\r\n",
        Subscribe("1", "a", None),
        b"+OK\r\n",
        Publish("a", "", b"hi", None, False),
        b"PONG\r\n",
    ]


def test_verbose_ok_for_connect_alone() -> None:
    session = new_session()
    session.receive_data(VERBOSE)
    assert session.accept(identity()) == []
    assert session.data_to_send() == b"+OK\r\n"


def test_no_responders_without_headers_is_an_error() -> None:
    session = new_session()
    events = session.receive_data(b'CONNECT {"no_responders":true}\r\n')
    assert len(events) == 1 and isinstance(events[0], Close)
    assert session.data_to_send() == err(ERR_NO_RESPONDERS_NEEDS_HEADERS)
    assert session.state is State.CLOSED


def test_no_responders_with_headers_marks_requests() -> None:
    session = opened(b'CONNECT {"no_responders":true,"headers":true}\r\n')
    events = session.receive_data(b"PUB a r 0\r\n\r\nPUB a 0\r\n\r\n")
    assert events == [Publish("a", "r", b"", None, True), Publish("a", "", b"", None, False)]


# -- PING, PONG ----------------------------------------------------------------------


@STEPS
def test_ping_is_answered_with_pong(step: int) -> None:
    session = opened()
    assert run(session, b"PING\r\nPING\r\n", step) == [b"PONG\r\nPONG\r\n"]


def test_server_ping_counts_until_pong() -> None:
    session = opened()
    session.ping()
    session.ping()
    assert session.outstanding_pings == 2
    assert session.outstanding_output
    assert session.data_to_send() == b"PING\r\nPING\r\n"
    assert not session.outstanding_output
    assert session.receive_data(b"PONG\r\n") == []
    assert session.outstanding_pings == 0


# -- publish -----------------------------------------------------------------------


@STEPS
def test_publish_with_headers(step: int) -> None:
    session = opened()
    data = b"HPUB a.b r 18 20\r\nNATS/1.0\r\nX: 1\r\n\r\nhi\r\n"
    assert run(session, data, step) == [Publish("a.b", "r", b"hi", {"X": "1"}, False)]


@STEPS
@pytest.mark.parametrize("subject", [b"a.*", b"a.>", b"a..b", b".a", b"a."])
def test_invalid_publish_subject(step: int, subject: bytes) -> None:
    session = opened()
    data = b"PUB " + subject + b" 1\r\nx\r\nPUB ok 0\r\n\r\n"
    assert run(session, data, step) == [
        err("Invalid Publish Subject"),
        Publish("ok", "", b"", None, False),
    ]
    assert session.state is State.OPEN  # not fatal


@STEPS
def test_invalid_reply_subject(step: int) -> None:
    session = opened()
    assert run(session, b"PUB a r.* 0\r\n\r\n", step) == [err("Invalid Publish Subject")]


@STEPS
def test_publish_permission_violation_text(step: int) -> None:
    who = identity(publish=SubjectPermission(allow=("a.>",), deny=("a.secret",)))
    session = opened(who=who)
    data = b"PUB b 0\r\n\r\nPUB a.secret 0\r\n\r\nPUB a.x 0\r\n\r\n"
    assert run(session, data, step) == [
        b"-ERR 'Permissions Violation for Publish to \"b\"'\r\n"
        b"-ERR 'Permissions Violation for Publish to \"a.secret\"'\r\n",
        Publish("a.x", "", b"", None, False),
    ]


def test_permission_violation_texts() -> None:
    assert permissions_violation_publish("x.y") == 'Permissions Violation for Publish to "x.y"'
    assert (
        permissions_violation_subscribe("x.*", None)
        == 'Permissions Violation for Subscription to "x.*"'
    )
    assert (
        permissions_violation_subscribe("x.*", "q")
        == 'Permissions Violation for Subscription to "x.*" using queue "q"'
    )


@STEPS
def test_malformed_headers_close_the_connection(step: int) -> None:
    session = opened()
    events = feed(session, b"HPUB a 7 7\r\nHTTP/1\r\n\r\n", step)
    assert len(events) == 1 and isinstance(events[0], Close)
    assert session.data_to_send() == err("Unknown Protocol Operation")
    assert session.state is State.CLOSED


@STEPS
def test_parser_errors_close_the_connection(step: int) -> None:
    session = opened()
    events = feed(session, b"PUB a 2000\r\n", step)
    assert len(events) == 1 and isinstance(events[0], Close)
    assert session.data_to_send() == err("Maximum Payload Violation")


def test_operations_before_a_protocol_error_still_run() -> None:
    data = b"PUB a 2\r\nhi\r\nBOGUS\r\n"
    whole = wire(session := opened(), feed(session, data, WHOLE))
    bytewise = wire(session := opened(), feed(session, data, 1))
    assert bytewise[0] == Publish("a", "", b"hi", None, False)
    assert whole == bytewise


# -- subscribe ---------------------------------------------------------------------


@STEPS
def test_subscribe_and_unsubscribe(step: int) -> None:
    session = opened()
    data = b"SUB a.* 1\r\nSUB b q 2\r\nUNSUB 2 5\r\nUNSUB 1\r\nUNSUB 9\r\n"
    assert run(session, data, step) == [
        Subscribe("1", "a.*", None),
        Subscribe("2", "b", "q"),
        Unsubscribe("2", 5),
        Unsubscribe("1", None),
    ]
    assert set(session.subscriptions) == {"2"}  # 2 ends after its count, via the Bus


@STEPS
@pytest.mark.parametrize("line", [b"SUB a..b 1", b"SUB a.>.b 1", b"SUB .a 1", b"SUB a q> 1"])
def test_invalid_subject(step: int, line: bytes) -> None:
    session = opened()
    assert run(session, line + b"\r\n", step) == [err("Invalid Subject")]
    assert session.subscriptions == {}


@STEPS
def test_subscribe_permission_violation_text(step: int) -> None:
    who = identity(subscribe=SubjectPermission(allow=("a.>", "w q1"), deny=("a.secret",)))
    session = opened(who=who)
    data = b"SUB b 1\r\nSUB a.secret 2\r\nSUB w q2 3\r\nSUB w q1 4\r\n"
    assert run(session, data, step) == [
        b"-ERR 'Permissions Violation for Subscription to \"b\"'\r\n"
        b"-ERR 'Permissions Violation for Subscription to \"a.secret\"'\r\n"
        b'-ERR \'Permissions Violation for Subscription to "w" using queue "q2"\'\r\n',
        Subscribe("4", "w", "q1"),
    ]


@STEPS
def test_duplicate_sid_is_ignored(step: int) -> None:
    session = opened(VERBOSE)
    assert run(session, b"SUB a 1\r\nSUB b 1\r\n", step) == [
        b"+OK\r\n",
        Subscribe("1", "a", None),
        b"+OK\r\n",
    ]
    assert session.subscriptions["1"].subject == "a"


@STEPS
def test_maximum_subscriptions(step: int) -> None:
    session = opened(max_subscriptions=2)
    data = b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nUNSUB 1\r\nSUB c 4\r\n"
    assert run(session, data, step) == [
        Subscribe("1", "a", None),
        Subscribe("2", "b", None),
        err(ERR_MAX_SUBSCRIPTIONS),
        Unsubscribe("1", None),
        Subscribe("4", "c", None),
    ]
    assert ERR_MAX_SUBSCRIPTIONS == "maximum subscriptions exceeded"


def test_subscription_ended_by_the_bus() -> None:
    session = opened()
    session.receive_data(b"SUB a 1\r\n")
    session.subscription_ended("1")
    assert session.deliver("1", Msg("a", b"x")) is None


# -- answers in wire order -------------------------------------------------------------


@STEPS
def test_answers_keep_their_order_relative_to_publishes(step: int) -> None:
    session = opened(VERBOSE)
    data = b"PING\r\nPUB bad.* 0\r\n\r\nPUB a 1\r\nx\r\nPING\r\nPUB b 0\r\n\r\nPING\r\n"
    assert run(session, data, step) == [
        b"PONG\r\n" + err("Invalid Publish Subject") + b"+OK\r\n",
        Publish("a", "", b"x", None, False),
        b"PONG\r\n+OK\r\n",
        Publish("b", "", b"", None, False),
        b"PONG\r\n",
    ]


# -- delivery -----------------------------------------------------------------------


def test_deliver_msg_and_hmsg() -> None:
    session = opened(b'CONNECT {"headers":true}\r\n')
    session.receive_data(b"SUB a.* 7\r\n")
    assert session.deliver("7", Msg("a.b", b"hi")) == b"MSG a.b 7 2\r\nhi\r\n"
    assert session.deliver("7", Msg("a.b", b"hi", "r")) == b"MSG a.b 7 r 2\r\nhi\r\n"
    hmsg = session.deliver("7", Msg("a.b", b"hi", "", {"X": "1"}))
    assert hmsg == b"HMSG a.b 7 18 20\r\nNATS/1.0\r\nX: 1\r\n\r\nhi\r\n"
    status = session.deliver("7", Msg("a.b", b"", "", NO_RESPONDERS))
    assert status == b"HMSG a.b 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    assert session.deliver("8", Msg("a.b", b"hi")) is None  # unknown sid


def test_deliver_without_header_support_drops_headers() -> None:
    session = opened()
    session.receive_data(b"SUB a 1\r\n")
    assert session.deliver("1", Msg("a", b"hi", "", {"X": "1"})) == b"MSG a 1 2\r\nhi\r\n"


def test_no_delivery_once_closed() -> None:
    session = opened()
    session.receive_data(b"SUB a 1\r\n")
    session.fail("Stale Connection", "no pong")
    assert session.data_to_send() == err("Stale Connection")
    assert session.deliver("1", Msg("a", b"hi")) is None


def test_denied_subjects_are_not_delivered_to_wildcard_subscriptions() -> None:
    who = identity(subscribe=SubjectPermission(deny=("a.secret",)))
    session = opened(who=who)
    session.receive_data(b"SUB a.* 1\r\nSUB a.> 2\r\nSUB a.open 3\r\n")
    assert session.deliver("1", Msg("a.secret")) is None
    assert session.deliver("2", Msg("a.secret")) is None
    assert session.deliver("1", Msg("a.open")) == b"MSG a.open 1 0\r\n\r\n"
    assert session.deliver("3", Msg("a.open")) == b"MSG a.open 3 0\r\n\r\n"


def test_allow_responses_permits_replies_to_delivered_requests() -> None:
    who = identity(
        publish=SubjectPermission(allow=("svc.>",)),
        responses=ResponsePermission(max_msgs=1, expires=0),
    )
    session = opened(who=who)
    session.receive_data(b"SUB req 1\r\n")
    denied = err(permissions_violation_publish("_INBOX.r1"))
    assert run(session, b"PUB _INBOX.r1 0\r\n\r\n", WHOLE) == [denied]
    assert session.deliver("1", Msg("req", b"q", "_INBOX.r1")) is not None
    assert run(session, b"PUB _INBOX.r1 1\r\na\r\n", WHOLE) == [
        Publish("_INBOX.r1", "", b"a", None, False)
    ]
    # max_msgs 1: the permit is spent.
    assert run(session, b"PUB _INBOX.r1 0\r\n\r\n", WHOLE) == [denied]


def test_second_connect_updates_options_only() -> None:
    session = opened()
    events = session.receive_data(b'CONNECT {"verbose":true,"user":"other"}\r\n')
    assert events == []
    assert session.data_to_send() == b"+OK\r\n"
    assert session.state is State.OPEN
    assert session.verbose
