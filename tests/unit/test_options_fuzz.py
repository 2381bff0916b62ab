"""Any parsed configuration builds options or fails with ConfigErrors; nothing else escapes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conf import ConfigErrors, ConfList, ConfMap, Position, SizedInt
from gateway.options import Options, build_options

KEYS = [
    "listen",
    "port",
    "host",
    "max_payload",
    "ping_interval",
    "write_deadline",
    "jetstream",
    "store_dir",
    "http",
    "tls",
    "authorization",
    "users",
    "user",
    "password",
    "nkey",
    "token",
    "permissions",
    "publish",
    "subscribe",
    "allow",
    "deny",
    "allow_responses",
    "allowed_connection_types",
    "no_auth_user",
    "accounts",
    "imports",
    "exports",
    "stream",
    "service",
    "account",
    "subject",
    "operator",
    "system_account",
    "resolver",
    "type",
    "dir",
    "resolver_preload",
    "websocket",
    "no_tls",
    "mqtt",
    "ack_wait",
    "max_ack_pending",
    "timeout",
    "upstream",
    "urls",
    "creds",
    "cluster",
    "A",
    "B",
]
POS = Position("f.conf", 1, 1)

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["MQTT", "bogus", "nats://h:4222", "10s", "-1s", "a.>", "MEMORY", "$2a$x"]),
    st.builds(SizedInt, st.integers(min_value=0, max_value=10**12), st.sampled_from(["1m", "2k"])),
)


def to_conf_list(items: list[Any]) -> ConfList:
    out = ConfList(POS)
    for item in items:
        out.add(item, POS)
    return out


def to_conf_map(pairs: dict[str, Any]) -> ConfMap:
    out = ConfMap(POS)
    for key, value in pairs.items():
        out.set(key, value, POS)
    return out


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(to_conf_list),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5).map(to_conf_map),
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(to_conf_map)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_build_options_only_ever_raises_config_errors(doc: ConfMap) -> None:
    try:
        options = build_options(doc)
    except ConfigErrors as exc:
        assert exc.errors and all(str(e).startswith("f.conf:1:1: ") for e in exc.errors)
    else:
        assert isinstance(options, Options)
