"""How an MQTT PUBLISH travels as a NATS message, and back.

The NATS message carries the payload as is, on the subject the topic maps to
(``gateway.mqtt.topics``). Headers carry what MQTT needs and NATS has no
field for; a QoS 0 PUBLISH without MQTT 5 properties carries none at all, so
the hot path and plain NATS subscribers see a bare message:

| header | meaning |
|---|---|
| ``Nmqtt-Pub`` | the publisher's QoS (1 or 2), as the NATS server's MQTT writes it |
| ``Nmqtt-Props`` | MQTT 5 PUBLISH properties (user properties, content type, response topic, correlation data, payload format), the encoded property block in base64 |
| ``Nmqtt-Expires`` | unix time at which the message expires (from Message Expiry Interval) |
| ``Nmqtt-Origin`` | the publishing session's hash8, set when that session has a no-local subscription |
| ``Nmqtt-Retain`` | ``1`` when the PUBLISH had RETAIN set (for Retain As Published) |

A message that arrives from a plain NATS publisher has none of these and is
delivered as QoS 0 with no properties.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from types import MappingProxyType

from gateway.mqtt.errors import MQTTError
from gateway.mqtt.properties import PacketType, Properties, encode_properties, read_properties

PUB = "Nmqtt-Pub"
PROPS = "Nmqtt-Props"
EXPIRES = "Nmqtt-Expires"
ORIGIN = "Nmqtt-Origin"
RETAIN = "Nmqtt-Retain"

# The PUBLISH properties carried from publisher to subscribers ([MQTT-3.3.2-13..20]);
# the rest belong to one hop (topic alias, subscription identifiers), are carried
# another way (message expiry) or are Will-only (will delay interval).
_CARRIED = (
    "payload_format_indicator",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_properties",
)


def publish_headers(
    qos: int, properties: Properties | None, origin: str | None, now: float | None = None
) -> Mapping[str, str] | None:
    """NATS headers for a PUBLISH of ``qos`` with ``properties``; None when there are none.

    Read-only: a PUBLISH with nothing but its QoS gets one shared mapping per QoS, so
    the upstream wire encodes that header block once (``encode_headers``).
    """
    if origin is None and (properties is None or not properties):
        return _BARE.get(qos)
    headers: dict[str, str] = {}
    if qos:
        headers[PUB] = str(qos)
    if properties is not None and properties:
        expiry = properties.message_expiry_interval
        if expiry is not None:
            headers[EXPIRES] = f"{(time.time() if now is None else now) + expiry:.3f}"
        carried = _carried(properties)
        if carried:
            block = encode_properties(carried, PacketType.PUBLISH)
            headers[PROPS] = base64.b64encode(block).decode()
    if origin is not None:
        headers[ORIGIN] = origin
    return headers or None


_BARE: dict[int, Mapping[str, str]] = {qos: MappingProxyType({PUB: str(qos)}) for qos in (1, 2)}


def _carried(properties: Properties) -> Properties:
    values = {spec.name: value for spec, value in properties.items() if spec.name in _CARRIED}
    return Properties(**values)


def delivered_properties(
    headers: Mapping[str, str] | None, now: float | None = None
) -> tuple[Properties | None, bool]:
    """The properties to deliver a message with, and whether it has expired.

    The Message Expiry Interval sent on is what remains of the original one
    ([MQTT-3.3.2-6]); an expired message must not be delivered ([MQTT-3.3.2-5]).
    """
    if not headers:
        return None, False
    encoded = headers.get(PROPS)
    properties: Properties | None = None
    if encoded:
        try:
            block = base64.b64decode(encoded, validate=True)
            properties, _ = read_properties(block, 0, len(block), PacketType.PUBLISH)
        except (binascii.Error, ValueError, MQTTError):
            properties = None  # not ours to fail on: deliver the payload without them
    expires = headers.get(EXPIRES)
    if expires:
        try:
            remaining = float(expires) - (time.time() if now is None else now)
        except ValueError:
            remaining = 1.0
        if remaining <= 0:
            return properties, True
        if properties is None:
            properties = Properties()
        properties.message_expiry_interval = max(1, int(remaining + 0.999))
    return properties, False


def published_qos(headers: Mapping[str, str] | None) -> int:
    """The QoS the message was published with (0 for plain NATS messages)."""
    if not headers:
        return 0
    value = headers.get(PUB, "0")
    return 2 if value[:1] == "2" else 1 if value[:1] == "1" else 0
