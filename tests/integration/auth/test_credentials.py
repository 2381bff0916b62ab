"""Credentials on every listener: users with plain and bcrypt passwords, a single
user, a token, nkeys, ``no_auth_user`` and the ``mqtt { }`` overrides.

MQTT clients send the token in the password field (any user name); an nkey
user can be used by MQTT only as a ``no_auth_user``. The ``mqtt { authorization
{ } }`` block replaces the top-level simple credentials for MQTT clients only.
"""

from __future__ import annotations

import asyncio
import base64
import json

import bcrypt
import pytest
from websockets.asyncio.client import connect as ws_connect

from gateway.auth.nkeys import KeyPair, Role, encode_seed
from gateway.mqtt.packets import Connack
from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import (
    BAD_USER_NAME_OR_PASSWORD,
    CONNACK_311_NOT_AUTHORIZED,
    NOT_AUTHORIZED,
    SUCCESS,
    USER_NKEY,
    USER_SEED,
    NatsErrors,
    connack_311_bytes,
    mqtt_connack,
    mqtt_connected,
    mqtt_session,
    nats_accepted,
    nats_connect,
    nats_refusal,
)
from tests.integration.mqtt.helpers import ConnectionClosedError

BCRYPT_HASH = bcrypt.hashpw(b"hashed-secret", bcrypt.gensalt(4)).decode()
assert BCRYPT_HASH.startswith("$2")
#: The NATS server writes bcrypt hashes as ``$2a$``; the bcrypt module makes ``$2b$``.
BCRYPT_2A = "$2a$" + BCRYPT_HASH[4:]

USERS = f"""
authorization {{
  users = [
    {{user: alice, password: plain-secret}}
    {{user: bob, password: "{BCRYPT_2A}"}}
  ]
}}
"""

REFUSED = "'Authorization Violation'"


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "plain-secret"), ("bob", "hashed-secret")]
)
async def test_user_password_is_accepted_on_every_listener(
    start_gateway: StartGateway, user: str, password: str
) -> None:
    gateway = await start_gateway(USERS)
    assert await nats_accepted(gateway, user=user, password=password)
    assert await nats_accepted(gateway, ws=True, user=user, password=password)
    for version in (4, 5):
        for ws in (False, True):
            assert await mqtt_connack(gateway, version, user, password, ws=ws) == SUCCESS


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("alice", "wrong"),
        ("bob", "wrong"),
        ("bob", BCRYPT_2A),  # the hash itself is not the password
        ("ghost", "plain-secret"),
    ],
    ids=["plain-wrong", "bcrypt-wrong", "bcrypt-hash-as-password", "unknown-user"],
)
async def test_bad_user_or_password_is_refused_on_every_listener(
    start_gateway: StartGateway, user: str, password: str
) -> None:
    gateway = await start_gateway(USERS)
    assert REFUSED in await nats_refusal(gateway, user=user, password=password)
    assert REFUSED in await nats_refusal(gateway, ws=True, user=user, password=password)
    assert await connack_311_bytes(gateway, user, password) == CONNACK_311_NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 4, user, password, ws=True) == NOT_AUTHORIZED  # rc 5
    assert await mqtt_connack(gateway, 5, user, password) == BAD_USER_NAME_OR_PASSWORD
    assert await mqtt_connack(gateway, 5, user, password, ws=True) == BAD_USER_NAME_OR_PASSWORD


async def test_mqtt5_refusal_reason_string_does_not_tell_which_user_names_exist(
    start_gateway: StartGateway,
) -> None:
    """The 5.0 CONNACK of a bad password and of an unknown user are the same, Reason String
    included, as NATS clients get 'Authorization Violation' for both: the details of a refusal
    are for the log, not for whoever is guessing user names."""
    gateway = await start_gateway(USERS)
    seen: list[tuple[int, str | None]] = []
    for user in ("alice", "ghost"):
        session = await mqtt_session(gateway, 5)
        try:
            connack = await session.connect(username=user, password=b"wrong")
            await session.closed()
        finally:
            await session.aclose()
        props = connack.properties
        seen.append((connack.reason_code, props.reason_string if props else None))
    assert seen[0] == seen[1] == (BAD_USER_NAME_OR_PASSWORD, "bad user name or password")


async def test_no_credentials_are_refused_when_users_exist(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    assert REFUSED in await nats_refusal(gateway)
    assert REFUSED in await nats_refusal(gateway, ws=True)
    assert await connack_311_bytes(gateway) == CONNACK_311_NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5) in (BAD_USER_NAME_OR_PASSWORD, NOT_AUTHORIZED)


async def test_top_level_single_user(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("authorization { user: admin, password: s3cret }\n")
    assert await nats_accepted(gateway, user="admin", password="s3cret")
    assert await nats_accepted(gateway, ws=True, user="admin", password="s3cret")
    assert REFUSED in await nats_refusal(gateway, user="admin", password="nope")
    assert REFUSED in await nats_refusal(gateway, user="other", password="s3cret")
    assert await mqtt_connack(gateway, 4, "admin", "s3cret") == SUCCESS
    assert await mqtt_connack(gateway, 5, "admin", "s3cret", ws=True) == SUCCESS
    assert await connack_311_bytes(gateway, "admin", "nope") == CONNACK_311_NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5, "other", "s3cret") == BAD_USER_NAME_OR_PASSWORD


async def test_top_level_token_nats_auth_token_and_mqtt_password(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway('authorization { token: "t0ken" }\n')
    assert await nats_accepted(gateway, token="t0ken")
    assert await nats_accepted(gateway, ws=True, token="t0ken")
    assert REFUSED in await nats_refusal(gateway, token="wrong")
    assert REFUSED in await nats_refusal(gateway)
    # MQTT: the token goes in the password field, with any user name.
    assert await mqtt_connack(gateway, 4, "anyone", "t0ken") == SUCCESS
    assert await mqtt_connack(gateway, 5, "someone-else", "t0ken", ws=True) == SUCCESS
    assert await connack_311_bytes(gateway, "anyone", "wrong") == CONNACK_311_NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5, "anyone", "wrong") == BAD_USER_NAME_OR_PASSWORD


NKEY_USERS = f"""
authorization {{
  users = [
    {{nkey: {USER_NKEY}, permissions: {{publish: ["nk.>"]}}}}
    {{user: alice, password: pw}}
  ]
}}
"""


async def test_nkey_user_with_nats_py_seed(start_gateway: StartGateway) -> None:
    pytest.importorskip("nkeys", reason="nats-py needs the nkeys package for nkeys_seed_str")
    gateway = await start_gateway(NKEY_USERS)
    for ws in (False, True):
        errors = NatsErrors()
        nc = await nats_connect(gateway, ws, errors, nkeys_seed_str=USER_SEED)
        try:
            sub = await nc.subscribe("nk.x")
            await nc.publish("nk.x", b"signed")
            assert (await sub.next_msg(timeout=5)).data == b"signed"
            # The nkey user's permissions apply.
            await nc.publish("elsewhere", b"x")
            await errors.violation("Publish", "elsewhere")
        finally:
            await nc.close()


async def test_unknown_nkey_is_refused(start_gateway: StartGateway) -> None:
    pytest.importorskip("nkeys", reason="nats-py needs the nkeys package for nkeys_seed_str")
    gateway = await start_gateway(NKEY_USERS)
    other_seed = encode_seed(bytes(range(32)), Role.USER)
    assert KeyPair(other_seed).public_key != USER_NKEY
    assert REFUSED in await nats_refusal(gateway, nkeys_seed_str=other_seed)
    assert REFUSED in await nats_refusal(gateway, ws=True, nkeys_seed_str=other_seed)


async def test_nkey_user_signs_the_nonce_over_tcp_and_websocket(
    start_gateway: StartGateway,
) -> None:
    # The protocol by hand (runs without the nkeys package nats-py needs).
    gateway = await start_gateway(NKEY_USERS)
    assert gateway.nats is not None and gateway.websocket is not None
    pair = KeyPair(USER_SEED)
    assert pair.public_key == USER_NKEY

    def connect_line(info: bytes, seed_pair: KeyPair) -> bytes:
        nonce = json.loads(info[5:])["nonce"]
        sig = base64.urlsafe_b64encode(seed_pair.sign(nonce.encode())).decode().rstrip("=")
        connect = {"verbose": False, "nkey": USER_NKEY, "sig": sig}
        return b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n"

    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)
    try:
        writer.write(connect_line(await reader.readline(), pair))
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
    finally:
        writer.close()
    impostor = KeyPair(encode_seed(bytes(range(32)), Role.USER))
    async with ws_connect(f"ws://127.0.0.1:{gateway.websocket.port}/") as ws:
        info = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(info, bytes)
        await ws.send(connect_line(info, pair))
        assert await asyncio.wait_for(ws.recv(), 5) == b"PONG\r\n"
    async with ws_connect(f"ws://127.0.0.1:{gateway.websocket.port}/") as ws:
        info = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(info, bytes)
        await ws.send(connect_line(info, impostor))  # USER_NKEY, signed by another key
        assert await asyncio.wait_for(ws.recv(), 5) == b"-ERR 'Authorization Violation'\r\n"


async def test_mqtt_cannot_log_in_as_an_nkey_user(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(NKEY_USERS)
    # MQTT has no nonce signature: the public key as a user name (or password) is refused.
    assert await connack_311_bytes(gateway, USER_NKEY, "") == CONNACK_311_NOT_AUTHORIZED
    assert await mqtt_connack(gateway, 5, USER_NKEY, USER_SEED) != SUCCESS
    assert await mqtt_connack(gateway, 5, "alice", "pw") == SUCCESS


async def test_mqtt_no_auth_user_may_name_an_nkey_user(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(NKEY_USERS + f"mqtt {{ no_auth_user: {USER_NKEY} }}\n")
    session = await mqtt_connected(gateway, 5)
    # The nkey user's permissions: publish only to nk.>.
    assert (await session.publish("nk/ok", b"x", qos=1)).reason_code == SUCCESS  # type: ignore[union-attr]
    assert (await session.publish("other", b"x", qos=1)).reason_code == NOT_AUTHORIZED  # type: ignore[union-attr]
    await session.disconnect()
    # NATS clients have no no_auth_user here.
    assert REFUSED in await nats_refusal(gateway)


NO_AUTH = """
authorization {
  users = [
    {user: guest, password: g, permissions: {publish: ["guest.>"], subscribe: ["guest.>", "_INBOX.>"]}}
    {user: device, password: d, permissions: {publish: ["device.>"], subscribe: ["device.>"]}}
    {user: admin, password: a}
  ]
}
no_auth_user: guest
"""


async def test_no_auth_user_applies_to_clients_without_credentials(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(NO_AUTH)
    for ws in (False, True):
        errors = NatsErrors()
        nc = await nats_connect(gateway, ws, errors)
        try:
            await nc.publish("device.x", b"x")
            await errors.violation("Publish", "device.x")
            sub = await nc.subscribe("guest.x")
            await nc.publish("guest.x", b"as guest")
            assert (await sub.next_msg(timeout=5)).data == b"as guest"
        finally:
            await nc.close()
    for version in (4, 5):
        session = await mqtt_connected(gateway, version)
        assert await session.subscribe("guest/x", "device/x") == [0, 0x80 if version == 4 else 0x87]
        await session.disconnect()
    # Credentials, when given, still have to be right.
    assert REFUSED in await nats_refusal(gateway, user="admin", password="wrong")
    assert await mqtt_connack(gateway, 5, "admin", "wrong") == BAD_USER_NAME_OR_PASSWORD
    assert await nats_accepted(gateway, user="admin", password="a")


async def test_mqtt_no_auth_user_overrides_the_top_level_one_for_mqtt_only(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(NO_AUTH + "mqtt { no_auth_user: device }\n")
    for ws in (False, True):
        session = await mqtt_connected(gateway, 5, ws=ws)
        assert (await session.publish("device/x", b"x", qos=1)).reason_code == SUCCESS  # type: ignore[union-attr]
        assert (await session.publish("guest/x", b"x", qos=1)).reason_code == NOT_AUTHORIZED  # type: ignore[union-attr]
        await session.disconnect()
    # NATS clients (TCP and WebSocket) are still the top-level guest.
    for ws in (False, True):
        errors = NatsErrors()
        nc = await nats_connect(gateway, ws, errors)
        try:
            await nc.publish("device.x", b"x")
            await errors.violation("Publish", "device.x")
        finally:
            await nc.close()


OVERRIDE = """
authorization { user: admin, password: adminpw }
mqtt { authorization { username: dev, password: devpw } }
"""


async def test_mqtt_authorization_override_replaces_top_level_user_for_mqtt_only(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(OVERRIDE)
    for ws in (False, True):
        assert await mqtt_connack(gateway, 4, "dev", "devpw", ws=ws) == SUCCESS
        assert await mqtt_connack(gateway, 5, "dev", "devpw", ws=ws) == SUCCESS
        assert await mqtt_connack(gateway, 5, "admin", "adminpw", ws=ws) == (
            BAD_USER_NAME_OR_PASSWORD
        )
    assert await connack_311_bytes(gateway, "admin", "adminpw") == CONNACK_311_NOT_AUTHORIZED
    for ws in (False, True):
        assert await nats_accepted(gateway, ws=ws, user="admin", password="adminpw")
        assert REFUSED in await nats_refusal(gateway, ws=ws, user="dev", password="devpw")


async def test_mqtt_authorization_token_override(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(
        'authorization { token: "nats-tok" }\nmqtt { authorization { token: "mqtt-tok" } }\n'
    )
    assert await mqtt_connack(gateway, 4, "any", "mqtt-tok") == SUCCESS
    assert await mqtt_connack(gateway, 5, "any", "mqtt-tok", ws=True) == SUCCESS
    assert await mqtt_connack(gateway, 5, "any", "nats-tok") == BAD_USER_NAME_OR_PASSWORD
    assert await nats_accepted(gateway, token="nats-tok")
    assert REFUSED in await nats_refusal(gateway, token="mqtt-tok")


async def test_mqtt_override_alone_requires_auth_for_mqtt_only(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway("mqtt { authorization { user: dev, password: devpw } }\n")
    assert await mqtt_connack(gateway, 5, "dev", "devpw") == SUCCESS
    assert await mqtt_connack(gateway, 5) != SUCCESS
    assert await connack_311_bytes(gateway, "dev", "bad") == CONNACK_311_NOT_AUTHORIZED
    assert await nats_accepted(gateway)  # NATS needs no credentials


async def test_mqtt_authorization_timeout_closes_a_silent_client(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(
        "authorization { user: admin, password: adminpw, timeout: 30 }\n"
        "mqtt { authorization { user: dev, password: devpw, timeout: 0.3 } }\n"
    )
    session = await mqtt_session(gateway, 4)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # No CONNECT is sent: the MQTT override's 0.3 s applies, not the top-level 30 s.
    assert await session.closed(timeout=3) == []
    assert loop.time() - started < 3
    with pytest.raises(ConnectionClosedError):
        await session.expect(Connack, timeout=0.1)
