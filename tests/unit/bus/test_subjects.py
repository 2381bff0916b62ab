"""NATS subject rules: validation, matching and overlap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bus.subjects import (
    InvalidSubject,
    is_literal,
    subject_matches,
    subjects_overlap,
    validate_subject,
)
from gateway.bus.sublist import Sublist


@pytest.mark.parametrize("subject", ["a", "a.b.c", "$JS.ACK.x", "a*b", "foo>", "ü.ñ"])
def test_valid_literal_subjects(subject: str) -> None:
    validate_subject(subject)


@pytest.mark.parametrize("subject", ["", ".a", "a.", "a..b", "a b", "a\tb", "a.*", "a.>", "*", ">"])
def test_invalid_literal_subjects(subject: str) -> None:
    with pytest.raises(InvalidSubject):
        validate_subject(subject)


@pytest.mark.parametrize("filter_", ["*", ">", "a.*.c", "a.>", "*.>"])
def test_valid_filters(filter_: str) -> None:
    validate_subject(filter_, wildcards=True)
    assert not is_literal(filter_)


@pytest.mark.parametrize("filter_", ["a.>.b", ">.a", "a..*"])
def test_invalid_filters(filter_: str) -> None:
    with pytest.raises(InvalidSubject):
        validate_subject(filter_, wildcards=True)


@pytest.mark.parametrize(
    ("filter_", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        (">", "a", True),
        ("a*", "ab", False),  # '*' inside a token is literal
        ("a.b", "a.c", False),
    ],
)
def test_matching(filter_: str, subject: str, expected: bool) -> None:
    assert subject_matches(filter_, subject) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.*", "a.>", True),
        ("a.b", "a.c", False),
        ("a.>", "a", False),
        ("*.b", "a.*", True),
        ("a.*.c", "a.b.d", False),
        (">", "x.y", True),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert subjects_overlap(a, b) is expected
    assert subjects_overlap(b, a) is expected


tokens = st.sampled_from(["a", "b", "c"])
literals = st.lists(tokens, min_size=1, max_size=4).map(".".join)
filters = st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=4).flatmap(
    lambda ts: st.sampled_from([".".join(ts), ".".join([*ts, ">"])])
)


@given(st.lists(filters, max_size=8), literals)
def test_sublist_agrees_with_subject_matches(registered: list[str], subject: str) -> None:
    sl: Sublist[int] = Sublist()
    for i, f in enumerate(registered):
        sl.insert(f, i)
    expected = sorted(i for i, f in enumerate(registered) if subject_matches(f, subject))
    assert sorted(sl.match(subject)) == expected
    for i, f in enumerate(registered):
        assert sl.remove(f, i)
    assert sl.match(subject) == [] and len(sl) == 0
