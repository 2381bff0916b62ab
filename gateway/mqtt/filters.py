"""MQTT topic name and topic filter syntax (MQTT 5.0 section 4.7, 4.8.2; 3.1.1 section 4.7).

Checks shared by the codec (every PUBLISH, Will, SUBSCRIBE and UNSUBSCRIBE)
and the topic mapping. Strings reaching here are already valid MQTT UTF-8
(no U+0000, no surrogates; see :mod:`gateway.mqtt.wire`).

* A topic name is non-empty, at most 65535 bytes, and holds no ``+`` or ``#``
  [MQTT-4.7.3-1], [MQTT-4.7.0-1], [MQTT-3.3.2-2].
* In a topic filter, ``+`` fills a whole level [MQTT-4.7.1-2] and ``#`` is a
  whole level and the last one [MQTT-4.7.1-1].
* MQTT 5.0 shared subscriptions: ``$share/{ShareName}/{filter}``, the share
  name non-empty without ``/``, ``+`` or ``#``, and a filter after it
  [MQTT-4.8.2-1], [MQTT-4.8.2-2]. In 3.1.1 ``$share/...`` is an ordinary
  filter.

Violations raise :class:`~gateway.mqtt.errors.MQTTError` with 0x81 (the
packet is malformed), as Mosquitto answers them.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.mqtt.errors import malformed

SHARE_PREFIX = "$share/"


class SharedFilter(NamedTuple):
    """A topic filter split into its share name (``None`` if not shared) and filter."""

    share_name: str | None
    topic_filter: str


def validate_topic_name(topic: str) -> None:
    """Raise MQTTError unless ``topic`` is a valid topic name for PUBLISH or a Will."""
    if not topic:
        raise malformed("empty topic name")
    if "+" in topic or "#" in topic:
        raise malformed(f"wildcard in topic name {topic!r}")
    if "\x00" in topic:
        raise malformed("U+0000 in topic name")  # [MQTT-1.5.4-2]
    if len(topic) > 16383 and len(topic.encode()) > 0xFFFF:
        raise malformed("topic name longer than 65535 bytes")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise MQTTError unless ``topic_filter`` is a valid (non-shared) topic filter."""
    if not topic_filter:
        raise malformed("empty topic filter")
    if len(topic_filter) > 16383 and len(topic_filter.encode()) > 0xFFFF:
        raise malformed("topic filter longer than 65535 bytes")
    if "\x00" in topic_filter:
        raise malformed("U+0000 in topic filter")  # [MQTT-1.5.4-2]
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if level in ("+", "#"):
            if level == "#" and i != last:
                raise malformed(f"'#' not last in topic filter {topic_filter!r}")
        elif "+" in level or "#" in level:
            raise malformed(f"wildcard inside a level of topic filter {topic_filter!r}")


def parse_filter(topic_filter: str, version: int) -> SharedFilter:
    """Validate a SUBSCRIBE/UNSUBSCRIBE filter; split off ``$share/name/`` in 5.0."""
    if version == 5 and topic_filter.startswith(SHARE_PREFIX):
        rest = topic_filter[len(SHARE_PREFIX) :]
        name, slash, inner = rest.partition("/")
        if not name or "+" in name or "#" in name:
            raise malformed(f"bad share name in {topic_filter!r}")
        if not slash or not inner:
            raise malformed(f"no topic filter after the share name in {topic_filter!r}")
        validate_topic_filter(inner)
        return SharedFilter(name, inner)
    validate_topic_filter(topic_filter)
    return SharedFilter(None, topic_filter)
