"""Authentication failures: counted, and rate-limited per remote address.

The MQTT broker counts refused CONNECTs. Rate limiting (after repeated
failures from one address, further attempts are refused at once, whatever the
credentials) is being added: there is no limiter in ``gateway/auth/`` yet, so
that test is a strict xfail until it lands.
"""

from __future__ import annotations

from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import (
    BAD_USER_NAME_OR_PASSWORD,
    SUCCESS,
    mqtt_connack,
    nats_accepted,
    nats_refusal,
)

USERS = "authorization { users = [ {user: alice, password: right} ] }\n"
FAILURES = 10


async def test_refused_mqtt_connects_are_counted(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    assert gateway.broker is not None
    before = gateway.broker.counters["connect_refused"]
    for ws in (False, True):
        assert await mqtt_connack(gateway, 5, "alice", "wrong", ws=ws) == BAD_USER_NAME_OR_PASSWORD
    assert await mqtt_connack(gateway, 4, "ghost", "right") != SUCCESS
    assert await mqtt_connack(gateway, 5, "alice", "right") == SUCCESS
    assert gateway.broker.counters["connect_refused"] - before == 3


async def test_repeated_failures_from_one_address_are_refused_at_once(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(USERS)
    for _ in range(FAILURES):
        assert "'Authorization Violation'" in await nats_refusal(
            gateway, user="alice", password="wrong"
        )
    # The address is now limited: even the right credentials are refused, on every listener.
    assert not await nats_accepted(gateway, user="alice", password="right")
    assert await mqtt_connack(gateway, 5, "alice", "right") != SUCCESS
