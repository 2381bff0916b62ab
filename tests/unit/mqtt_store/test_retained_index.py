"""The retained index: subject tree, sequence ordering, $ rule, caching. No log, no loop."""

from __future__ import annotations

import time

from gateway.mqtt.store.records import RetainedMessage
from gateway.mqtt.store.retained import RetainedIndex


def _msg(subject: str, payload: bytes = b"v") -> RetainedMessage:
    return RetainedMessage(subject.replace(".", "/"), subject, payload, 1, {}, 0.0)


def _subjects(index: RetainedIndex, *filters: str) -> list[str]:
    return [e.message.subject for e in index.match(filters)]


def _index(*subjects: str) -> RetainedIndex:
    index = RetainedIndex()
    for seq, s in enumerate(subjects, 1):
        index.apply(seq, s, _msg(s))
    return index


def test_literal_star_and_full_wildcards_match_like_nats() -> None:
    index = _index("a", "a.b", "a.b.c", "a.c", "b.b")
    assert _subjects(index, "a.b") == ["a.b"]
    assert _subjects(index, "a.*") == ["a.b", "a.c"]
    assert _subjects(index, "*.b") == ["a.b", "b.b"]
    assert _subjects(index, "a.>") == ["a.b", "a.b.c", "a.c"]
    assert _subjects(index, ">") == ["a", "a.b", "a.b.c", "a.c", "b.b"]
    assert _subjects(index, "x.>", "a.b.c.d") == []


def test_each_message_once_in_subject_order_across_filters() -> None:
    index = _index("z", "a.b", "m")
    assert _subjects(index, "a.>", "a.b", ">", "a.*") == ["a.b", "m", "z"]


def test_leading_wildcard_skips_dollar_subjects() -> None:
    # [MQTT-4.7.2-1]: "#" and "+/..." do not match "$SYS/...".
    index = _index("$SYS.x", "a.x")
    assert _subjects(index, ">") == ["a.x"]
    assert _subjects(index, "*.x") == ["a.x"]
    assert _subjects(index, "$SYS.>") == ["$SYS.x"]
    assert _subjects(index, "$SYS.*") == ["$SYS.x"]


def test_older_sequence_is_ignored_and_a_clear_is_remembered() -> None:
    index = RetainedIndex()
    assert index.apply(5, "a", _msg("a", b"new"))
    assert not index.apply(3, "a", _msg("a", b"old"))
    assert index.match(["a"])[0].message.payload == b"new"
    assert index.apply(7, "a", None)
    assert not index.apply(6, "a", _msg("a", b"older than the clear"))
    assert len(index) == 0 and index.match([">"]) == []
    assert index.seq_of("a") == 7


def test_clearing_prunes_the_branch_but_keeps_neighbours() -> None:
    index = _index("a.b.c", "a.b")
    index.apply(10, "a.b.c", None)
    assert _subjects(index, ">") == ["a.b"]
    index.apply(11, "a.b", None)
    assert _subjects(index, ">") == []
    assert len(index) == 0
    index.apply(12, "nothing.here", None)  # clearing a missing subject is fine
    assert len(index) == 0


def test_large_payloads_are_not_cached() -> None:
    index = RetainedIndex(max_cached_payload=4)
    index.apply(1, "small", _msg("small", b"1234"))
    index.apply(2, "big", _msg("big", b"12345"))
    (small,) = index.match(["small"])
    (big,) = index.match(["big"])
    assert small.cached and small.message.payload == b"1234"
    assert not big.cached and big.message.payload == b""


def test_narrow_match_among_many_subjects_is_fast() -> None:
    index = RetainedIndex()
    for i in range(50_000):
        index.apply(i + 1, f"site.{i % 100}.dev.{i}", _msg(f"site.{i % 100}.dev.{i}"))
    assert len(index) == 50_000
    start = time.perf_counter()
    for _ in range(100):
        found = index.match(["site.7.dev.*"])
    elapsed = time.perf_counter() - start
    assert len(found) == 500
    # 100 lookups of 500 results each; a scan would visit 5,000,000 subjects.
    assert elapsed < 1.0
