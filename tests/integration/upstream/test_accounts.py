"""Upstream mode with several local accounts: each gets its own connection to its own NATS account.

A nats-server with three JetStream accounts (GW for the gateway's global
account, UA and UB); the gateway has local accounts A, B and C, maps A to UA
and B to UB in ``upstream { accounts { } }`` and leaves C unmapped. MQTT (and
NATS) clients of A and B never see each other's messages, and each account's
MQTT streams and consumers are in its own JetStream account.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js import JetStreamContext

from conf import loads
from conf.errors import ConfigErrors
from gateway.options import build_options
from gateway.server import Gateway
from tests.integration.operator.conftest import Identities
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    JetStreamFactory,
    NatsFactory,
    RawFactory,
    ServerFactory,
    gateway_nats_url,
    upstream_config,
)

pytestmark = pytest.mark.integration

SERVER_ACCOUNTS = """
accounts {
  GW: { jetstream: enabled, users: [{ user: gw, password: gwp }] }
  UA: { jetstream: enabled, users: [{ user: ua, password: pua }] }
  UB: { jetstream: enabled, users: [{ user: ub, password: pub }] }
}
"""
LOCAL_ACCOUNTS = """
accounts {
  A: { users: [{ user: a, password: pa }] }
  B: { users: [{ user: b, password: pb }] }
  C: { users: [{ user: c, password: pc }] }
}
"""
UPSTREAM_LOGINS = (
    "user: gw, password: gwp, "
    "accounts { A: { user: ua, password: pua }, B: { user: ub, password: pub } }"
)
SERVER_UNAVAILABLE = 0x88


async def last_seq(js: JetStreamContext, stream: str) -> int:
    seq: int = (await js.stream_info(stream)).state.last_seq
    return seq


async def test_accounts_are_isolated_upstream(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    raw: RawFactory,
    jetstream: JetStreamFactory,
    nats_connect: NatsFactory,
) -> None:
    server = await configured_server(SERVER_ACCOUNTS)
    gateway: Gateway = await gateways(server.url, extra=LOCAL_ACCOUNTS, upstream=UPSTREAM_LOGINS)

    a_sub = await mqtt_client(gateway, "a-sub", username="a", password=b"pa")
    b_sub = await mqtt_client(gateway, "b-sub", username="b", password=b"pb")
    assert await a_sub.subscribe("t/#", qos=1) == [1]
    assert await b_sub.subscribe("t/#", qos=1) == [1]
    a_nats = await nats_connect(gateway_nats_url(gateway), user="a", password="pa")
    a_core = await a_nats.subscribe("t.>")
    await a_nats.flush()

    a_pub = await mqtt_client(gateway, "a-pub", username="a", password=b"pa")
    b_pub = await mqtt_client(gateway, "b-pub", username="b", password=b"pb")
    await a_pub.publish("t/x", b"from-a", qos=1)  # PUBACK: stored in JetStream
    await b_pub.publish("t/x", b"from-b", qos=1)
    await a_pub.publish("keep/a", b"retained-a", qos=1, retain=True)

    [got_a] = await a_sub.receive_acked(1)
    [got_b] = await b_sub.receive_acked(1)
    assert (got_a.topic, got_a.payload) == ("t/x", b"from-a")
    assert (got_b.topic, got_b.payload) == ("t/x", b"from-b")
    assert (await a_core.next_msg(timeout=5)).data == b"from-a"
    await a_sub.quiet()
    await b_sub.quiet()

    # Each account's MQTT streams live in its own JetStream account upstream.
    js_a = await jetstream(server.url, user="ua", password="pua")
    js_b = await jetstream(server.url, user="ub", password="pub")
    js_gw = await jetstream(server.url, user="gw", password="gwp")
    assert await last_seq(js_a, "$MQTT_msgs") == 2  # t/x and the retained keep/a
    assert await last_seq(js_b, "$MQTT_msgs") == 1
    assert await last_seq(js_gw, "$MQTT_msgs") == 0
    assert await last_seq(js_a, "$MQTT_rmsgs") == 1
    assert await last_seq(js_b, "$MQTT_rmsgs") == 0
    a_consumers = await js_a.consumers_info("$MQTT_msgs")
    b_consumers = await js_b.consumers_info("$MQTT_msgs")
    assert a_consumers and b_consumers
    assert not {c.name for c in a_consumers} & {c.name for c in b_consumers}
    assert await js_gw.consumers_info("$MQTT_msgs") == []

    # A retained message of A is A's alone.
    b_late = await mqtt_client(gateway, "b-late", username="b", password=b"pb")
    assert await b_late.subscribe("keep/#", qos=1) == [1]
    await b_late.quiet()
    a_late = await mqtt_client(gateway, "a-late", username="a", password=b"pa")
    assert await a_late.subscribe("keep/#", qos=1) == [1]
    [retained] = await a_late.receive_acked(1)
    assert retained.payload == b"retained-a" and retained.retain

    # One upstream connection per account, named after it.
    names = await server.client_names()
    prefix = gateway.options.server_name or gateway.server_id
    assert {f"{prefix}/A", f"{prefix}/B"} <= set(names)

    # C has no upstream login: refused as "server unavailable".
    c = await raw(gateway, 5)
    connack = await c.connect("c-1", username="c", password=b"pc")
    assert connack.reason_code == SERVER_UNAVAILABLE


def test_unknown_account_in_upstream_logins_is_a_config_error() -> None:
    text = upstream_config(
        ["nats://127.0.0.1:4222"], extra=LOCAL_ACCOUNTS, upstream="accounts { X: { token: t } }"
    )
    with pytest.raises(ConfigErrors, match='upstream login for "X", which is not a defined'):
        build_options(loads(text))


async def test_operator_mode_accounts_map_by_public_key_or_name(
    tmp_path: Path,
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
) -> None:
    server = await configured_server(SERVER_ACCOUNTS)
    ids = Identities(tmp_path)
    logins = (
        "user: gw, password: gwp, accounts { "
        f"{ids.key('A')}: {{ user: ua, password: pua }}, B: {{ user: ub, password: pub }} }}"
    )
    gateway = await gateways(server.url, extra=ids.config(), upstream=logins)
    a_token, b_token = ids.bearer("A").encode(), ids.bearer("B").encode()
    a_sub = await mqtt_client(gateway, "a-sub", 5, username="u", password=a_token)
    b_sub = await mqtt_client(gateway, "b-sub", 5, username="u", password=b_token)
    assert await a_sub.subscribe("t/#", qos=1) == [1]
    assert await b_sub.subscribe("t/#", qos=1) == [1]
    b_pub = await mqtt_client(gateway, "b-pub", 5, username="u", password=b_token)
    await b_pub.publish("t/y", b"from-b", qos=1)
    [got] = await b_sub.receive_acked(1)
    assert got.payload == b"from-b"
    await a_sub.quiet()
    js_a = await jetstream(server.url, user="ua", password="pua")
    js_b = await jetstream(server.url, user="ub", password="pub")
    assert await last_seq(js_a, "$MQTT_msgs") == 0
    assert await last_seq(js_b, "$MQTT_msgs") == 1
