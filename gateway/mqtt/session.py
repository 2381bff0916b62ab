"""One MQTT connection's protocol state, sans-I/O: bytes in, packets out, packets in, bytes out.

``MqttSession`` wraps the ``Decoder`` with the connection-level rules the
codec cannot know: the first packet is CONNECT and a second one is a protocol
error ([MQTT-3.1.0-2]); inbound topic aliases ([MQTT-3.3.2-7..12]); our
Receive Maximum ([MQTT-3.3.4-7], 0x93); PINGRESP (``pong``, [MQTT-3.12.4-1]);
outbound packets encoded for the connection's version and
kept within the client's Maximum Packet Size ([MQTT-3.1.2-24]); outbound topic
aliases within the client's Topic Alias Maximum; and the outbound in-flight
window (``Outbound``). Every violation raises ``MQTTError`` carrying the
reason code to answer with. It does no I/O and knows no Bus or Log.

States::

    AWAITING_CONNECT --CONNECT--> CONNECTING --accept--> CONNECTED --> CLOSED
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway.mqtt.codec import BarePublishes, Decoder
from gateway.mqtt.errors import MQTTError, protocol_error
from gateway.mqtt.inflight import Inbound, Outbound
from gateway.mqtt.packets import (
    Connect,
    Packet,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
)
from gateway.mqtt.reason_codes import ReasonCode

DEFAULT_RECEIVE_MAXIMUM = 1024
DEFAULT_TOPIC_ALIAS_MAXIMUM = 1024


class State(enum.Enum):
    """Where the connection is in its life."""

    AWAITING_CONNECT = 1
    CONNECTING = 2
    CONNECTED = 3
    CLOSED = 4


@dataclass(frozen=True, slots=True)
class Qos2Resent:
    """A QoS 2 PUBLISH whose identifier already awaits PUBREL: answer PUBREC, deliver nothing."""

    packet_id: int


class MqttSession:
    """The protocol state of one MQTT connection (see the module docstring)."""

    def __init__(
        self,
        *,
        max_packet_size: int,
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        topic_alias_maximum: int = DEFAULT_TOPIC_ALIAS_MAXIMUM,
    ) -> None:
        self.state = State.AWAITING_CONNECT
        self.decoder = Decoder(server=True, max_packet_size=max_packet_size)
        self.version = 4
        self.receive_maximum = receive_maximum
        self.topic_alias_maximum = topic_alias_maximum
        self.client_max_packet_size = 0  # 0: no limit announced
        self.client_topic_alias_maximum = 0
        self.outbound: Outbound[Any] = Outbound()
        self.inbound = Inbound(receive_maximum)
        self._inbound_unacked = 0
        self._aliases_in: dict[int, str] = {}
        self._aliases_out: OrderedDict[str, int] = OrderedDict()
        self._out: list[bytes] = []
        self.out_size = 0
        """Bytes queued in ``data_to_send`` (counted against the slow-consumer limit)."""
        self.problem_information = True
        """5.0 Request Problem Information: whether reason strings may be sent."""

    @property
    def v5(self) -> bool:
        """Whether the connection speaks MQTT 5.0."""
        return self.version == 5

    # -- input --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Packet | Qos2Resent]:
        """Decode ``data``; return the packets the driver must act on, in order."""
        return self._receive(data, False)  # type: ignore[return-value]

    def receive_grouped(self, data: bytes) -> list[Packet | Qos2Resent | BarePublishes]:
        """``receive_data``, with runs of bare QoS 0 PUBLISHes on one topic as one
        ``BarePublishes`` (see ``gateway.mqtt.codec``)."""
        return self._receive(data, True)

    def _receive(self, data: bytes, group: bool) -> list[Packet | Qos2Resent | BarePublishes]:
        if self.state is State.CLOSED:
            return []
        failure: MQTTError | None = None
        try:
            packets = self.decoder.feed_grouped(data) if group else self.decoder.feed(data)
        except MQTTError as exc:
            failure, packets = exc, exc.preceding
        out: list[Packet | Qos2Resent | BarePublishes] = []
        try:
            self._take(packets, out)
        except MQTTError as exc:
            failure = exc
        if failure is not None:
            failure.preceding = out  # to act on before closing: they came first
            raise failure
        return out

    def _take(
        self,
        packets: list[Packet] | list[Packet | BarePublishes],
        out: list[Packet | Qos2Resent | BarePublishes],
    ) -> None:
        for packet in packets:
            if packet.__class__ is BarePublishes:
                if self.state is not State.CONNECTED:
                    raise protocol_error("PUBLISH before the connection was accepted")
                out.append(packet)
            elif isinstance(packet, Publish):
                out.append(self._inbound_publish(packet))
            elif isinstance(packet, Pubrel):
                self.inbound.pubrel(packet.packet_id)
                out.append(packet)
            elif isinstance(packet, Connect):
                if self.state is not State.AWAITING_CONNECT:
                    raise protocol_error("a second CONNECT")  # [MQTT-3.1.0-2]
                self.state = State.CONNECTING
                self.version = packet.protocol_level
                self._read_connect_limits(packet)
                out.append(packet)
            else:
                out.append(packet)

    def resume(self) -> list[Packet | Qos2Resent]:
        """Packets that arrived right behind the CONNECT (the codec holds them until now)."""
        return self.receive_data(b"")

    def _read_connect_limits(self, packet: Connect) -> None:
        props = packet.properties
        if self.version == 5:
            if props.receive_maximum is not None:
                self.outbound.receive_maximum = props.receive_maximum
            if props.maximum_packet_size is not None:
                self.client_max_packet_size = props.maximum_packet_size
            if props.topic_alias_maximum is not None:
                self.client_topic_alias_maximum = props.topic_alias_maximum
            if props.request_problem_information == 0:
                self.problem_information = False

    def _inbound_publish(self, packet: Publish) -> Publish | Qos2Resent:
        if self.state is not State.CONNECTED:
            raise protocol_error("PUBLISH before the connection was accepted")
        alias = packet.properties.topic_alias if self.version == 5 else None
        if alias is not None:
            if alias == 0 or alias > self.topic_alias_maximum:
                raise MQTTError(ReasonCode.TOPIC_ALIAS_INVALID, f"topic alias {alias}")
            if packet.topic:
                self._aliases_in[alias] = packet.topic
            else:
                topic = self._aliases_in.get(alias)
                if topic is None:
                    raise protocol_error(f"topic alias {alias} was never set")
                packet.topic = topic
        elif not packet.topic:
            raise protocol_error("empty topic without a topic alias")
        if packet.qos:
            # 3.1.1 has no Receive Maximum: the connection paces such a client instead.
            if self._inbound_unacked >= self.receive_maximum and self.v5:
                raise MQTTError(
                    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED, "more QoS 1/2 PUBLISHes than allowed"
                )
            if packet.qos == 2 and not self.inbound.qos2_received(packet.packet_id):
                return Qos2Resent(packet.packet_id)  # [MQTT-4.3.3-10] not delivered again
            self._inbound_unacked += 1
        return packet

    # -- output -------------------------------------------------------------

    def accept(self) -> None:
        """The CONNECT was accepted (the CONNACK has been sent)."""
        self.state = State.CONNECTED

    def close(self) -> None:
        """No more input is taken."""
        self.state = State.CLOSED

    def send(self, packet: Packet) -> bool:
        """Encode ``packet`` for the client; False when it exceeds the client's maximum size."""
        if isinstance(packet, Puback | Pubcomp) or (
            isinstance(packet, Pubrec) and packet.reason_code >= 0x80
        ):
            self._inbound_unacked = max(0, self._inbound_unacked - 1)
            if isinstance(packet, Pubrec):
                # [MQTT-4.3.3-9] a refused QoS 2 PUBLISH frees its identifier at once.
                self.inbound.pubrel(packet.packet_id)
        data = packet.encode(self.version)
        limit = self.client_max_packet_size
        if limit and len(data) > limit:
            if isinstance(packet, Publish):
                if packet.topic and packet.properties.topic_alias:
                    self._aliases_out.pop(packet.topic, None)  # the client never learned it
                return False  # [MQTT-3.1.2-25] discarded as if sent
            data = _shrink(packet, self.version, limit)
            if len(data) > limit:
                return False  # [MQTT-3.1.2-24] never larger than the client accepts
        self._out.append(data)
        self.out_size += len(data)
        return True

    def send_raw(self, data: bytes) -> bool:
        """Queue an already encoded PUBLISH; False when over the client's maximum size."""
        limit = self.client_max_packet_size
        if limit and len(data) > limit:
            return False
        self._out.append(data)
        self.out_size += len(data)
        return True

    def send_encoded(self, data: bytes) -> None:
        """Queue already encoded packets the caller has checked against the client's limit."""
        self._out.append(data)
        self.out_size += len(data)

    def outbound_topic(self, topic: str) -> tuple[str, int | None]:
        """The topic and alias to send a PUBLISH with (5.0 Topic Alias, client's maximum)."""
        maximum = self.client_topic_alias_maximum
        if not maximum:
            return topic, None
        alias = self._aliases_out.get(topic)
        if alias is not None:
            self._aliases_out.move_to_end(topic)
            return "", alias
        if len(self._aliases_out) < maximum:
            alias = len(self._aliases_out) + 1
        else:
            _, alias = self._aliases_out.popitem(last=False)  # reuse the least recently used
        self._aliases_out[topic] = alias
        return topic, alias

    def pong(self) -> None:
        """Answer a PINGREQ ([MQTT-3.12.4-1]), in order with the other answers."""
        self._out.append(Pingresp().encode(self.version))

    @property
    def has_output(self) -> bool:
        """Whether bytes wait in ``data_to_send``."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Encoded packets queued since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self.out_size = 0
        return data


def _shrink(packet: Packet, version: int, limit: int) -> bytes:
    """[MQTT-3.1.2-24]: drop Reason String and User Properties to fit the client's limit."""
    props = getattr(packet, "properties", None)
    if props is not None:
        props.reason_string = None
        props.user_properties = ()
    return packet.encode(version)
