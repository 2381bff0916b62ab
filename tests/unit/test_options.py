"""Options from the configuration file: defaults, values, aliases, errors at FILE:LINE:COL, warnings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conf import ConfigError, ConfigErrors, loads
from gateway.options import (
    DEFAULT_STORE_DIR,
    Options,
    bind_port,
    build_options,
    load_options,
)


def build(text: str) -> Options:
    return build_options(loads(text, "j.conf"))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        build(text)
    return [str(e) for e in info.value.errors]


# -- defaults -------------------------------------------------------------------


def test_no_file_gives_the_embedded_defaults() -> None:
    options = load_options(None)
    assert (options.host, options.port) == ("0.0.0.0", 4222)
    assert options.mqtt.enabled and options.mqtt.port == 1883
    assert options.jetstream.store_dir == DEFAULT_STORE_DIR == "./data/jetstream"
    assert options.mode == "embedded"
    assert options.warnings == ()
    assert options.source is None


def test_an_empty_file_gives_the_nats_server_defaults() -> None:
    options = build("")
    assert options.max_payload == 1024 * 1024
    assert options.max_connections == 65536
    assert options.ping_interval == 120.0
    assert options.write_deadline == 10.0
    assert options.authorization.timeout == 2.0
    assert options.mqtt.ack_wait == 30.0
    assert options.mqtt.max_ack_pending == 1024
    assert options.mqtt.js_api_timeout == 5.0
    assert options.websocket.enabled is False
    assert options.http_port == 0
    assert options.source == "j.conf"


def test_zero_means_default_for_ack_wait_and_max_ack_pending() -> None:
    options = build('mqtt { ack_wait: "0s", max_ack_pending: 0 }')
    assert options.mqtt.ack_wait == 30.0
    assert options.mqtt.max_ack_pending == 1024


# -- values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("listen: 127.0.0.1:4333", "127.0.0.1", 4333),
        ("listen: :4333", "0.0.0.0", 4333),
        ('listen: "[::1]:4333"', "::1", 4333),
        ("listen: myhost", "myhost", 4222),
        ("listen: 4333", "0.0.0.0", 4333),
        ("listen: nats.io:-1", "nats.io", -1),
        ("host: 10.0.0.1\nport: 5000", "10.0.0.1", 5000),
        ("net: 10.0.0.2", "10.0.0.2", 4222),
        ("port: 0", "0.0.0.0", 4222),
    ],
)
def test_listen_host_and_port(text: str, host: str, port: int) -> None:
    options = build(text)
    assert (options.host, options.port) == (host, port)


def test_random_port_binds_to_an_ephemeral_port() -> None:
    assert bind_port(build("port: -1").port) == 0
    assert bind_port(4222) == 4222


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_payload: 65536", 65536),
        ("max_payload: 8MB", 8 * 1024 * 1024),
        ("max_payload: 2m", 2_000_000),
        ('max_payload: "64KiB"', 64 * 1024),
        ('max_payload: "1M"', 1024 * 1024),
        ("max_payload: 0", 1024 * 1024),
    ],
)
def test_max_payload_sizes(text: str, expected: int) -> None:
    assert build(text).max_payload == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ('ping_interval: "30s"', 30.0),
        ('ping_interval: "1h30m"', 5400.0),
        ("ping_interval: 250ms", 0.25),
        ('write_deadline: "1.5s"', 1.5),
        ('mqtt { ack_wait: "2m" }', 120.0),
        ('mqtt { consumer_inactive_threshold: "1h" }', 3600.0),
        ('mqtt { js_api_timeout: "10s" }', 10.0),
        ("websocket { no_tls: true, handshake_timeout: 5 }", 5.0),
    ],
)
def test_duration_strings(text: str, seconds: float) -> None:
    options = build(text)
    values = (
        options.ping_interval,
        options.write_deadline,
        options.mqtt.ack_wait,
        options.mqtt.consumer_inactive_threshold,
        options.mqtt.js_api_timeout,
        options.websocket.handshake_timeout,
    )
    assert seconds in values
    assert options.warnings == ()


def test_jetstream_block() -> None:
    options = build(
        'jetstream { store_dir: "/var/js", max_mem: "1G", max_file: 10GB, domain: hub }'
    )
    assert options.jetstream.store_dir == "/var/js"
    assert options.jetstream.max_memory == 1 << 30
    assert options.jetstream.max_store == 10 << 30
    assert options.jetstream.domain == "hub"
    assert options.jetstream.enabled


@pytest.mark.parametrize(
    ("value", "enabled"), [("enabled", True), ("disabled", False), ("true", True), ("false", False)]
)
def test_jetstream_as_a_switch(value: str, enabled: bool) -> None:
    assert build(f"jetstream: {value}\nmqtt {{ port: 0 }}").jetstream.enabled is enabled


def test_top_level_store_dir() -> None:
    assert build("store_dir: /data/js").jetstream.store_dir == "/data/js"


def test_monitoring_ports() -> None:
    options = build("http: localhost:8222")
    assert (options.http_host, options.http_port) == ("localhost", 8222)
    assert build("monitor_port: 8223").http_port == 8223
    assert build("https_port: 8443").https_port == 8443


def test_the_mqtt_block() -> None:
    options = build(
        """
        mqtt {
          listen: 127.0.0.1:1884
          no_auth_user: ""
          ack_wait: "45s"
          max_ack_pending: 100
          js_domain: leaf
          stream_replicas: 3
          consumer_memory_storage: true
          reject_qos2_pub: true
          downgrade_qos2_sub: true
          authorization { username: m, password: p, timeout: 1.5 }
        }
        """
    )
    mqtt = options.mqtt
    assert (mqtt.host, mqtt.port) == ("127.0.0.1", 1884)
    assert (mqtt.ack_wait, mqtt.max_ack_pending) == (45.0, 100)
    assert (mqtt.js_domain, mqtt.stream_replicas) == ("leaf", 3)
    assert (
        mqtt.consumer_memory_storage and mqtt.reject_qos2_publish and mqtt.downgrade_qos2_subscribe
    )
    assert mqtt.authorization is not None
    assert (mqtt.authorization.user, mqtt.authorization.password) == ("m", "p")
    assert mqtt.authorization.timeout == 1.5


def test_mqtt_port_zero_turns_mqtt_off() -> None:
    assert not build("mqtt { port: 0 }").mqtt.enabled


def test_the_websocket_block() -> None:
    options = build(
        """
        ws {
          port: 8080
          no_tls: true
          same_origin: true
          allowed_origins: ["https://a.example", "https://b.example"]
          compress: true
          jwt_cookie: jwt
          headers { X-Frame-Options: DENY }
        }
        """
    )
    ws = options.websocket
    assert ws.enabled and ws.port == 8080 and ws.no_tls and ws.same_origin and ws.compression
    assert ws.allowed_origins == ("https://a.example", "https://b.example")
    assert ws.jwt_cookie == "jwt"
    assert dict(ws.headers) == {"X-Frame-Options": "DENY"}


# -- case-insensitivity and aliases ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'MQTT { ACK_WAIT: "10s", Max_Ack_Pending: 7 }',
        'mqtt { ackwait: "10s", max_inflight: 7 }',
        'mqtt { AckWait: "10s", max_pending: 7 }',
    ],
)
def test_mqtt_keys_ignore_case_and_take_aliases(text: str) -> None:
    options = build(text)
    assert (options.mqtt.ack_wait, options.mqtt.max_ack_pending) == (10.0, 7)


def test_top_level_keys_ignore_case() -> None:
    options = build("PORT: 4333\nMax_Payload: 2048\nServer_Name: n1")
    assert (options.port, options.max_payload, options.server_name) == (4333, 2048, "n1")


def test_two_spellings_of_one_option_are_an_error() -> None:
    assert errors('mqtt {\n  ack_wait: "1s"\n  ackwait: "2s"\n}') == [
        'j.conf:3:3: "ackwait" sets the same option as "ack_wait" (written at j.conf:2:3)'
    ]


# -- errors, each at its key -----------------------------------------------------------------

ERROR_CASES = [
    (
        "mqtt {\n  max_ack_pending: 70000\n}",
        'j.conf:2:3: invalid value 70000 for "max_ack_pending": must be in 0..65535',
    ),
    (
        "mqtt { max_ack_pending: -1 }",
        'j.conf:1:8: invalid value -1 for "max_ack_pending": must be in 0..65535',
    ),
    (
        'mqtt { ack_wait: "-5s" }',
        'j.conf:1:8: invalid ack_wait "-5s": a duration must not be negative',
    ),
    (
        'mqtt { ack_wait: "5 parsecs" }',
        "j.conf:1:8: error parsing ack_wait: invalid duration '5 parsecs': expected a number with "
        'a unit (ns, us, ms, s, m, h), such as "10s", "1.5h" or "250ms"',
    ),
    (
        "mqtt { ack_wait: 5MB }",
        'j.conf:1:8: error parsing ack_wait: expected a duration such as "10s", got 5MB',
    ),
    (
        "mqtt { ack_wait: true }",
        'j.conf:1:8: error parsing ack_wait: expected a duration such as "10s", got true',
    ),
    ("ping_interval: -3", "j.conf:1:1: invalid ping_interval -3: a duration must not be negative"),
    ("prot: 4222", 'j.conf:1:1: unknown field "prot" in the top level; did you mean "port"?'),
    ("xyzzy: 1", 'j.conf:1:1: unknown field "xyzzy" in the top level'),
    (
        'mqtt {\n  ack_wiat: "1s"\n}',
        'j.conf:2:3: unknown field "ack_wiat" in the mqtt block; did you mean "ack_wait"?',
    ),
    (
        "port: 70000",
        'j.conf:1:1: invalid port 70000 for "port": must be in 0..65535, or -1 for a random port',
    ),
    (
        "listen: host:http",
        'j.conf:1:1: could not parse address string "host:http": expected host:port',
    ),
    ("listen: true", 'j.conf:1:1: "listen" expects a port or host:port, got true'),
    ("server_name: 5", 'j.conf:1:1: "server_name" must be a string, got 5'),
    ("debug: 1", 'j.conf:1:1: "debug" must be true or false, got 1'),
    ("max_payload: 4GB", "j.conf:1:1: max_payload value is too big"),
    (
        'max_payload: "lots"',
        'j.conf:1:1: "max_payload" must be a size such as 1048576, 64MiB or "1G", got "lots"',
    ),
    (
        "max_connections: -5",
        'j.conf:1:1: invalid value -5 for "max_connections": must be at least 0',
    ),
    (
        "store_dir: /a\njetstream { store_dir: /b }",
        "j.conf:2:13: Duplicate 'store_dir' configuration (also set at j.conf:1:1)",
    ),
    (
        "jetstream: maybe",
        "j.conf:1:1: Expected 'enabled' or 'disabled' for string value, got 'maybe'",
    ),
    ("jetstream: false", "j.conf:1:1: mqtt requires JetStream to be enabled in embedded mode"),
    (
        "jetstream { max_mem: 1x }",
        'j.conf:1:13: "max_mem" must be a size such as 1048576, 64MiB or "1G", got "1x"',
    ),
    (
        "websocket { port: 8080 }",
        "j.conf:1:1: websocket requires TLS configuration unless no_tls is true",
    ),
    ('lame_duck_duration: "10s"', "j.conf:1:1: invalid lame_duck_duration, minimum is 30 seconds"),
    (
        "mqtt { authorization { user: a, token: t } }",
        "j.conf:1:8: Cannot have a user/pass and token",
    ),
    (
        "mqtt { authorization { usr: a } }",
        'j.conf:1:24: unknown field "usr" in the mqtt authorization block; did you mean "user"?',
    ),
    ("ws { no_tls: true, origins: [1 ] }", 'j.conf:1:30: "origins" entries must be strings, got 1'),
]


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES)
def test_each_wrong_value_is_an_error_at_its_key(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_every_error_is_reported_in_document_order() -> None:
    found = errors("mqtt { max_ack_pending: 70000 }\nprot: 1\nmqtt_ { }\ndebug: 3\n")
    assert found == [
        'j.conf:1:8: invalid value 70000 for "max_ack_pending": must be in 0..65535',
        'j.conf:2:1: unknown field "prot" in the top level; did you mean "port"?',
        'j.conf:3:1: unknown field "mqtt_" in the top level; did you mean "mqtt"?',
        'j.conf:4:1: "debug" must be true or false, got 3',
    ]


def test_config_errors_print_one_per_line() -> None:
    with pytest.raises(ConfigErrors) as info:
        build("prot: 1\ndebug: 3")
    assert str(info.value).splitlines() == [
        'j.conf:1:1: unknown field "prot" in the top level; did you mean "port"?',
        'j.conf:2:1: "debug" must be true or false, got 3',
    ]


# -- warnings -------------------------------------------------------------------------------


def test_nats_server_keys_jetgate_lacks_are_ignored_with_a_warning() -> None:
    options = build("cluster { port: 6222 }\nleafnodes { port: 7422 }\nport: 4333")
    assert options.port == 4333
    assert options.warnings == (
        'j.conf:1:1: "cluster" in the top level is not supported by jetgate, ignored',
        'j.conf:2:1: "leafnodes" in the top level is not supported by jetgate, ignored',
    )


def test_an_integer_duration_is_seconds_with_the_nats_warning() -> None:
    options = build("ping_interval: 30")
    assert options.ping_interval == 30.0
    assert options.warnings == (
        'j.conf:1:1: invalid use of field "ping_interval": ping_interval should be converted '
        "to a duration",
    )


def test_an_unquoted_minutes_value_is_minutes_with_a_warning() -> None:
    options = build("mqtt { ack_wait: 2m }")
    assert options.mqtt.ack_wait == 120.0
    assert options.warnings == (
        "j.conf:1:8: ack_wait: 2m read as 2 minute(s); the NATS server reads an unquoted 2m "
        'as the size 2000000 (seconds), write "2m"',
    )


def test_consumer_replicas_is_ignored_with_a_warning() -> None:
    options = build("mqtt { consumer_replicas: 3 }")
    assert options.warnings == (
        "j.conf:1:8: consumer_replicas is ignored: MQTT consumers always take the replica count "
        "of their stream",
    )


def test_a_top_level_key_used_as_a_variable_is_not_unknown() -> None:
    options = build("my_port: 4333\nport: $my_port")
    assert options.port == 4333


# -- files and overrides ------------------------------------------------------------------------


def test_load_options_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jetgate.conf"
    path.write_text("port: 4333\nmqtt { port: 1999 }\n")
    options = load_options(str(path))
    assert (options.port, options.mqtt.port, options.source) == (4333, 1999, str(path))


def test_load_options_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("\n\n   prot: 4333\n")
    with pytest.raises(ConfigError) as info:
        load_options(str(path))
    assert (
        str(info.value)
        == f'{path}:3:4: unknown field "prot" in the top level; did you mean "port"?'
    )


def test_with_overrides_applies_flags_over_the_file() -> None:
    options = build("port: 4333\nmqtt { port: 1999 }\njetstream { store_dir: /a, max_mem: '1G' }")
    changed = options.with_overrides(
        port=5222,
        host="127.0.0.1",
        mqtt_port=2883,
        store_dir="/b",
        debug=True,
        trace=True,
        log_file="j.log",
    )
    assert (changed.port, changed.host, changed.mqtt.port) == (5222, "127.0.0.1", 2883)
    assert changed.jetstream.store_dir == "/b"
    assert changed.jetstream.max_memory == 1 << 30
    assert (changed.debug, changed.trace, changed.log_file) == (True, True, "j.log")
    assert options.with_overrides() == options


def test_with_overrides_rejects_a_bad_port() -> None:
    with pytest.raises(ValueError, match="invalid mqtt_port 70000"):
        build("").with_overrides(mqtt_port=70000)


def test_options_are_frozen() -> None:
    options = build("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.port = 1  # type: ignore[misc]
