"""MQTT topic names and filters <-> NATS subjects.

The mapping is the NATS server's (``../shared/reference/nats-mqtt.md``
section 1), read level by level, so a subject written by nats-server's MQTT
support and one written by jetgate are the same. Where the NATS server is
unsafe or refuses real topics, jetgate extends it, never changing a subject
the NATS server would produce for a topic it accepts.

MQTT -> NATS, per level (levels joined with ``.``):

=================================  =============  ===============================
MQTT level                         NATS token     why
=================================  =============  ===============================
``foo``                            ``foo``        unchanged, case kept, UTF-8 kept
(empty: leading, trailing, ``//``) ``/``          NATS has no empty tokens
``.`` inside a level               ``//``         ``spBv1.0`` -> ``spBv1//0``
``+`` (filter, whole level)        ``*``
``#`` (filter, last level)         ``>``          ``a/#`` gives ``a.>`` **and** ``a``
``*`` / ``>`` inside a level       ``/2A`` / ``/3E``  jetgate: never a NATS wildcard
space, U+0001-U+001F, U+007F       ``/20``, ``/09``, ...  jetgate: NATS refuses them
=================================  =============  ===============================

The escapes ``/XX`` (two upper-case hex digits, only for the characters in
the last two rows) are possible because ``/`` never occurs inside an MQTT
level, and the NATS server never produces ``/`` followed by a hex digit, so
they cannot collide with its own ``//`` and ``/`` forms. The NATS server
passes ``*`` and ``>`` through (``foo/*`` filters like ``foo/+``, a PUBLISH to
``foo/>`` lands on a wildcard subject); jetgate does not.

NATS -> MQTT is the exact inverse, and only of canonical forms: token ``/`` is
an empty level, ``//`` is ``.``, ``/XX`` one of the escaped characters;
``.`` separates levels. A subject that no MQTT topic maps to (a stray ``/``,
``/41``, a raw ``*``, ``>``, ``+`` or ``#`` in a token, an empty token, an
empty subject) cannot be mapped back: :func:`subject_to_topic` returns
``None`` and the message is not sent, rather than sent under a mangled or
empty topic as the NATS server does (``foo/bar`` -> ``foobar``, ``/`` -> empty).

Examples (both directions; the tests check every row):

=========================  ==========================  =====
MQTT                       NATS                        kind
=========================  ==========================  =====
``foo/bar``                ``foo.bar``                 topic
``/foo``                   ``/.foo``                   topic
``foo/``                   ``foo./``                   topic
``/``                      ``/./``                     topic
``foo//bar``               ``foo./.bar``               topic
``foo.bar/baz``            ``foo//bar.baz``            topic
``spBv1.0/grp/NDATA/n1``   ``spBv1//0.grp.NDATA.n1``   topic
``zigbee2mqtt/Living Room``  ``zigbee2mqtt.Living/20Room``  topic
``foo/*``                  ``foo./2A``                 topic
``$SYS/x``                 ``$SYS.x``                  topic
``foo/+/bar``              ``foo.*.bar``               filter
``foo/#``                  ``foo.>`` and ``foo``       filter
``#``                      ``>``                       filter
=========================  ==========================  =====

``$`` topics: a filter whose first level is a wildcard must not match a
topic starting with ``$`` [MQTT-4.7.2-1]; :func:`excludes_dollar_topics` and
:func:`is_dollar_subject` give the session what it needs to apply that rule
to live and retained messages alike. :func:`is_internal_subject` marks
jetgate's own ``$MQTT.`` namespace, closed to client publishes and
subscriptions.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.mqtt.filters import validate_topic_filter, validate_topic_name

INTERNAL_PREFIX = "$MQTT."

_ESCAPED = [chr(c) for c in (*range(0x01, 0x21), 0x2A, 0x3E, 0x7F)]
_ESCAPE_TABLE = {ord(c): f"/{ord(c):02X}" for c in _ESCAPED}
_ESCAPE_TABLE[ord(".")] = "//"
_UNESCAPE = {f"{ord(c):02X}": c for c in _ESCAPED}

# A topic needing more than "/" -> ".": special characters or empty levels.
_TOPIC_SPECIAL = re.compile(r"[.*>\x00-\x20\x7f]|//|^/|/$")
# A subject needing more than "." -> "/", or not mappable at all.
_SUBJECT_SPECIAL = re.compile(r"[/*>+#\x00-\x20\x7f]|\.\.|^\.|\.$|^$")
_ESCAPE_SEQ = re.compile(r"/(/|[0-9A-F]{2})")


def _encode_level(level: str) -> str:
    return level.translate(_ESCAPE_TABLE) if level else "/"


@lru_cache(maxsize=4096)
def topic_to_subject(topic: str) -> str:
    """The NATS subject of an MQTT topic name; raises MQTTError for an invalid name."""
    validate_topic_name(topic)
    if _TOPIC_SPECIAL.search(topic) is None:
        return topic.replace("/", ".")
    return ".".join(_encode_level(level) for level in topic.split("/"))


def filter_to_subject(topic_filter: str) -> str:
    """The NATS subject (wildcards ``*``/``>``) of a non-shared MQTT topic filter."""
    validate_topic_filter(topic_filter)
    return ".".join(
        "*" if level == "+" else ">" if level == "#" else _encode_level(level)
        for level in topic_filter.split("/")
    )


def filter_to_subjects(topic_filter: str) -> tuple[str, ...]:
    """The NATS subjects to subscribe for a filter: ``a/#`` gives ``a.>`` and ``a``.

    [MQTT-4.7.1-2]: ``sport/#`` also matches ``sport``; ``#`` alone already
    matches every subject, so it gives ``>`` only.
    """
    subject = filter_to_subject(topic_filter)
    if subject.endswith(".>"):
        return subject, subject[:-2]
    return (subject,)


def _decode_token(token: str) -> str | None:
    if token == "/":
        return ""
    if not token:
        return None
    parts = _ESCAPE_SEQ.split(token)
    # split() alternates literal text and escape bodies; literal text must
    # hold no '/' nor any character the forward mapping escapes.
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("." if part == "/" else _UNESCAPE.get(part, "\x00"))
            if out[-1] == "\x00":
                return None
        else:
            if part and _SUBJECT_SPECIAL.search(part) is not None:
                return None  # a stray '/', a raw wildcard, '+', '#' or control
            out.append(part)
    return "".join(out)


@lru_cache(maxsize=4096)
def subject_to_topic(subject: str) -> str | None:
    """The MQTT topic name of a NATS subject, or None if no topic maps to it."""
    if _SUBJECT_SPECIAL.search(subject) is None:
        topic = subject.replace(".", "/")
    else:
        levels = [_decode_token(token) for token in subject.split(".")]
        if any(level is None for level in levels):
            return None
        topic = "/".join(level for level in levels if level is not None)
    if not topic or (len(topic) > 16383 and len(topic.encode()) > 0xFFFF):
        return None
    return topic


def subject_to_filter(subject: str) -> str | None:
    """The MQTT topic filter of a NATS subscription subject, or None if none maps to it."""
    levels: list[str] = []
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if token == "*":
            levels.append("+")
        elif token == ">" and i == len(tokens) - 1:
            levels.append("#")
        else:
            level = _decode_token(token)
            if level is None:
                return None
            levels.append(level)
    topic_filter = "/".join(levels)
    if not topic_filter or (len(topic_filter) > 16383 and len(topic_filter.encode()) > 0xFFFF):
        return None
    return topic_filter


def excludes_dollar_topics(topic_filter: str) -> bool:
    """True if the filter starts with a wildcard level, so must not match ``$`` topics.

    [MQTT-4.7.2-1]: ``#``, ``+`` and ``+/...`` never match ``$SYS/...``.
    """
    return topic_filter[:1] in ("+", "#")


def is_dollar_subject(subject: str) -> bool:
    """True if the subject is the image of a ``$`` topic."""
    return subject.startswith("$")


def is_internal_subject(subject: str) -> bool:
    """True if the subject is inside jetgate's ``$MQTT.`` namespace (section 1.5)."""
    return subject.startswith(INTERNAL_PREFIX)
