"""The one user table: the NATS server's order of checks, for every kind of connection."""

from __future__ import annotations

import base64

import bcrypt
import pytest

from conf import loads
from gateway.auth.nkeys import KeyPair
from gateway.auth.users import AuthenticationFailed, Credentials, UserTable
from gateway.options import build_options
from gateway.options.model import ConnectionType

MQTT = ConnectionType.MQTT
MQTT_WS = ConnectionType.MQTT_WS
STANDARD = ConnectionType.STANDARD
WEBSOCKET = ConnectionType.WEBSOCKET
USER_SEED = "SUAAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBH4FY"
USER_NKEY = "UDFJHLAXAUMHA4OWPOB4P7YO72AQR2HMIUYFOXLXE2DZGM633K7HYREV"
HASH = bcrypt.hashpw(b"hashed-secret", bcrypt.gensalt(4)).decode()


def table(text: str) -> UserTable:
    return UserTable(build_options(loads(text)))


USERS = f"""
authorization {{
  perms = {{ publish = ["sensors.>"], subscribe = ["cmd.>"] }}
  users = [
    {{user: sensor, password: s3cret, permissions: $perms, allowed_connection_types: ["MQTT"]}}
    {{user: browser, password: b, allowed_connection_types: ["MQTT_WS", "WEBSOCKET"]}}
    {{user: svc, password: "{HASH}"}}
    {{nkey: {USER_NKEY}, allowed_connection_types: ["STANDARD"]}}
  ]
}}
"""


async def test_no_auth_configured_accepts_anyone() -> None:
    users = table("port: 4222\n")
    assert not users.auth_required(MQTT)
    identity = await users.authenticate(MQTT, Credentials(username="x", password="y"))
    assert identity.name == ""
    assert identity.permissions.may_publish("anything")


async def test_password_user_on_an_allowed_kind() -> None:
    users = table(USERS)
    identity = await users.authenticate(MQTT, Credentials("sensor", "s3cret", "s3cret"))
    assert identity.name == "sensor"
    assert identity.method == "password"
    assert identity.permissions.may_publish("sensors.a")
    assert not identity.permissions.may_publish("cmd.a")


@pytest.mark.parametrize("kind", [STANDARD, WEBSOCKET, MQTT_WS])
async def test_user_refused_on_a_kind_it_is_not_allowed(kind: ConnectionType) -> None:
    users = table(USERS)
    with pytest.raises(AuthenticationFailed) as info:
        await users.authenticate(kind, Credentials("sensor", "s3cret"))
    assert info.value.not_authorized


async def test_mqtt_ws_is_not_covered_by_mqtt_and_vice_versa() -> None:
    users = table(USERS)
    assert (await users.authenticate(MQTT_WS, Credentials("browser", "b"))).name == "browser"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(MQTT, Credentials("browser", "b"))


async def test_wrong_password_and_unknown_user() -> None:
    users = table(USERS)
    with pytest.raises(AuthenticationFailed) as info:
        await users.authenticate(MQTT, Credentials("sensor", "nope"))
    assert not info.value.not_authorized
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(MQTT, Credentials("ghost", "x"))
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(MQTT, Credentials())


async def test_bcrypt_password() -> None:
    users = table(USERS)
    assert (await users.authenticate(STANDARD, Credentials("svc", "hashed-secret"))).name == "svc"
    # The second time comes from the cache of successes; still right.
    assert users.authenticate_now(STANDARD, Credentials("svc", "hashed-secret")).name == "svc"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(STANDARD, Credentials("svc", "hashed-secreT"))


async def test_nkey_user_signs_the_nonce() -> None:
    users = table(USERS)
    nonce = b"abcdefghijklmno"
    sig = base64.urlsafe_b64encode(KeyPair(USER_SEED).sign(nonce)).decode().rstrip("=")
    identity = await users.authenticate(STANDARD, Credentials(nkey=USER_NKEY, signature=sig), nonce)
    assert identity.name == USER_NKEY
    assert identity.method == "nkey"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(
            STANDARD, Credentials(nkey=USER_NKEY, signature=sig), b"another-nonce"
        )
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(STANDARD, Credentials(nkey=USER_NKEY), nonce)


async def test_no_auth_user_applies_to_clients_without_credentials() -> None:
    users = table(USERS + "no_auth_user: svc\n")
    assert (await users.authenticate(STANDARD, Credentials())).name == "svc"
    # Credentials that are presented are checked, not replaced.
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(STANDARD, Credentials("svc", "wrong"))


async def test_mqtt_no_auth_user_overrides_the_top_level_one() -> None:
    users = table(USERS + "no_auth_user: svc\nmqtt { no_auth_user: sensor }\n")
    assert (await users.authenticate(MQTT, Credentials())).name == "sensor"
    assert (await users.authenticate(STANDARD, Credentials())).name == "svc"


async def test_top_level_token_is_the_mqtt_password() -> None:
    users = table("authorization { token: t0ken }\n")
    assert users.auth_required(MQTT)
    identity = await users.authenticate(MQTT, Credentials("any", "t0ken", "t0ken"))
    assert identity.method == "token"
    assert (await users.authenticate(STANDARD, Credentials(token="t0ken"))).method == "token"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(STANDARD, Credentials(token="other"))


async def test_mqtt_override_replaces_simple_auth_for_mqtt_only() -> None:
    users = table(
        "authorization { user: nats, password: np }\n"
        "mqtt { authorization { username: dev, password: dp } }\n"
    )
    assert (await users.authenticate(MQTT, Credentials("dev", "dp"))).name == "dev"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(MQTT, Credentials("nats", "np"))
    assert (await users.authenticate(STANDARD, Credentials("nats", "np"))).name == "nats"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(STANDARD, Credentials("dev", "dp"))


async def test_mqtt_override_alone_requires_auth_for_mqtt_only() -> None:
    users = table("mqtt { authorization { token: mt } }\n")
    assert users.auth_required(MQTT)
    assert not users.auth_required(STANDARD)
    assert (await users.authenticate(MQTT, Credentials("x", "mt", "mt"))).method == "token"
    with pytest.raises(AuthenticationFailed):
        await users.authenticate(MQTT, Credentials("x", "bad", "bad"))


async def test_account_users_carry_their_account() -> None:
    users = table(
        "accounts { A { users: [{user: a, password: pa}] }, B { users: [{user: b, password: pb}] } }\n"
    )
    assert (await users.authenticate(STANDARD, Credentials("a", "pa"))).account == "A"
    assert (await users.authenticate(STANDARD, Credentials("b", "pb"))).account == "B"
