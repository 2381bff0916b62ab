"""Topic <-> subject mapping: every row of the table in gateway/mqtt/topics.py, both ways.

Rows from ../shared/reference/nats-mqtt.md section 1.3 keep the NATS server's
subjects; the rows marked "jetgate" are where we differ on purpose.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.errors import MQTTError
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.topics import (
    excludes_dollar_topics,
    filter_to_subject,
    filter_to_subjects,
    is_dollar_subject,
    is_internal_subject,
    subject_to_filter,
    subject_to_topic,
    topic_to_subject,
)
from tests.unit.mqtt.strategies import topic_filters, topic_names

TOPICS = [
    ("foo", "foo"),
    ("foo/bar", "foo.bar"),
    ("/foo", "/.foo"),
    ("foo/", "foo./"),
    ("/", "/./"),
    ("//", "/././"),
    ("foo//bar", "foo./.bar"),
    ("a/b/c/", "a.b.c./"),
    (".", "//"),
    ("foo.bar", "foo//bar"),
    ("a..b", "a////b"),
    ("foo.bar/baz", "foo//bar.baz"),
    ("spBv1.0/grp/NDATA/n1", "spBv1//0.grp.NDATA.n1"),
    ("ü/ñ", "ü.ñ"),
    ("$SYS/x", "$SYS.x"),
    ("$share/g/t", "$share.g.t"),
    ("foo/$bar", "foo.$bar"),
    ("Foo/Bar", "Foo/Bar".replace("/", ".")),
    # jetgate: spaces and control characters, refused by the NATS server, are escaped.
    ("zigbee2mqtt/Living Room", "zigbee2mqtt.Living/20Room"),
    ("zigbee2mqtt/ lamp /set", "zigbee2mqtt./20lamp/20.set"),
    ("a\tb", "a/09b"),
    ("a\x7fb", "a/7Fb"),
    # jetgate: '*' and '>' typed in a topic never become NATS wildcards.
    ("foo/*", "foo./2A"),
    ("foo/>", "foo./3E"),
    ("a*b/c>", "a/2Ab.c/3E"),
    ("x/.*", "x.///2A"),
]

FILTERS = [
    ("+", ("*",)),
    ("#", (">",)),
    ("foo/+/bar", ("foo.*.bar",)),
    ("foo/#", ("foo.>", "foo")),
    ("foo//#", ("foo./.>", "foo./")),
    ("/#", ("/.>", "/")),
    ("+/+", ("*.*",)),
    ("spBv1.0/+/NDATA/#", ("spBv1//0.*.NDATA.>", "spBv1//0.*.NDATA")),
    # jetgate: a typed '*' or '>' filters literally, unlike the NATS server.
    ("foo/*", ("foo./2A",)),
    ("foo/>", ("foo./3E",)),
    ("$MQTT/#", ("$MQTT.>", "$MQTT")),
]

# Subjects no MQTT topic maps to: never sent to a client, and never as "".
UNMAPPABLE = [
    "",
    "/",
    "foo/bar",
    "foo./x",
    "x/",
    "a..b",
    ".a",
    "a.",
    "a.+",
    "a.#",
    "foo*",
    "a.*",
    "a.>",
    "/41",
    "a./2a",
    "a/3",
    "a/ZZ",
    "a b",
    "///",
]


@pytest.mark.parametrize(("topic", "subject"), TOPICS)
def test_topic_to_subject(topic: str, subject: str) -> None:
    assert topic_to_subject(topic) == subject


@pytest.mark.parametrize(("topic", "subject"), TOPICS)
def test_subject_to_topic(topic: str, subject: str) -> None:
    assert subject_to_topic(subject) == topic


@pytest.mark.parametrize(("topic_filter", "subjects"), FILTERS)
def test_filter_to_subjects(topic_filter: str, subjects: tuple[str, ...]) -> None:
    assert filter_to_subjects(topic_filter) == subjects
    assert filter_to_subject(topic_filter) == subjects[0]


@pytest.mark.parametrize(("topic_filter", "subjects"), FILTERS)
def test_subject_to_filter(topic_filter: str, subjects: tuple[str, ...]) -> None:
    assert subject_to_filter(subjects[0]) == topic_filter


@pytest.mark.parametrize("subject", UNMAPPABLE)
def test_unmappable_subjects(subject: str) -> None:
    assert subject_to_topic(subject) is None


@pytest.mark.parametrize("subject", ["", "a..b", "a/b", "a.>.b"])
def test_unmappable_filters(subject: str) -> None:
    assert subject_to_filter(subject) is None


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "+", "foo+", "a\x00b"])
def test_invalid_topic_names_are_refused(topic: str) -> None:
    with pytest.raises(MQTTError):
        topic_to_subject(topic)


@pytest.mark.parametrize("topic_filter", ["", "foo+", "a/b#", "#/foo", "a/#/b", "+a"])
def test_invalid_filters_are_refused(topic_filter: str) -> None:
    # The NATS server accepts foo+ and a/b# as literals; MQTT forbids them [MQTT-4.7.1-1/2].
    with pytest.raises(MQTTError) as info:
        filter_to_subject(topic_filter)
    assert info.value.reason_code == ReasonCode.MALFORMED_PACKET


def test_dollar_rules() -> None:
    # [MQTT-4.7.2-1]
    assert excludes_dollar_topics("#")
    assert excludes_dollar_topics("+/x")
    assert not excludes_dollar_topics("$SYS/#")
    assert not excludes_dollar_topics("a/#")
    assert is_dollar_subject(topic_to_subject("$SYS/x"))
    assert not is_dollar_subject(topic_to_subject("SYS/x"))


def test_internal_namespace() -> None:
    assert all(is_internal_subject(s) for s in filter_to_subjects("$MQTT/sub/#")[:1])
    assert is_internal_subject(topic_to_subject("$MQTT/msgs/x"))
    assert not is_internal_subject(topic_to_subject("$MQTT"))
    assert not is_internal_subject(topic_to_subject("MQTT/x"))


_TOKEN_OK = re.compile(r"[^\x00-\x20\x7f*>]+")  # NATS splits on ASCII whitespace


@settings(max_examples=300, deadline=None)
@given(
    topic_names
    | st.text(st.sampled_from("ab./ *>\t$"), min_size=1, max_size=12).filter(
        lambda t: "+" not in t and "#" not in t
    )
)
def test_every_topic_round_trips_to_a_literal_subject(topic: str) -> None:
    subject = topic_to_subject(topic)
    assert subject_to_topic(subject) == topic
    for token in subject.split("."):
        assert _TOKEN_OK.fullmatch(token), (topic, subject)


@settings(max_examples=300, deadline=None)
@given(topic_filters())
def test_every_filter_round_trips(topic_filter: str) -> None:
    subject = filter_to_subject(topic_filter)
    assert subject_to_filter(subject) == topic_filter
    levels = topic_filter.split("/")
    for level, token in zip(levels, subject.split("."), strict=True):
        assert (token == "*") == (level == "+")
        assert (token == ">") == (level == "#")


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("ab./ *>+#\t$2AF3E"), max_size=12) | st.text(max_size=12))
def test_subject_to_topic_is_the_exact_inverse(subject: str) -> None:
    topic = subject_to_topic(subject)
    if topic is not None:
        assert topic
        assert topic_to_subject(topic) == subject
