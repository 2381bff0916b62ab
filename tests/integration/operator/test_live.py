"""Operator mode after CONNECT: expiry and revocation disconnect live clients.

Expiry: a user JWT valid for ~2 s; the test awaits the disconnect (nats-py's
``disconnected_cb``, the ``-ERR`` in ``error_cb``, paho's ``on_disconnect``)
with a bounded timeout. Revocation: a directory resolver; the test rewrites
the account JWT with a revocation and awaits the same events.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.auth.nkeys import Role
from tests.integration.auth.helpers import NatsErrors, mqtt_port, nats_connect
from tests.integration.mqtt.helpers import PahoClient
from tests.integration.operator.conftest import Identities, StartGateway, keypair

pytestmark = pytest.mark.integration

#: Upper bound for a disconnect to arrive (expiry ~2 s, directory polling 1 s).
DEADLINE = 10.0


class Disconnects:
    """nats-py callbacks: errors as a queue, the disconnect as an event.

    nats-py keeps the server's closing ``-ERR`` in ``last_error``.
    """

    def __init__(self) -> None:
        self.errors = NatsErrors()
        self.gone = asyncio.Event()

    async def disconnected(self) -> None:
        self.gone.set()


async def _nats(gateway, creds: str, watch: Disconnects):  # type: ignore[no-untyped-def]
    return await nats_connect(
        gateway,
        errors=watch.errors,
        user_credentials=creds,
        disconnected_cb=watch.disconnected,
    )


async def _paho(gateway, token: str, version: int = 5) -> PahoClient:  # type: ignore[no-untyped-def]
    client = PahoClient(mqtt_port(gateway), version)
    client.client.username_pw_set("device", token)
    _flags, reason, _props = await client.connect()
    assert reason.value == 0
    return client


async def test_expired_user_is_disconnected(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    watch = Disconnects()
    nc = await _nats(gateway, ids.creds("A", expires_in=2), watch)
    device = await _paho(gateway, ids.bearer("A", expires_in=2))
    lasting = Disconnects()
    other = await _nats(gateway, ids.creds("A", expires_in=3600), lasting)
    try:
        started = time.monotonic()
        await asyncio.wait_for(watch.gone.wait(), DEADLINE)
        assert "user authentication expired" in str(nc.last_error).lower()
        assert time.monotonic() - started >= 0.5  # not at once: when exp passes
        await asyncio.wait_for(device.disconnected, DEADLINE)
        await other.flush(timeout=5)
        assert other.is_connected and not lasting.gone.is_set()
    finally:
        await device.stop()
        await other.close()
        await nc.close()


async def test_revocation_disconnects_live_clients(start: StartGateway, ids: Identities) -> None:
    gateway = await start(dir_resolver=True)
    victim = keypair(Role.USER)
    issued = int(time.time()) - 5
    user, token = ids.user_jwt("A", victim, issued_at=issued)
    watch = Disconnects()
    nc = await _nats(gateway, ids.creds_file(token, user), watch)
    device_key = keypair(Role.USER)
    device = await _paho(gateway, ids.user_jwt("A", device_key, bearer=True, issued_at=issued)[1])
    bystander = Disconnects()
    other = await _nats(gateway, ids.creds("A"), bystander)
    try:
        ids.publish_account(
            "A", revocations={victim.public_key: issued, device_key.public_key: issued}
        )
        await asyncio.wait_for(watch.gone.wait(), DEADLINE)
        assert "user authentication revoked" in str(nc.last_error).lower()
        await asyncio.wait_for(device.disconnected, DEADLINE)
        await other.flush(timeout=5)
        assert other.is_connected and not bystander.gone.is_set()
        # And the revoked user cannot come back.
        with pytest.raises(Exception, match="Authorization Violation"):
            await nats_connect(gateway, user_credentials=ids.creds_file(token, user))
    finally:
        await device.stop()
        await other.close()
        await nc.close()


async def test_directory_resolver_picks_up_new_accounts(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start(dir_resolver=True)
    (ids.accounts_dir / f"{ids.key('B')}.jwt").unlink()
    with pytest.raises(Exception, match="Authorization Violation"):
        await nats_connect(gateway, user_credentials=ids.creds("B"))
    ids.publish_account("B")
    nc = await nats_connect(gateway, user_credentials=ids.creds("B"))
    await nc.close()


async def test_expired_mqtt_client_sends_its_will(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    listener = await _paho(gateway, ids.bearer("A"))
    try:
        await listener.subscribe("wills/#", 1)
        device = PahoClient(mqtt_port(gateway), 4)
        device.client.username_pw_set("device", ids.bearer("A", expires_in=2))
        device.client.will_set("wills/d1", b"gone", 1)
        _flags, reason, _props = await device.connect()
        assert reason.value == 0
        try:
            msg = await listener.next_message(DEADLINE)
            assert (msg.topic, msg.payload) == ("wills/d1", b"gone")
        finally:
            await device.stop()
    finally:
        await listener.stop()
