"""Packet identifiers and the in-flight windows (``gateway.mqtt.inflight``), no event loop.

Statements: [MQTT-2.2.1-3] (an identifier is free again only when its
exchange ends, and is never 0), [MQTT-3.3.4-9] (the server's window is the
client's Receive Maximum), [MQTT-4.3.2] / [MQTT-4.3.3] (QoS 1 and QoS 2
sender and receiver exchanges).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.inflight import MAX_PACKET_ID, Inbound, NoFreePacketId, Outbound, PacketIds

# -- PacketIds -----------------------------------------------------------------


def test_mqtt_2_2_1_identifiers_start_at_1_and_count_up() -> None:
    ids = PacketIds()
    assert [ids.allocate() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert all(pid in ids for pid in range(1, 6))
    assert 6 not in ids


def test_mqtt_2_2_1_3_a_released_identifier_is_not_reused_at_once() -> None:
    ids = PacketIds()
    first = ids.allocate()
    ids.release(first)
    assert first not in ids
    assert ids.allocate() == first + 1


def test_mqtt_2_2_1_3_identifiers_in_use_are_skipped() -> None:
    ids = PacketIds()
    ids.reserve(2)
    ids.reserve(3)
    assert [ids.allocate(), ids.allocate()] == [1, 4]


def test_mqtt_2_2_1_identifiers_wrap_after_65535_and_are_never_0() -> None:
    ids = PacketIds()
    for _ in range(MAX_PACKET_ID - 1):
        ids.release(ids.allocate())
    assert ids.allocate() == MAX_PACKET_ID
    # 1 is free again: the counter wraps to it, never to 0.
    assert ids.allocate() == 1
    assert 0 not in ids


def test_mqtt_2_2_1_wrapping_skips_identifiers_still_in_use() -> None:
    ids = PacketIds()
    kept = ids.allocate()  # 1 stays in use through the wrap
    for _ in range(MAX_PACKET_ID - 1):
        ids.release(ids.allocate())
    assert ids.allocate() == 2
    assert kept in ids


def test_no_free_identifier_when_all_65535_are_in_use() -> None:
    ids = PacketIds()
    allocated = [ids.allocate() for _ in range(MAX_PACKET_ID)]
    assert sorted(allocated) == list(range(1, MAX_PACKET_ID + 1))
    with pytest.raises(NoFreePacketId):
        ids.allocate()
    ids.release(40000)
    assert ids.allocate() == 40000
    with pytest.raises(NoFreePacketId):
        ids.allocate()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50)), max_size=120))
def test_mqtt_2_2_1_3_allocated_identifiers_are_unique_among_those_in_use(
    steps: list[tuple[bool, int]],
) -> None:
    ids = PacketIds()
    live: list[int] = []
    for allocate, index in steps:
        if allocate or not live:
            pid = ids.allocate()
            assert 1 <= pid <= MAX_PACKET_ID
            assert pid not in live
            live.append(pid)
        else:
            ids.release(live.pop(index % len(live)))
        assert all(pid in ids for pid in live)


# -- Outbound ------------------------------------------------------------------


def test_mqtt_3_3_4_9_window_is_full_at_receive_maximum() -> None:
    out: Outbound[str] = Outbound(receive_maximum=2)
    assert not out.full
    out.send(1, "a")
    assert not out.full
    out.send(2, "b")
    assert out.full
    assert len(out) == 2


def test_mqtt_3_3_4_9_puback_frees_a_place_in_the_window() -> None:
    out: Outbound[str] = Outbound(receive_maximum=1)
    pid = out.send(1, "a")
    assert out.full
    assert out.puback(pid) == "a"
    assert not out.full
    assert len(out) == 0
    assert pid not in out.ids


def test_mqtt_3_3_4_9_a_qos2_message_holds_its_place_until_pubcomp() -> None:
    out: Outbound[str] = Outbound(receive_maximum=1)
    pid = out.send(2, "q2")
    assert out.pubrec(pid) == "q2"
    assert out.full  # PUBREL sent, PUBCOMP awaited: still in flight
    assert pid in out.ids
    assert out.pubcomp(pid) is True
    assert not out.full
    assert pid not in out.ids


def test_mqtt_4_3_2_unknown_puback_is_ignored() -> None:
    out: Outbound[str] = Outbound()
    pid = out.send(1, "a")
    assert out.puback(pid + 1) is None
    assert out.puback(pid) == "a"
    assert out.puback(pid) is None  # a second PUBACK: the exchange is over


def test_mqtt_4_3_acknowledgements_of_the_wrong_phase_are_ignored() -> None:
    out: Outbound[str] = Outbound()
    q1 = out.send(1, "one")
    q2 = out.send(2, "two")
    assert out.pubrec(q1) is None  # QoS 1 has no PUBREC
    assert out.pubcomp(q1) is False
    assert out.puback(q2) is None  # QoS 2 has no PUBACK
    assert out.pubcomp(q2) is False  # PUBCOMP before PUBREC
    assert out.unacknowledged() == [(q1, "one"), (q2, "two")]
    assert out.pubrec(q2) == "two"
    assert out.pubrec(q2) is None  # a second PUBREC
    assert out.puback(q2) is None
    assert out.pending_pubrel() == [q2]
    assert out.pubcomp(q2) is True
    assert out.pubcomp(q2) is False
    assert len(out) == 1


def test_unacknowledged_lists_publishes_in_send_order_without_released_ones() -> None:
    out: Outbound[str] = Outbound()
    a = out.send(1, "a")
    b = out.send(2, "b")
    c = out.send(2, "c")
    d = out.send(1, "d")
    out.pubrec(b)
    assert out.unacknowledged() == [(a, "a"), (c, "c"), (d, "d")]
    out.pubrec(c)
    assert out.pending_pubrel() == [b, c]
    out.puback(a)
    assert out.unacknowledged() == [(d, "d")]


def test_mqtt_4_4_restored_pubrel_is_pending_and_reserves_its_identifier() -> None:
    out: Outbound[str] = Outbound(receive_maximum=2)
    out.restore_pubrel(1)
    out.restore_pubrel(7)
    assert out.pending_pubrel() == [1, 7]
    assert out.unacknowledged() == []  # nothing to resend as PUBLISH
    assert out.full  # restored exchanges count against the window
    assert out.puback(1) is None
    assert out.pubrec(1) is None
    assert out.pubcomp(1) is True
    pid = out.send(1, "new")
    assert pid != 7  # 7 still awaits its PUBCOMP
    assert 7 in out.ids
    assert out.pending_pubrel() == [7]


def test_restored_identifier_is_skipped_by_the_allocator() -> None:
    out: Outbound[str] = Outbound()
    out.restore_pubrel(1)
    out.restore_pubrel(2)
    assert out.send(1, "x") == 3


def test_clear_forgets_the_window_and_the_identifiers() -> None:
    out: Outbound[str] = Outbound(receive_maximum=1)
    pid = out.send(1, "a")
    out.clear()
    assert len(out) == 0
    assert not out.full
    assert pid not in out.ids
    assert out.unacknowledged() == []
    assert out.puback(pid) is None


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["send1", "send2", "puback", "pubrec", "pubcomp"]), st.integers()
        ),
        max_size=80,
    )
)
def test_outbound_matches_a_model_of_the_qos_exchanges(steps: list[tuple[str, int]]) -> None:
    out: Outbound[int] = Outbound(receive_maximum=10)
    model: dict[int, tuple[str, int]] = {}  # pid -> (phase, token)
    token = 0
    for op, pick in steps:
        if op in ("send1", "send2"):
            if out.full:
                assert len(model) >= 10
                continue
            token += 1
            pid = out.send(1 if op == "send1" else 2, token)
            assert pid not in model
            model[pid] = ("puback" if op == "send1" else "pubrec", token)
            continue
        pid = pick % 12 + 1 if not model or pick % 3 == 0 else sorted(model)[pick % len(model)]
        entry = model.get(pid)
        if op == "puback":
            expected = entry[1] if entry and entry[0] == "puback" else None
            assert out.puback(pid) == expected
            if expected is not None:
                del model[pid]
        elif op == "pubrec":
            expected = entry[1] if entry and entry[0] == "pubrec" else None
            assert out.pubrec(pid) == expected
            if entry is not None and expected is not None:
                model[pid] = ("pubcomp", entry[1])
        else:
            ended = entry is not None and entry[0] == "pubcomp"
            assert out.pubcomp(pid) is ended
            if ended:
                del model[pid]
        assert len(out) == len(model)
        assert out.full is (len(model) >= 10)
        assert all(p in out.ids for p in model)
    assert out.pending_pubrel() == [p for p, (ph, _) in model.items() if ph == "pubcomp"]
    assert out.unacknowledged() == [(p, t) for p, (ph, t) in model.items() if ph != "pubcomp"]


# -- Inbound -------------------------------------------------------------------


def test_mqtt_4_3_3_10_a_qos2_publish_awaiting_pubrel_is_a_duplicate() -> None:
    inbound = Inbound(receive_maximum=10)
    assert inbound.qos2_received(5) is True
    assert inbound.qos2_received(5) is False
    assert inbound.qos2_received(6) is True
    assert inbound.awaiting_pubrel == 2


def test_mqtt_4_3_3_11_after_pubrel_the_identifier_is_a_new_message() -> None:
    inbound = Inbound(receive_maximum=10)
    inbound.qos2_received(5)
    assert inbound.pubrel(5) is True
    assert inbound.awaiting_pubrel == 0
    assert inbound.pubrel(5) is False  # a second PUBREL: nothing awaited it
    assert inbound.qos2_received(5) is True


def test_pubrel_for_an_unknown_identifier_is_reported() -> None:
    inbound = Inbound(receive_maximum=10)
    assert inbound.pubrel(9) is False
    assert inbound.awaiting_pubrel == 0
