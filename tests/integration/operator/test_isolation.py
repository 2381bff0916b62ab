"""Accounts isolate subjects: clients of account A never see account B's messages.

The identity carries the account, and each account has its own bus, log and
MQTT broker (``gateway/accounts.py``).
"""

from __future__ import annotations

import pytest
from nats.errors import TimeoutError as NatsTimeout

from gateway.auth.users import Credentials
from gateway.options.model import ConnectionType
from tests.integration.auth.helpers import QUIET, mqtt_port, nats_connect
from tests.integration.mqtt.helpers import PahoClient
from tests.integration.operator.conftest import Identities, StartGateway

pytestmark = pytest.mark.integration


async def test_identity_carries_the_account(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    token = ids.bearer("B")
    identity = await gateway.users.authenticate(
        ConnectionType.MQTT, Credentials("x", token, jwt=token), address="127.0.0.1"
    )
    assert identity.account == ids.key("B")
    assert identity.method == "jwt"
    assert identity.grant is not None and identity.grant.account == ids.key("B")


async def test_nats_clients_of_different_accounts_are_isolated(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    a = await nats_connect(gateway, user_credentials=ids.creds("A"))
    b = await nats_connect(gateway, user_credentials=ids.creds("B"))
    a2 = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub_a = await a.subscribe("shared.subject")
        await a.flush()
        await b.publish("shared.subject", b"from B")
        await a2.publish("shared.subject", b"from A")
        await b.flush()
        await a2.flush()
        msg = await sub_a.next_msg(timeout=5)
        assert msg.data == b"from A"  # B's message, published first, must not arrive
        with pytest.raises(NatsTimeout):
            await sub_a.next_msg(timeout=QUIET)
    finally:
        for nc in (a, b, a2):
            await nc.close()


async def test_mqtt_clients_of_different_accounts_are_isolated(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    clients = []
    for account in ("A", "B", "A"):
        client = PahoClient(mqtt_port(gateway), 5)
        client.client.username_pw_set("dev", ids.bearer(account))
        _flags, reason, _props = await client.connect()
        assert reason.value == 0
        clients.append(client)
    a, b, a2 = clients
    try:
        await a.subscribe("shared/topic", 1)
        await b.publish("shared/topic", b"from B", 1)
        await a2.publish("shared/topic", b"from A", 1)
        msg = await a.next_message()
        assert msg.payload == b"from A"
        await a.no_message()
    finally:
        for client in clients:
            await client.stop()
