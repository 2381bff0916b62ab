"""Runs of plain PUBs: parsed, checked and encoded as one batch, with every answer unchanged.

A publisher pipelines ``PUB subject size`` lines; the server side groups
consecutive ones on one subject (no reply, no headers) into a ``PubRun``, the
session checks the run once and emits one ``PublishMany``, and a subscriber's
batch is written as the same ``MSG`` lines single deliveries would make.
Anything that needs a per-message answer (an error, ``+OK`` in verbose mode,
an ``allow_responses`` permit) keeps it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth.permissions import Permissions
from gateway.auth.users import Identity
from gateway.bus.api import Msg, MsgBatch
from gateway.nats.protocol import ClientParser, Pub, PubRun, Sub, encode_msg, encode_msgs
from gateway.nats.session import (
    Authenticate,
    Event,
    NatsSession,
    Publish,
    PublishMany,
    Send,
    Subscribe,
    permissions_violation_publish,
)
from gateway.options.model import Permissions as PermissionOptions
from gateway.options.model import SubjectPermission


def pubs(subject: str, *payloads: bytes) -> bytes:
    return b"".join(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(p), p) for p in payloads)


def test_a_grouping_parser_returns_runs_of_plain_pubs_on_one_subject() -> None:
    data = (
        pubs("a", b"1", b"2")
        + pubs("b", b"3")
        + b"PUB b r 1\r\n4\r\n"  # a reply: not part of a run
        + pubs("b", b"5", b"66")
        + b"HPUB b 12 13\r\nNATS/1.0\r\n\r\n7\r\n"
        + b"SUB b 1\r\n"
        + pubs("b", b"8")
    )
    ops = ClientParser(group=True).feed(data)
    assert ops == [
        PubRun("a", [b"1", b"2"]),
        PubRun("b", [b"3"]),
        Pub("b", "r", b"4"),
        PubRun("b", [b"5", b"66"]),
        Pub("b", None, b"7", b"NATS/1.0\r\n\r\n"),
        Sub("b", None, "1"),
        PubRun("b", [b"8"]),
    ]
    assert ClientParser().feed(data)[0] == Pub("a", None, b"1")  # not grouping: as before


def test_a_repeated_control_line_still_honours_a_lowered_max_payload() -> None:
    parser = ClientParser(max_payload=100, group=True)
    assert parser.feed(pubs("s", b"x" * 50)) == [PubRun("s", [b"x" * 50])]
    parser.max_payload = 10  # a user's JWT limit, applied after CONNECT
    with pytest.raises(Exception, match="over the limit"):
        parser.feed(pubs("s", b"x" * 50))


def test_a_run_split_across_reads_is_the_same_run_of_messages() -> None:
    data = pubs("s", *[b"%03d" % i for i in range(50)])
    parser = ClientParser(group=True)
    got: list[bytes] = []
    for i in range(0, len(data), 7):
        for op in parser.feed(data[i : i + 7]):
            assert isinstance(op, PubRun) and op.subject == "s"
            got.extend(op.payloads)
    assert got == [b"%03d" % i for i in range(50)]


def session_for(permissions: PermissionOptions | None = None, verbose: bool = False) -> NatsSession:
    session = NatsSession(auth_required=True, max_payload=1024, max_control_line=256)
    connect = b'CONNECT {"verbose":%s}\r\n' % (b"true" if verbose else b"false")
    (auth,) = session.receive_data(connect)
    assert isinstance(auth, Authenticate)
    who = Identity("u", permissions=Permissions(permissions or PermissionOptions()))
    session.accept(who)
    session.data_to_send()
    return session


def test_a_run_is_one_publish_many_event() -> None:
    session = session_for()
    events = session.receive_data(pubs("s.t", b"1", b"2", b"3"))
    assert events == [PublishMany("s.t", [b"1", b"2", b"3"])]
    assert session.data_to_send() == b""


def test_verbose_mode_answers_ok_per_message_of_a_run() -> None:
    session = session_for(verbose=True)
    events = session.receive_data(pubs("s", b"1", b"2", b"3"))
    # As for single PUBs, the answers go out ahead of the publish they answer.
    assert events == [Send(b"+OK\r\n" * 3), PublishMany("s", [b"1", b"2", b"3"])]


def test_a_refused_run_gets_one_error_per_message_as_single_pubs_do() -> None:
    deny = PermissionOptions(publish=SubjectPermission(allow=("ok",)))
    session = session_for(deny)
    events: list[Event] = session.receive_data(pubs("no", b"1", b"2"))
    assert events == []
    one = b"-ERR '" + permissions_violation_publish("no").encode() + b"'\r\n"
    assert session.data_to_send() == one * 2


def test_an_invalid_subject_in_a_run_is_refused_per_message() -> None:
    session = session_for()
    assert session.receive_data(pubs("a..b", b"1", b"2")) == []
    assert session.data_to_send() == b"-ERR 'Invalid Publish Subject'\r\n" * 2


def test_a_single_pub_is_still_a_publish_event() -> None:
    session = session_for()
    assert session.receive_data(pubs("one", b"x")) == [Publish("one", "", b"x", None, False)]


def test_a_batch_is_delivered_as_the_msg_lines_single_deliveries_make() -> None:
    session = session_for()
    events = session.receive_data(b"SUB s.* 7\r\n")
    assert any(isinstance(e, Subscribe) for e in events)
    batch = MsgBatch("s.x", [b"a", b"bb", b""])
    assert session.deliver_batch("7", batch) == b"".join(
        encode_msg("s.x", "7", None, p) for p in batch.payloads
    )
    assert session.deliver_batch("8", batch) is None  # no such subscription


def test_a_wildcard_subscription_never_delivers_a_denied_batch() -> None:
    perms = PermissionOptions(subscribe=SubjectPermission(allow=("s.*",), deny=("s.secret",)))
    session = session_for(perms)
    session.receive_data(b"SUB s.* 1\r\n")
    assert session.deliver_batch("1", MsgBatch("s.secret", [b"x", b"y"])) is None
    assert session.deliver_batch("1", MsgBatch("s.open", [b"x"])) is not None


@pytest.mark.parametrize("payloads", [[b"x" * 5] * 4, [b"", b"a", b"bcd" * 100]])
def test_encode_msgs_is_encode_msg_for_each(payloads: list[bytes]) -> None:
    expected = b"".join(encode_msg("sub.j", "42", None, p) for p in payloads)
    assert encode_msgs("sub.j", "42", payloads) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), max_size=12), st.booleans())
def test_any_chunking_parses_to_the_same_operations(cuts: list[int], group: bool) -> None:
    stream = (
        pubs("a", b"x" * 300, b"y" * 10)
        + b"PING\r\nSUB a.> 9\r\n"
        + b"PUB b r 3\r\nabc\r\n"
        + b"HPUB h 12 15\r\nNATS/1.0\r\n\r\nxyz\r\n"
        + pubs("a", *(b"%d" % i * 50 for i in range(5)))
    )
    whole = ClientParser(group=group).feed(stream)
    parser = ClientParser(group=group)
    got = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        got += parser.feed(stream[pos : pos + cut])
        pos += cut
    got += parser.feed(stream[pos:])

    def flat(ops: list[object]) -> list[object]:
        out: list[object] = []
        for op in ops:
            out += (
                [Pub(op.subject, None, p) for p in op.payloads] if isinstance(op, PubRun) else [op]
            )
        return out

    assert flat(got) == flat(whole)


def test_an_unsubscribed_sid_still_delivers_what_was_published_before_and_can_be_reused() -> None:
    session = session_for()
    events = session.receive_data(b"SUB a 1\r\nPUB a 1\r\nx\r\nUNSUB 1\r\nSUB b 1\r\n")
    assert [type(e).__name__ for e in events] == [
        "Subscribe",
        "Publish",
        "Unsubscribe",
        "Subscribe",
    ]
    # The PUB came before the UNSUB: its delivery, made later, still goes out.
    assert session.deliver("1", Msg("a", b"x")) == b"MSG a 1 1\r\nx\r\n"
    session.unsubscribed("1")  # the driver carried the UNSUB out
    assert session.deliver("1", Msg("b", b"y")) == b"MSG b 1 1\r\ny\r\n"  # the new SUB on sid 1
