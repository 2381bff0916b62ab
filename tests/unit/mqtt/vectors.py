"""Golden MQTT packets: raw bytes annotated field by field, and the packet they are.

Built from the layouts of chapter 3 of MQTT 3.1.1 and 5.0. Each row is
(name, version, side, bytes, packet); ``side`` is who receives it
("server" for what clients send, "client" for what servers send, "both").
Shared by the codec tests and, later, the session tests.
"""

from __future__ import annotations

from gateway.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.reason_codes import ReasonCode as R


def h(text: str) -> bytes:
    """Bytes from hex with spaces and ``'ascii'`` quoted runs, for readable vectors."""
    out = bytearray()
    quoted = False
    for part in text.split("'"):
        if quoted:
            out += part.encode()
        else:
            out += bytes.fromhex(part)
        quoted = not quoted
    return bytes(out)


P = Properties
VECTORS: list[tuple[str, int, str, bytes, Packet]] = [
    # ---- CONNECT ----------------------------------------------------------
    (
        "connect-311-minimal",
        4,
        "server",
        h("10 0E  0004'MQTT' 04  02  003C  0002'c1'"),
        Connect("c1", clean_start=True, keep_alive=60, protocol_level=4),
    ),
    (
        "connect-311-full",
        4,
        "server",
        # flags: user 80 | password 40 | will retain 20 | will QoS 1 08 | will 04 | clean 02
        h("10 1D  0004'MQTT' 04  EE  000A  0003'cid'  0001't'  0002'wp'  0001'u'  0002'pw'"),
        Connect("cid", True, 10, "u", b"pw", Will("t", b"wp", 1, True), 4),
    ),
    (
        "connect-31-mqisdp",
        3,
        "server",
        h("10 10  0006'MQIsdp' 03  02  003C  0002'c1'"),
        Connect("c1", True, 60, protocol_level=3),
    ),
    (
        "connect-5-session-expiry",
        5,
        "server",
        h("10 14  0004'MQTT' 05  02  003C  05 11 0000000A  0002'c1'"),
        Connect("c1", True, 60, protocol_level=5, properties=P(session_expiry_interval=10)),
    ),
    (
        "connect-5-will-props-password-only",
        5,
        "server",
        # flags: password 40 | will 04 | clean 02; 5.0 allows a password alone
        h("10 1D  0004'MQTT' 05  46  0000  00  0001'c'  05 18 00000005  0001't'  0000  0002'pw'"),
        Connect("c", True, 0, None, b"pw", Will("t", b"", 0, False, P(will_delay_interval=5)), 5),
    ),
    # ---- CONNACK ----------------------------------------------------------
    ("connack-311-session-present", 4, "client", h("20 02 01 00"), Connack(0, True)),
    ("connack-311-not-authorized", 4, "client", h("20 02 00 05"), Connack(R.NOT_AUTHORIZED)),
    (
        "connack-311-bad-version",
        4,
        "client",
        h("20 02 00 01"),
        Connack(R.UNSUPPORTED_PROTOCOL_VERSION),
    ),
    ("connack-31", 3, "client", h("20 02 00 00"), Connack(0)),
    ("connack-5-plain", 5, "client", h("20 03 00 00 00"), Connack(0)),
    (
        "connack-5-props",
        5,
        "client",
        h("20 08 01 00  05  22 000A  24 01"),
        Connack(0, True, P(topic_alias_maximum=10, maximum_qos=1)),
    ),
    ("connack-5-banned", 5, "client", h("20 03 00 8A 00"), Connack(R.BANNED)),
    # ---- PUBLISH ----------------------------------------------------------
    ("publish-311-qos0", 4, "both", h("30 0A 0003'a/b' 'hello'"), Publish("a/b", b"hello")),
    (
        "publish-311-qos1-dup-retain",
        4,
        "both",
        h("3B 09 0003'a/b' 0007 'hi'"),
        Publish("a/b", b"hi", 1, True, True, 7),
    ),
    (
        "publish-311-qos2",
        4,
        "both",
        h("34 06 0001'x' FFFF 'z'"),
        Publish("x", b"z", 2, packet_id=65535),
    ),
    ("publish-311-empty-payload", 4, "both", h("31 03 0001'x'"), Publish("x", b"", retain=True)),
    (
        "publish-311-two-byte-length",
        4,
        "both",
        h("30 CD01 0003'a/b'") + bytes(200),
        Publish("a/b", bytes(200)),
    ),
    ("publish-5-qos0", 5, "both", h("30 0B 0003'a/b' 00 'hello'"), Publish("a/b", b"hello")),
    (
        "publish-5-topic-alias-empty-topic",
        5,
        "both",
        h("30 07 0000 03 23 0001 'x'"),
        Publish("", b"x", properties=P(topic_alias=1)),
    ),
    (
        "publish-5-user-properties-order-and-duplicates",
        5,
        "both",
        h("30 14 0003'a/b' 0E  26 0001'k' 0001'1'  26 0001'k' 0001'2'"),
        Publish("a/b", b"", properties=P(user_properties=[("k", "1"), ("k", "2")])),
    ),
    (
        "publish-5-qos1-message-props",
        5,
        "both",
        h("32 17 0001't' 0001  10  01 01  02 0000003C  03 0002'js'  09 0001 FF  'p'"),
        Publish(
            "t",
            b"p",
            1,
            packet_id=1,
            properties=P(
                payload_format_indicator=1,
                message_expiry_interval=60,
                content_type="js",
                correlation_data=b"\xff",
            ),
        ),
    ),
    (
        "publish-5-subscription-ids",
        5,
        "client",
        h("30 09 0001't' 05 0B 01 0B 80 01"),
        Publish("t", b"", properties=P(subscription_identifiers=[1, 128])),
    ),
    # ---- PUBACK / PUBREC / PUBREL / PUBCOMP --------------------------------
    ("puback-311", 4, "both", h("40 02 0007"), Puback(7)),
    ("pubrec-311", 4, "both", h("50 02 0007"), Pubrec(7)),
    ("pubrel-311", 4, "both", h("62 02 0007"), Pubrel(7)),
    ("pubcomp-311", 4, "both", h("70 02 0007"), Pubcomp(7)),
    ("puback-5-short", 5, "both", h("40 02 0007"), Puback(7)),
    ("puback-5-reason", 5, "both", h("40 03 0007 10"), Puback(7, R.NO_MATCHING_SUBSCRIBERS)),
    (
        "puback-5-reason-string",
        5,
        "both",
        h("40 08 0007 97 04 1F 0001'q'"),
        Puback(7, R.QUOTA_EXCEEDED, P(reason_string="q")),
    ),
    ("pubrec-5-reason", 5, "both", h("50 03 0007 87"), Pubrec(7, R.NOT_AUTHORIZED)),
    ("pubrel-5-not-found", 5, "both", h("62 03 0007 92"), Pubrel(7, R.PACKET_IDENTIFIER_NOT_FOUND)),
    ("pubcomp-5-short", 5, "both", h("70 02 0007"), Pubcomp(7)),
    # ---- SUBSCRIBE / SUBACK ------------------------------------------------
    (
        "subscribe-311",
        4,
        "server",
        h("82 0C 000A  0003'a/+' 01  0001'#' 02"),
        Subscribe(10, [Subscription("a/+", 1), Subscription("#", 2)]),
    ),
    (
        "subscribe-5-options",
        5,
        "server",
        # options 2D: retain handling 2 (20) | retain as published 08 | no local 04 | QoS 1
        h("82 0B 000A  02 0B 05  0003'a/b' 2D"),
        Subscribe(10, [Subscription("a/b", 1, True, True, 2)], P(subscription_identifiers=[5])),
    ),
    (
        "subscribe-5-shared",
        5,
        "server",
        h("82 10 000B  00  000A'$share/g/t' 01"),
        Subscribe(11, [Subscription("$share/g/t", 1)]),
    ),
    ("suback-311", 4, "client", h("90 05 000A 01 02 80"), Suback(10, [1, 2, R.UNSPECIFIED_ERROR])),
    (
        "suback-5",
        5,
        "client",
        h("90 06 000A 00 01 87 8F"),
        Suback(10, [1, R.NOT_AUTHORIZED, R.TOPIC_FILTER_INVALID]),
    ),
    # ---- UNSUBSCRIBE / UNSUBACK --------------------------------------------
    (
        "unsubscribe-311",
        4,
        "server",
        h("A2 0A 000B 0003'a/b' 0001'#'"),
        Unsubscribe(11, ["a/b", "#"]),
    ),
    ("unsubscribe-5", 5, "server", h("A2 08 000B 00 0003'a/b'"), Unsubscribe(11, ["a/b"])),
    ("unsuback-311", 4, "client", h("B0 02 000B"), Unsuback(11)),
    (
        "unsuback-5",
        5,
        "client",
        h("B0 05 000B 00 00 11"),
        Unsuback(11, [0, R.NO_SUBSCRIPTION_EXISTED]),
    ),
    # ---- PINGREQ / PINGRESP / DISCONNECT / AUTH ----------------------------
    ("pingreq-311", 4, "server", h("C0 00"), Pingreq()),
    ("pingreq-5", 5, "server", h("C0 00"), Pingreq()),
    ("pingresp-311", 4, "client", h("D0 00"), Pingresp()),
    ("disconnect-311", 4, "server", h("E0 00"), Disconnect()),
    ("disconnect-5-normal", 5, "both", h("E0 00"), Disconnect()),
    (
        "disconnect-5-with-will",
        5,
        "both",
        h("E0 01 04"),
        Disconnect(R.DISCONNECT_WITH_WILL_MESSAGE),
    ),
    (
        "disconnect-5-taken-over",
        5,
        "both",
        h("E0 07 8E 05 1F 0002'by'"),
        Disconnect(R.SESSION_TAKEN_OVER, P(reason_string="by")),
    ),
    ("auth-5-success", 5, "both", h("F0 00"), Auth()),
    (
        "auth-5-continue",
        5,
        "both",
        h("F0 0B 18 09 15 0001'X' 16 0002 0102"),
        Auth(
            R.CONTINUE_AUTHENTICATION, P(authentication_method="X", authentication_data=b"\x01\x02")
        ),
    ),
]
