"""Operator mode over the wire: each validation rule accepts the good case and refuses the bad.

NATS clients are nats-py with creds files (the nonce is signed with the user
seed); MQTT clients pass a bearer user JWT as the password.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import pytest

from gateway.auth.jwt import b64url_encode
from gateway.auth.jwt_cli import issue_user
from gateway.auth.nkeys import Role
from tests.integration.auth.helpers import (
    BAD_USER_NAME_OR_PASSWORD,
    CONNACK_311_NOT_AUTHORIZED,
    NOT_AUTHORIZED,
    SUCCESS,
    NatsErrors,
    connack_311_bytes,
    mqtt_connack,
    nats_accepted,
    nats_connect,
    nats_refusal,
)
from tests.integration.operator.conftest import Identities, StartGateway, keypair, wait_until

pytestmark = pytest.mark.integration

VIOLATION = "Authorization Violation"


async def test_nats_creds_user_connects_and_exchanges(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    nc = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub = await nc.subscribe("greet")
        await nc.publish("greet", b"hello")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"hello"
    finally:
        await nc.close()


async def test_user_of_account_signing_key(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    assert await nats_accepted(gateway, user_credentials=ids.creds("A", signing_key=True))


async def test_websocket_nats_client_signs_the_nonce(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    assert await nats_accepted(gateway, ws=True, user_credentials=ids.creds("A"))


@pytest.mark.parametrize("version", [4, 5])
async def test_mqtt_bearer_jwt_as_password(
    start: StartGateway, ids: Identities, version: int
) -> None:
    gateway = await start()
    code = await mqtt_connack(gateway, version, "anyone", ids.bearer("A"))
    assert code == SUCCESS


async def test_mqtt_non_bearer_refused_with_reason_logged(
    start: StartGateway, ids: Identities, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start()
    token = ids.user_jwt("A")[1]
    with caplog.at_level(logging.INFO, logger="jetgate"):
        assert await connack_311_bytes(gateway, "dev", token) == CONNACK_311_NOT_AUTHORIZED
        assert await mqtt_connack(gateway, 5, "dev", token) == NOT_AUTHORIZED
    assert "must be a bearer token" in caplog.text


async def test_mqtt_password_that_is_not_a_jwt(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    assert await connack_311_bytes(gateway, "dev", "secret") == CONNACK_311_NOT_AUTHORIZED
    assert await connack_311_bytes(gateway) == CONNACK_311_NOT_AUTHORIZED
    # A JWT in the user name field does not count.
    assert await connack_311_bytes(gateway, ids.bearer("A"), "x") == CONNACK_311_NOT_AUTHORIZED


async def test_nats_bearer_needs_no_signature(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    token = ids.bearer("A")
    other = keypair(Role.USER)  # signs the nonce with a key that is not the JWT's subject
    assert await nats_accepted(gateway, user_credentials=ids.creds_file(token, other))


async def test_nonce_signed_by_another_key(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    _user, token = ids.user_jwt("A")
    path = ids.creds_file(token, keypair(Role.USER))
    assert VIOLATION in await nats_refusal(gateway, user_credentials=path)


async def test_no_jwt_at_all(start: StartGateway) -> None:
    gateway = await start()
    assert VIOLATION in await nats_refusal(gateway, user="a", password="b")


async def test_wrong_signer(start: StartGateway, ids: Identities) -> None:
    """A user signed by a key that is neither the account nor one of its signing keys."""
    gateway = await start()
    stranger = keypair(Role.ACCOUNT)
    user, token = ids.user_jwt("A", signer=stranger, issuer_account=ids.key("A"))
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))
    bearer = ids.user_jwt("A", signer=stranger, issuer_account=ids.key("A"), bearer=True)[1]
    assert await mqtt_connack(gateway, 5, "u", bearer) == BAD_USER_NAME_OR_PASSWORD
    # Signed by account B but claiming account A.
    user, token = ids.user_jwt("A", signer=ids.accounts["B"].key, issuer_account=ids.key("A"))
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))


async def test_tampered_payload(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    user, token = ids.user_jwt("A", pub_allow=["only.this"])
    head, body, sig = token.split(".")
    payload = json.loads(b64url_decode_padded(body))
    payload["nats"]["pub"] = {}
    forged = f"{head}.{b64url_encode(json.dumps(payload).encode())}.{sig}"
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(forged, user))


def b64url_decode_padded(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_alg_none(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    user, token = ids.user_jwt("A", bearer=True)
    head = b64url_encode(b'{"typ":"JWT","alg":"none"}')
    forged = f"{head}.{token.split('.')[1]}."
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(forged, user))
    assert await mqtt_connack(gateway, 5, "u", forged) == BAD_USER_NAME_OR_PASSWORD


@pytest.mark.parametrize(
    ("kw", "accepted"),
    [
        ({"expires_in": 3600}, True),
        ({"expires_in": -5}, False),
        ({"not_before_in": -5}, True),
        ({"not_before_in": 3600}, False),
    ],
    ids=["exp-future", "expired", "nbf-past", "not-yet-valid"],
)
async def test_user_times(
    start: StartGateway, ids: Identities, kw: dict[str, float], accepted: bool
) -> None:
    gateway = await start()
    assert await nats_accepted(gateway, user_credentials=ids.creds("A", **kw)) is accepted
    expected = SUCCESS if accepted else BAD_USER_NAME_OR_PASSWORD
    assert await mqtt_connack(gateway, 5, "u", ids.bearer("A", **kw)) == expected


async def test_expired_or_future_account(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["expires_in"] = -5
    ids.accounts["B"].options["not_before_in"] = 3600
    gateway = await start()
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("B"))


async def test_account_signed_by_operator_signing_key(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["signer"] = ids.operator_signing
    gateway = await start()
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))


async def test_user_of_an_untrusted_operator(start: StartGateway, ids: Identities) -> None:
    """Account B's JWT is issued by another operator: its users are refused."""
    ids.accounts["B"].options["signer"] = keypair(Role.OPERATOR)
    gateway = await start()
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("B"))
    # The user JWT verified; its account could not be established: not authorized.
    assert await mqtt_connack(gateway, 5, "u", ids.bearer("B")) == NOT_AUTHORIZED


async def test_self_signed_account_is_not_trusted(start: StartGateway, ids: Identities) -> None:
    ids.accounts["B"].options["signer"] = ids.accounts["B"].key
    gateway = await start()
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("B"))


async def test_unknown_account(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    orphan = keypair(Role.ACCOUNT)
    user = keypair(Role.USER)
    token = issue_user(orphan, user.public_key, "orphan")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))


async def test_revoked_user_and_wildcard(start: StartGateway, ids: Identities) -> None:
    now = int(time.time())
    revoked, old = keypair(Role.USER), keypair(Role.USER)
    ids.accounts["A"].options["revocations"] = {revoked.public_key: now}
    ids.accounts["B"].options["revocations"] = {"*": now}
    gateway = await start()
    user, token = ids.user_jwt("A", revoked, issued_at=now)
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))
    # A JWT issued after the revocation is accepted again.
    user, token = ids.user_jwt("A", revoked, issued_at=now + 1)
    assert await nats_accepted(gateway, user_credentials=ids.creds_file(token, user))
    user, token = ids.user_jwt("B", old, issued_at=now - 10)
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))
    bearer = ids.user_jwt("B", issued_at=now - 10, bearer=True)[1]
    assert await mqtt_connack(gateway, 5, "u", bearer) == NOT_AUTHORIZED


async def test_connection_types(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    mqtt_only = ids.creds("A", connection_types=["MQTT"])
    assert VIOLATION in await nats_refusal(gateway, user_credentials=mqtt_only)
    assert await nats_accepted(
        gateway, user_credentials=ids.creds("A", connection_types=["STANDARD"])
    )
    ws_only = ids.creds("A", connection_types=["WEBSOCKET"])
    assert await nats_accepted(gateway, ws=True, user_credentials=ws_only)
    assert not await nats_accepted(gateway, user_credentials=ws_only)
    unknown = ids.creds("A", connection_types=["BOGUS"])
    assert VIOLATION in await nats_refusal(gateway, user_credentials=unknown)
    mixed = ids.creds("A", connection_types=["BOGUS", "STANDARD"])
    assert await nats_accepted(gateway, user_credentials=mixed)
    standard = ids.bearer("A", connection_types=["STANDARD"])
    assert await mqtt_connack(gateway, 5, "u", standard) == NOT_AUTHORIZED
    both = ids.bearer("A", connection_types=["MQTT", "STANDARD"])
    assert await mqtt_connack(gateway, 5, "u", both) == SUCCESS
    assert await mqtt_connack(gateway, 5, "u", both, ws=True) == NOT_AUTHORIZED
    mqtt_ws = ids.bearer("A", connection_types=["MQTT_WS"])
    assert await mqtt_connack(gateway, 5, "u", mqtt_ws, ws=True) == SUCCESS


async def test_source_networks(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    assert VIOLATION in await nats_refusal(
        gateway, user_credentials=ids.creds("A", src=["10.0.0.0/8"])
    )
    local = ids.creds("A", src=["10.0.0.0/8", "127.0.0.0/8"])
    assert await nats_accepted(gateway, user_credentials=local)
    assert (
        await mqtt_connack(gateway, 5, "u", ids.bearer("A", src=["10.0.0.0/8"])) == NOT_AUTHORIZED
    )
    assert await mqtt_connack(gateway, 5, "u", ids.bearer("A", src=["127.0.0.1/32"])) == SUCCESS


async def test_time_windows(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    now = time.gmtime()
    hour = now.tm_hour
    inside = (f"{(hour - 1) % 24:02d}:00:00", f"{(hour + 1) % 24:02d}:59:59")
    outside = (f"{(hour + 2) % 24:02d}:00:00", f"{(hour + 3) % 24:02d}:00:00")
    ok = ids.creds("A", times=[outside, inside], times_location="UTC")
    assert await nats_accepted(gateway, user_credentials=ok)
    refused = ids.creds("A", times=[outside], times_location="UTC")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=refused)
    bad_zone = ids.creds("A", times=[inside], times_location="Mars/Olympus")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=bad_zone)


async def test_disallow_bearer(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["disallow_bearer"] = True
    gateway = await start()
    assert await mqtt_connack(gateway, 5, "u", ids.bearer("A")) == NOT_AUTHORIZED
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert await mqtt_connack(gateway, 5, "u", ids.bearer("B")) == SUCCESS


async def test_account_connection_limit(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["max_connections"] = 1
    gateway = await start()
    first = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
        assert await nats_accepted(gateway, user_credentials=ids.creds("B"))
    finally:
        await first.close()
    # The slot is free again once the first client has gone.
    operator = gateway.users.operator
    assert operator is not None
    await wait_until(lambda: operator.connections(ids.key("A")) == 0)
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))


async def test_publish_subscribe_permissions_and_responses(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    errors = NatsErrors()
    nc = await nats_connect(
        gateway,
        errors=errors,
        user_credentials=ids.creds(
            "A", pub_allow=["ok.>"], sub_allow=["in.>", "_INBOX.>"], sub_deny=["in.secret"]
        ),
    )
    try:
        await nc.publish("ok.1", b"x")
        await errors.none(nc)
        await nc.publish("nope", b"x")
        await errors.violation("publish", "nope")
        await nc.subscribe("out")
        await errors.violation("subscription", "out")
        await nc.subscribe("in.secret")
        await errors.violation("subscription", "in.secret")
    finally:
        await nc.close()
    # resp: a service with no publish rights may answer the requests it receives.
    service = await nats_connect(
        gateway, user_credentials=ids.creds("A", sub_allow=["svc"], resp_max=1, resp_ttl=5)
    )
    client = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub = await service.subscribe("svc")
        await service.flush()
        request = asyncio.ensure_future(client.request("svc", b"ping", timeout=5))
        msg = await sub.next_msg(timeout=5)
        await msg.respond(b"pong")
        assert (await request).data == b"pong"
    finally:
        await client.close()
        await service.close()


async def test_account_default_permissions(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["default_permissions"] = {"pub": {"deny": ["forbidden"]}, "sub": {}}
    gateway = await start()
    errors = NatsErrors()
    nc = await nats_connect(gateway, errors=errors, user_credentials=ids.creds("A"))
    try:
        await nc.publish("forbidden", b"x")
        await errors.violation("publish", "forbidden")
    finally:
        await nc.close()
    # A user with its own permissions does not get the account's.
    errors = NatsErrors()
    nc = await nats_connect(
        gateway, errors=errors, user_credentials=ids.creds("A", sub_allow=[">"])
    )
    try:
        await nc.publish("forbidden", b"x")
        await errors.none(nc)
    finally:
        await nc.close()


async def test_scoped_signing_key_template(start: StartGateway, ids: Identities) -> None:
    acc = ids.accounts["A"]
    scope = {
        "kind": "user_scope",
        "key": acc.signing.public_key,
        "role": "device",
        "template": {
            "pub": {"allow": ["dev.{{name()}}.>"]},
            "sub": {"allow": ["cmd.{{name()}}"]},
            "subs": -1,
            "data": -1,
            "payload": -1,
            "bearer_token": True,
        },
    }
    acc.options["signing_keys"] = [scope]
    gateway = await start()
    errors = NatsErrors()
    user, token = ids.user_jwt("A", signing_key=True, scoped=True, name="d1")
    nc = await nats_connect(gateway, errors=errors, user_credentials=ids.creds_file(token, user))
    try:
        await nc.publish("dev.d1.temp", b"x")
        await errors.none(nc)
        await nc.publish("dev.d2.temp", b"x")
        await errors.violation("publish", "dev.d2.temp")
    finally:
        await nc.close()
    # The template makes it a bearer token: MQTT accepts it.
    assert await mqtt_connack(gateway, 5, "u", token) == SUCCESS
    # A scoped user carrying its own permissions is refused.
    user, token = ids.user_jwt("A", signing_key=True, pub_allow=[">"])
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds_file(token, user))
