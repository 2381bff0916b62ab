"""Options for who may connect: authorization, users, permissions, accounts, operator mode."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from conf import ConfigErrors, loads
from gateway.options import (
    ConnectionType,
    Options,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    build_options,
)

BCRYPT = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG"


def nkey(role: str, seed: int) -> str:
    """A public nkey of ``role``, encoded independently of the code under test."""
    body = bytes([(ord(role) - ord("A")) << 3]) + bytes([seed]) * 32
    crc = 0
    for byte in body:
        for bit in range(8):
            top = ((crc >> 15) & 1) ^ ((byte >> (7 - bit)) & 1)
            crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return base64.b32encode(body + crc.to_bytes(2, "little")).decode().rstrip("=")


USER_KEY = nkey("U", 1)
ACCOUNT_KEY = nkey("A", 2)
OPERATOR_KEY = nkey("O", 3)
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJ4In0.c2ln"


def build(text: str) -> Options:
    return build_options(loads(text, "a.conf"))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        build(text)
    return [str(e) for e in info.value.errors]


# -- the NATS MQTT documentation's example -----------------------------------------------------


def test_the_mqtt_perms_example_from_the_nats_docs() -> None:
    options = build(
        """
        authorization {
          mqtt_perms = {
            publish = ["baz"]
            subscribe = ["foo", "bar", "$MQTT.sub.>"]
          }
          users = [
            {user: mqtt, password: pass, permissions: $mqtt_perms, allowed_connection_types: ["MQTT"]}
          ]
        }
        mqtt { port: 1883 }
        """
    )
    (user,) = options.authorization.users
    assert (user.username, user.password, user.account) == ("mqtt", "pass", None)
    assert user.permissions is not None
    assert user.permissions.publish == SubjectPermission(allow=("baz",))
    assert user.permissions.subscribe == SubjectPermission(allow=("foo", "bar", "$MQTT.sub.>"))
    assert user.allowed_connection_types == frozenset({ConnectionType.MQTT})
    assert user.allows(ConnectionType.MQTT) and not user.allows(ConnectionType.STANDARD)
    assert options.warnings == ()


# -- simple credentials ----------------------------------------------------------------------------


def test_single_user_and_timeout() -> None:
    auth = build("authorization { user: a, pass: b, timeout: 3 }").authorization
    assert (auth.user, auth.password, auth.timeout) == ("a", "b", 3.0)


def test_token() -> None:
    assert build("authorization { token: s3cr3t }").authorization.token == "s3cr3t"


def test_auth_timeout_defaults_to_two_seconds() -> None:
    assert build("authorization { token: t }").authorization.timeout == 2.0


def test_secrets_stay_out_of_repr() -> None:
    options = build("authorization { users: [ {user: a, password: hunter2} ] }")
    assert "hunter2" not in repr(options)


# -- users -------------------------------------------------------------------------------------------


def test_users_with_bcrypt_nkey_and_connection_type_aliases() -> None:
    options = build(
        f"""authorization {{
          users: [
            {{user: alice, password: "{BCRYPT}", connection_types: [standard, mqtt_ws]}}
            {{nkey: {USER_KEY}, clients: WEBSOCKET}}
            {{username: carol, pass: plain, allowed_connection_types: [In_Process, LEAFNODE_WS]}}
          ]
        }}"""
    )
    alice, nk, carol = options.authorization.users
    assert alice.password_is_bcrypt and not carol.password_is_bcrypt
    assert alice.allowed_connection_types == {ConnectionType.STANDARD, ConnectionType.MQTT_WS}
    assert nk.nkey == USER_KEY and nk.name == USER_KEY and nk.username is None
    assert nk.allowed_connection_types == {ConnectionType.WEBSOCKET}
    assert carol.allowed_connection_types == {ConnectionType.IN_PROCESS, ConnectionType.LEAFNODE_WS}


def test_default_permissions_apply_to_users_without_their_own() -> None:
    options = build(
        """authorization {
          default_permissions { publish: "pub.>" }
          users: [ {user: a, password: x}, {user: b, password: y, permissions: {publish: b}} ]
        }"""
    )
    a, b = options.authorization.users
    assert a.permissions is not None and a.permissions.publish == SubjectPermission(
        allow=("pub.>",)
    )
    assert b.permissions is not None and b.permissions.publish == SubjectPermission(allow=("b",))


def test_no_auth_user_names_a_known_user() -> None:
    options = build(
        "authorization { users: [ {user: anon, password: x} ] }\nno_auth_user: anon\n"
        "mqtt { no_auth_user: anon }"
    )
    assert options.no_auth_user == "anon"
    assert options.mqtt.no_auth_user == "anon"


def test_no_auth_user_may_sit_in_the_authorization_block() -> None:
    options = build("authorization { no_auth_user: anon, users: [ {user: anon, password: x} ] }")
    assert options.no_auth_user == "anon"


# -- permissions ---------------------------------------------------------------------------------------


def perms_of(permissions: str) -> Permissions:
    options = build(
        f"authorization {{ users: [ {{user: u, password: p, permissions: {permissions}}} ] }}"
    )
    found = options.authorization.users[0].permissions
    assert found is not None
    return found


def test_permission_forms() -> None:
    p = perms_of('{ pub: "a.b", sub: ["c.*", "d.>", "e.f workers"] }')
    assert p.publish == SubjectPermission(allow=("a.b",))
    assert p.subscribe == SubjectPermission(allow=("c.*", "d.>", "e.f workers"))
    p = perms_of('{ publish: { allow: ["x.>"], deny: "x.secret" }, subscribe: { deny: [">"] } }')
    assert p.publish == SubjectPermission(allow=("x.>",), deny=("x.secret",))
    assert p.subscribe == SubjectPermission(allow=None, deny=(">",))


def test_allow_responses_turns_off_the_blanket_publish_allow() -> None:
    p = perms_of("{ subscribe: req, allow_responses: true }")
    assert p.allow_responses == ResponsePermission(max_msgs=1, expires=120.0)
    assert p.publish == SubjectPermission(allow=())
    p = perms_of('{ publish: { deny: "x" }, allow_responses: { max: 5, expires: "1m" } }')
    assert p.allow_responses == ResponsePermission(max_msgs=5, expires=60.0)
    assert p.publish == SubjectPermission(allow=(), deny=("x",))


# -- accounts ------------------------------------------------------------------------------------------------


def test_accounts_with_users_exports_imports_and_jetstream() -> None:
    options = build(
        f"""accounts {{
          A: {{
            nkey: {ACCOUNT_KEY}
            jetstream: enabled
            users: [ {{user: a1, password: x}} ]
            exports: [ {{stream: "public.>"}}, {{service: "help", accounts: [B], response: stream}} ]
          }}
          B: {{
            jetstream: {{ max_mem: 1GB, max_file: "2G", max_streams: 10 }}
            users: [ {{user: b1, password: y}} ]
            imports: [ {{stream: {{account: A, subject: "public.>"}}, prefix: from_a}}
                       {{service: {{account: A, subject: help}}, to: "a.help"}} ]
            limits: {{ max_connections: 5 }}
          }}
        }}
        system_account: A"""
    )
    a, b = options.accounts
    assert a.nkey == ACCOUNT_KEY and a.jetstream is not None
    assert [u.account for u in options.users] == ["A", "B"]
    assert a.exports[1].kind == "service" and a.exports[1].accounts == ("B",)
    assert a.exports[1].response_type == "stream"
    assert (
        b.jetstream is not None
        and b.jetstream.max_memory == 1 << 30
        and b.jetstream.max_store == 2 << 30
    )
    assert b.imports[0].prefix == "from_a" and b.imports[1].to == "a.help"
    assert b.limits.max_connections == 5
    assert options.system_account == "A"


def test_accounts_as_a_list_of_names() -> None:
    assert [a.name for a in build("accounts: [A, B]").accounts] == ["A", "B"]


# -- operator mode ---------------------------------------------------------------------------------------------


def test_operator_mode_structure() -> None:
    options = build(
        f"""operator: "{JWT}"
        system_account: {ACCOUNT_KEY}
        resolver: MEMORY
        resolver_preload: {{ {ACCOUNT_KEY}: "{JWT}" }}"""
    )
    assert options.operator_mode and options.operators == (JWT,)
    assert options.resolver is not None and options.resolver.kind == "memory"
    assert dict(options.resolver_preload) == {ACCOUNT_KEY: JWT}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('resolver: URL("http://localhost:9090/jwt/v1/accounts/")', "url"),
        ('resolver { type: full, dir: "./jwt", allow_delete: true, interval: "2m" }', "full"),
        ('resolver { type: cache, dir: "./jwt", ttl: "1h", limit: 100 }', "cache"),
    ],
)
def test_resolver_kinds(text: str, kind: str) -> None:
    options = build(f'operator: "{JWT}"\n{text}')
    assert options.resolver is not None and options.resolver.kind == kind


def test_operator_file_path(tmp_path: Path) -> None:
    path = tmp_path / "op.jwt"
    path.write_text(JWT)
    options = build(f'operators: ["{path}"]\nresolver: MEM')
    assert options.operators == (str(path),)


def test_trusted_keys() -> None:
    assert build(f"trusted_keys: [{OPERATOR_KEY}]").trusted_keys == (OPERATOR_KEY,)


# -- validation errors ----------------------------------------------------------------------------------------

AUTH_ERRORS = [
    (
        'authorization { users: [ {user: a, password: x, allowed_connection_types: ["MQTT", "BOGUS"]} ] }',
        'a.conf:1:84: invalid connection type "BOGUS"; allowed: STANDARD, WEBSOCKET, LEAFNODE, '
        "LEAFNODE_WS, MQTT, MQTT_WS, IN_PROCESS",
    ),
    (
        'authorization { users: [ {user: a, password: x, clients: "MQTTT"} ] }',
        'a.conf:1:49: invalid connection type "MQTTT"; did you mean "MQTT"?; allowed: STANDARD, '
        "WEBSOCKET, LEAFNODE, LEAFNODE_WS, MQTT, MQTT_WS, IN_PROCESS",
    ),
    (
        "authorization {\n  users: [\n    {user: a, password: x}\n    {user: a, password: y}\n  ]\n}",
        'a.conf:4:6: Duplicate user "a" detected (first defined at a.conf:3:6)',
    ),
    (
        "authorization { users: [ {user: a, password: x} ] }\naccounts { B { users: [ {user: a, password: y} ] } }",
        'a.conf:2:26: Duplicate user "a" detected (first defined at a.conf:1:27)',
    ),
    (
        "authorization { users: [ {user: anon, password: x} ] }\nno_auth_user: anonn",
        'a.conf:2:1: no_auth_user "anonn" is not a known user; did you mean "anon"?; known users: anon',
    ),
    (
        "mqtt { no_auth_user: ghost }",
        'a.conf:1:8: no_auth_user "ghost" is not a known user; no users are defined',
    ),
    (
        "websocket { no_tls: true, no_auth_user: ghost }\nauthorization { users: [ {user: a, password: b} ] }",
        'a.conf:1:27: no_auth_user "ghost" is not a known user; known users: a',
    ),
    (
        "authorization { users: [ {nkey: UABC} ] }",
        'a.conf:1:27: Not a valid public nkey for a user: "UABC"',
    ),
    (
        f"authorization {{ users: [ {{nkey: {ACCOUNT_KEY}}} ] }}",
        f'a.conf:1:27: Not a valid public nkey for a user: "{ACCOUNT_KEY}"',
    ),
    (
        f"authorization {{ users: [ {{nkey: {USER_KEY}, user: x}} ] }}",
        "a.conf:1:27: Nkey users do not take usernames or passwords",
    ),
    ("authorization { users: [ {password: x} ] }", "a.conf:1:26: User entry requires a user"),
    (
        'authorization { users: [ {user: a, password: "$2a$11$short"} ] }',
        "a.conf:1:36: password looks like a bcrypt hash but is malformed",
    ),
    (
        "authorization { users: [ {user: a, pasword: x} ] }",
        'a.conf:1:36: unknown field "pasword" in a user entry; did you mean "password"?',
    ),
    (
        "authorization { user: a, password: b, token: c }",
        "a.conf:1:1: Cannot have a user/pass and token",
    ),
    (
        "authorization { token: c, users: [ {user: a} ] }",
        "a.conf:1:1: Can not have a token and a users array",
    ),
    (
        "authorization { users: { user: a } }",
        "a.conf:1:17: Expected users field to be an array, got a map",
    ),
    (
        'authorization { users: [ {user: a, permissions: { publish: "foo..bar" }} ] }',
        'a.conf:1:51: subject "foo..bar" is not a valid subject: empty token',
    ),
    (
        'authorization { users: [ {user: a, permissions: { subscribe: ["ok", "a.>.b"] }} ] }',
        'a.conf:1:69: subject "a.>.b" is not a valid subject: ">" must be the last token',
    ),
    (
        'authorization { users: [ {user: a, permissions: { publish: "a.b queue" }} ] }',
        'a.conf:1:51: subject "a.b queue" is not a valid subject',
    ),
    (
        'authorization { users: [ {user: a, permissions: { publish: { allow: "x", permit: "y" } }} ] }',
        'a.conf:1:74: unknown field "permit" in "publish" permissions (only allow and deny)',
    ),
    (
        'authorization { users: [ {user: a, permissions: { publsh: "x" }} ] }',
        'a.conf:1:51: unknown field "publsh" in permissions; did you mean "publish"?',
    ),
    (
        "authorization { users: [ {user: a, permissions: { allow_responses: 5 }} ] }",
        "a.conf:1:51: error parsing response permissions, expected a boolean or a map",
    ),
    (
        "mqtt { authorization { username: m } }\nauthorization { users: [ {user: a} ] }",
        "a.conf:1:1: mqtt authentication username not compatible with presence of users/nkeys",
    ),
    ("accounts { $G { } }", 'a.conf:1:12: "$G" is a Reserved Account'),
    ("accounts { A { nkey: AAA } }", 'a.conf:1:16: Not a valid public nkey for an account: "AAA"'),
    (
        'accounts { A { imports: [ {stream: {account: C, subject: "x"}} ] } }',
        'a.conf:1:37: "C" account not defined for stream import of "x"',
    ),
    (
        'accounts { A { exports: [ {stream: "x", accounts: [Q]} ] } }',
        'a.conf:1:41: "Q" account not defined for stream export of "x"',
    ),
    (
        'accounts { A { exports: [ {stream: "x", response: single} ] } }',
        "a.conf:1:41: Detected response directive on non-service",
    ),
    (
        "accounts { A { jetstream: sometimes } }",
        "a.conf:1:16: Expected 'enabled' or 'disabled' for string value, got 'sometimes'",
    ),
    ("accounts: [A, A]", "a.conf:1:15: Duplicate Account Entry: A"),
    (
        "accounts { A { } }\nsystem_account: SYS",
        'a.conf:2:1: system_account "SYS" is not a defined account',
    ),
    (
        f'operator: "{JWT}"\naccounts {{ A {{ }} }}',
        "a.conf:2:1: operators do not allow Accounts to be configured directly",
    ),
    (
        f'operator: "{JWT}"\nauthorization {{ users: [ {{user: a}} ] }}',
        "a.conf:2:1: operators do not allow users to be configured directly",
    ),
    (
        f'operator: "{JWT}"\nno_auth_user: a',
        "a.conf:2:1: no_auth_user not allowed in operator mode",
    ),
    (
        'operator: "./missing.jwt"',
        'a.conf:1:1: error parsing operator JWT: "./missing.jwt" is neither a readable file nor an inline JWT',
    ),
    (
        f'operator: "{JWT}"\nresolver: DISK',
        'a.conf:2:1: error parsing account resolver, should be MEM or URL("url") or a map containing '
        "dir and type state=[FULL|CACHE]",
    ),
    (
        f'operator: "{JWT}"\nresolver {{ type: cache, dir: "./x", allow_delete: true }}',
        "a.conf:2:37: CACHE does not accept allow_delete",
    ),
    (
        f'operator: "{JWT}"\nresolver {{ type: full, dir: "./x", ttl: "1h" }}',
        "a.conf:2:36: FULL does not accept ttl",
    ),
    (
        f'operator: "{JWT}"\nresolver {{ type: full, dir: "./x", hard_delete: true }}',
        "a.conf:2:36: hard_delete requires allow_delete",
    ),
    (
        f'operator: "{JWT}"\nresolver {{ type: full }}',
        "a.conf:2:1: dir has no value and needs to point to a directory",
    ),
    (
        f'operator: "{JWT}"\nresolver: MEMORY\nresolver_preload {{ AXYZ: "{JWT}" }}',
        'a.conf:3:20: resolver_preload key "AXYZ" is not a public account nkey',
    ),
    (
        f'operator: "{JWT}"\nresolver: MEMORY\nresolver_preload {{ {ACCOUNT_KEY}: "junk" }}',
        "a.conf:3:20: invalid account JWT",
    ),
    (
        f'operator: "{JWT}"\nresolver: URL("http://x/")\nresolver_preload {{ {ACCOUNT_KEY}: "{JWT}" }}',
        "a.conf:3:1: resolver preloads only available for writeable resolver types MEM/DIR/CACHE_DIR",
    ),
    (
        f"trusted_keys: [{USER_KEY}]",
        f'a.conf:1:1: trust key "{USER_KEY}" required to be a valid public operator nkey',
    ),
]


@pytest.mark.parametrize(("text", "expected"), AUTH_ERRORS)
def test_each_auth_mistake_is_an_error_at_its_key(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_a_resolver_without_an_operator_is_a_warning() -> None:
    options = build("resolver: MEMORY")
    assert options.warnings == ("a.conf:1:1: resolver has no effect without an operator, ignored",)


# -- real nkeys (from the shared test vectors) ---------------------------------------------------------------

REAL_ACCOUNT = "ACATS5YOVB6ROX2WUNKGNQ2MP3GMXDMKSG2O4N5CLX3A6W4PZGZZIL2R"
REAL_OPERATOR = "OCFIRY65OQE7DFP5KLNS2PF2LVZMUZYJX4OZIEQ36N2IQANUB5XVYOCS"


def test_real_nkeys_pass_and_a_corrupted_checksum_fails() -> None:
    assert build(f"trusted_keys: {REAL_OPERATOR}").trusted_keys == (REAL_OPERATOR,)
    corrupted = REAL_OPERATOR[:-1] + ("A" if REAL_OPERATOR[-1] != "A" else "B")
    assert errors(f"trusted_keys: {corrupted}") == [
        f'a.conf:1:1: trust key "{corrupted}" required to be a valid public operator nkey'
    ]
    assert build(f"accounts {{ A {{ nkey: {REAL_ACCOUNT} }} }}").accounts[0].nkey == REAL_ACCOUNT
