"""OperatorAuth configuration checks, trust roots, and the pure parts of the validation chain."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conf import loads
from gateway.auth.jwt_cli import issue_account, issue_operator, issue_user, new_seed
from gateway.auth.nkeys import KeyPair, Role
from gateway.auth.operator import (
    DirectoryResolver,
    OperatorAuth,
    OperatorError,
    Refused,
    _window_end,
)
from gateway.options import build_options
from gateway.options.model import ConnectionType
from tests.unit.auth.test_jwt import V1_OPERATOR


def key(role: Role) -> KeyPair:
    return KeyPair(new_seed(role))


OP, OP_SK, SYS, ACC = key(Role.OPERATOR), key(Role.OPERATOR), key(Role.ACCOUNT), key(Role.ACCOUNT)


def config(operator: str, preload: dict[str, str], extra: str = "") -> str:
    lines = [f'operator: "{operator}"', "resolver: MEMORY", "resolver_preload {"]
    lines += [f'  {k}: "{v}"' for k, v in preload.items()]
    return "\n".join([*lines, "}", extra])


def auth(text: str) -> OperatorAuth:
    return OperatorAuth(build_options(loads(text)))


def test_system_account_must_be_preloaded() -> None:
    op = issue_operator(OP, "OP", system_account=SYS.public_key)
    with pytest.raises(OperatorError, match="Can't set system account"):
        auth(config(op, {ACC.public_key: issue_account(OP, ACC.public_key, "A")}))
    ok = auth(config(op, {SYS.public_key: issue_account(OP, SYS.public_key, "SYS")}))
    assert ok.system_account == SYS.public_key


def test_system_account_must_match_the_operator() -> None:
    op = issue_operator(OP, "OP", system_account=SYS.public_key)
    preload = {
        SYS.public_key: issue_account(OP, SYS.public_key, "SYS"),
        ACC.public_key: issue_account(OP, ACC.public_key, "A"),
    }
    with pytest.raises(OperatorError, match="must be identical"):
        auth(config(op, preload, f"system_account: {ACC.public_key}"))


def test_bad_operator_and_preload() -> None:
    op = issue_operator(OP, "OP")
    user_jwt = issue_user(ACC, key(Role.USER).public_key, "u")
    with pytest.raises(OperatorError, match="error parsing operator JWT"):
        auth(config(user_jwt, {}))
    with pytest.raises(OperatorError, match="does not match"):
        auth(config(op, {SYS.public_key: issue_account(OP, ACC.public_key, "A")}))
    tampered = issue_account(OP, ACC.public_key, "A")[:-4] + "AAAA"
    with pytest.raises(OperatorError, match="invalid account JWT"):
        auth(config(op, {ACC.public_key: tampered}))


def test_operator_from_a_file_and_v1_inline(tmp_path: Path) -> None:
    path = tmp_path / "op.jwt"
    path.write_text(issue_operator(OP, "OP", signing_keys=[OP_SK.public_key]) + "\n")
    a = auth(config(str(path), {}))
    assert a.trusted == {OP.public_key, OP_SK.public_key}
    v1 = auth(config(V1_OPERATOR, {}))
    assert len(v1.trusted) == 4


def test_strict_signing_key_usage() -> None:
    op = issue_operator(OP, "OP", signing_keys=[OP_SK.public_key], strict_signing_key_usage=True)
    by_identity = issue_account(OP, ACC.public_key, "A")
    a = auth(config(op, {ACC.public_key: by_identity}))
    assert OP.public_key not in a.trusted
    with pytest.raises(Refused, match="not issued by a trusted operator"):
        a.account(ACC.public_key)
    # Issued by the strict signing key: trusted, but the account key itself cannot sign users.
    b = auth(config(op, {ACC.public_key: issue_account(OP_SK, ACC.public_key, "A")}))
    user = key(Role.USER)
    token = issue_user(ACC, user.public_key, "u", bearer=True)
    with pytest.raises(Refused, match="signing keys"):
        b.authenticate(ConnectionType.MQTT, token, None, None, "127.0.0.1")


def test_authenticate_returns_permissions_and_grant() -> None:
    op = issue_operator(OP, "OP")
    a = auth(config(op, {ACC.public_key: issue_account(OP, ACC.public_key, "A")}))
    user = key(Role.USER)
    token = issue_user(ACC, user.public_key, "u", bearer=True, pub_allow=["a.>"], expires_in=60)
    name, account, permissions, model, grant, limits = a.identity_parts(
        ConnectionType.MQTT, token, None, None, "127.0.0.1"
    )
    assert (name, account) == (user.public_key, ACC.public_key)
    assert permissions.may_publish("a.b") and not permissions.may_publish("b")
    assert model.nkey == user.public_key and model.account == ACC.public_key
    assert grant.bearer and grant.expires is not None
    assert time.time() + 55 < grant.expires <= time.time() + 62
    # -1 everywhere: the server's max_payload (1 MB by default) is the only limit.
    assert (limits.subscriptions, limits.payload, limits.data) == (None, 1024 * 1024, None)


def test_directory_resolver_reports_changes(tmp_path: Path) -> None:
    resolver = DirectoryResolver(str(tmp_path), {ACC.public_key: "preloaded"})
    assert resolver.fetch(ACC.public_key) == "preloaded"
    (tmp_path / f"{ACC.public_key}.jwt").write_text("first\n")
    assert resolver.changed() == [ACC.public_key]
    assert resolver.fetch(ACC.public_key) == "first"
    assert resolver.changed() == []
    (tmp_path / f"{ACC.public_key}.jwt").write_text("second, longer\n")
    assert resolver.changed() == [ACC.public_key]
    (tmp_path / f"{ACC.public_key}.jwt").unlink()
    assert resolver.changed() == [ACC.public_key]
    assert resolver.fetch(ACC.public_key) == "preloaded"


def test_time_windows_wrap_midnight() -> None:
    late = datetime(2030, 1, 1, 23, 30, tzinfo=UTC).timestamp()
    end = _window_end((("22:00:00", "02:00:00"),), "UTC", late)
    assert end == datetime(2030, 1, 2, 2, 0, tzinfo=UTC).timestamp()
    early = datetime(2030, 1, 2, 1, 0, tzinfo=UTC).timestamp()
    assert _window_end((("22:00:00", "02:00:00"),), "UTC", early) == end
    assert _window_end((("08:00:00", "17:00:00"),), "UTC", late) is None
    with pytest.raises(Refused, match="times_location"):
        _window_end((("08:00:00", "17:00:00"),), "Nowhere/Land", late)
    with pytest.raises(Refused, match="HH:MM:SS"):
        _window_end((("8am", "17:00:00"),), "UTC", late)
