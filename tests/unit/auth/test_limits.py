"""Connection limits from user and account JWTs (``gateway.auth.limits``), as nats-server computes them."""

from __future__ import annotations

from gateway.auth.jwt_cli import issue_account, issue_operator, issue_user
from gateway.auth.limits import UNLIMITED, Limits, connection_limits, jwt_limit, tighter
from gateway.auth.nkeys import Role
from gateway.options.model import ConnectionType
from tests.unit.auth.test_jwt_operator import ACC, OP, auth, config, key

ALL = {"subs": -1, "payload": -1, "data": -1}


def test_minus_one_is_unlimited_and_a_missing_v2_limit_is_zero() -> None:
    assert jwt_limit(-1, absent=0) is None
    assert jwt_limit(None, absent=0) == 0
    assert jwt_limit(None, absent=-1) is None
    assert jwt_limit(7, absent=0) == 7
    assert jwt_limit(True, absent=0) == 0  # not a number: as if missing


def test_smallest_of_user_account_and_server() -> None:
    assert connection_limits(ALL, ALL) == UNLIMITED
    assert UNLIMITED.unlimited and not Limits(payload=1).unlimited
    both = connection_limits(
        {"subs": 10, "payload": 100, "data": 5}, {"subs": 3, "payload": -1, "data": 9}
    )
    assert both == Limits(subscriptions=3, payload=100, data=5)
    server = connection_limits(ALL, ALL, max_payload=1000, max_subscriptions=50)
    assert server == Limits(subscriptions=50, payload=1000, data=None)
    assert connection_limits({"payload": 5000, "subs": 1}, ALL, max_payload=1000).payload == 1000
    assert tighter(None, None) is None and tighter(4, None) == 4 and tighter(4, 2) == 2


def test_missing_limits_in_v2_jwts_allow_nothing_but_v1_jwts_are_unlimited() -> None:
    assert connection_limits({}, ALL) == Limits(subscriptions=0, payload=0, data=0)
    assert connection_limits(ALL, {}) == Limits(subscriptions=0, payload=0, data=0)
    assert connection_limits({}, {}, user_version=1, account_version=1) == UNLIMITED


def test_operator_auth_gives_the_limits_of_user_account_and_scope() -> None:
    signing = key(Role.ACCOUNT)
    scope = {
        "kind": "user_scope",
        "key": signing.public_key,
        "role": "r",
        "template": {"subs": 2, "payload": 64, "data": -1, "bearer_token": True},
    }
    account = issue_account(
        OP, ACC.public_key, "A", max_subscriptions=5, max_payload=-1, signing_keys=[scope]
    )
    a = auth(config(issue_operator(OP, "OP"), {ACC.public_key: account}, "max_payload: 4096"))
    user = key(Role.USER)
    token = issue_user(ACC, user.public_key, "u", bearer=True, max_subscriptions=9, max_data=10)
    limits = a.identity_parts(ConnectionType.STANDARD, token, None, None, None)[5]
    assert limits == Limits(subscriptions=5, payload=4096, data=10)
    scoped = issue_user(signing, user.public_key, "s", issuer_account=ACC.public_key, scoped=True)
    limits = a.identity_parts(ConnectionType.MQTT, scoped, None, None, None)[5]
    assert limits == Limits(subscriptions=2, payload=64, data=None)
