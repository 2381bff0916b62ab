"""Options for ``tls`` blocks and jetgate's own ``upstream`` block (which selects upstream mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf import ConfigErrors, loads
from gateway.options import Options, TLSOptions, build_options

PIN = "a" * 64


def build(text: str) -> Options:
    return build_options(loads(text, "t.conf"))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        build(text)
    return [str(e) for e in info.value.errors]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name in ("cert.pem", "key.pem", "ca.pem", "user.creds", "user.nk"):
        path = tmp_path / name
        path.write_text("x")
        out[name] = str(path)
    return out


# -- tls ---------------------------------------------------------------------------------------


def test_a_full_tls_block(files: dict[str, str]) -> None:
    options = build(
        f"""tls {{
          cert_file: "{files["cert.pem"]}"
          key_file: "{files["key.pem"]}"
          ca_file: "{files["ca.pem"]}"
          verify_and_map: true
          timeout: 0.5
          pinned_certs: ["{PIN.upper()}"]
          min_version: "1.3"
          cipher_suites: ["TLS_AES_128_GCM_SHA256"]
          handshake_first: true
        }}"""
    )
    assert options.tls == TLSOptions(
        cert_file=files["cert.pem"],
        key_file=files["key.pem"],
        ca_file=files["ca.pem"],
        verify=True,
        verify_and_map=True,
        timeout=0.5,
        pinned_certs=(PIN,),
        min_version="1.3",
        cipher_suites=("TLS_AES_128_GCM_SHA256",),
        handshake_first=True,
    )
    # With top-level TLS the authorization timeout defaults to the TLS timeout plus one second.
    assert options.authorization.timeout == 1.5


def test_tls_timeout_takes_a_duration_string(files: dict[str, str]) -> None:
    options = build(
        f'mqtt {{ tls {{ cert_file: "{files["cert.pem"]}", key_file: "{files["key.pem"]}", '
        'timeout: "250ms" } }'
    )
    assert options.mqtt.tls is not None and options.mqtt.tls.timeout == 0.25


def test_tls_handshake_first_with_a_fallback_delay() -> None:
    options = build('tls { handshake_first: "300ms" }')
    assert options.tls is not None
    assert (options.tls.handshake_first, options.tls.handshake_first_fallback) == (True, 0.3)


def test_websocket_with_tls(files: dict[str, str]) -> None:
    options = build(
        f'websocket {{ port: 8443, tls {{ cert_file: "{files["cert.pem"]}", '
        f'key_file: "{files["key.pem"]}" }} }}'
    )
    assert options.websocket.tls is not None and options.websocket.enabled


def test_unsupported_tls_keys_are_warnings() -> None:
    options = build("tls { ocsp_peer: true }")
    assert options.warnings == (
        't.conf:1:7: "ocsp_peer" in the top-level tls block is not supported by jetgate, ignored',
    )


TLS_ERRORS = [
    (
        'tls { cert_file: "/no/such/cert.pem", key_file: "/no/such/key.pem" }',
        [
            't.conf:1:7: cert_file "/no/such/cert.pem" does not exist or is not a file',
            't.conf:1:39: key_file "/no/such/key.pem" does not exist or is not a file',
        ],
    ),
    (
        "tls { verify: yes, timeout: true }",
        ['t.conf:1:20: error parsing tls timeout: expected a duration such as "10s", got true'],
    ),
    ("tls { verify: 1 }", ['t.conf:1:7: "verify" must be true or false, got 1']),
    (
        'tls { pinned_certs: ["abc"] }',
        [
            't.conf:1:7: pinned_certs entry "abc" is not a hex-encoded SHA-256 of a DER SubjectPublicKeyInfo'
        ],
    ),
    (
        'tls { min_version: "1.1" }',
        ['t.conf:1:7: unsupported min_version "1.1": must be "1.2" or "1.3"'],
    ),
    (
        "tls { cipher_suites: [] }",
        ["t.conf:1:7: error parsing tls config, 'cipher_suites' cannot be empty"],
    ),
    (
        "mqtt { tls { cert_fil: x } }",
        ['t.conf:1:14: unknown field "cert_fil" in the mqtt tls block; did you mean "cert_file"?'],
    ),
    ("tls: true", ['t.conf:1:1: "tls" must be a map, got true']),
]


@pytest.mark.parametrize(("text", "expected"), TLS_ERRORS)
def test_each_tls_mistake_is_an_error_at_its_key(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_a_certificate_needs_its_key(files: dict[str, str]) -> None:
    assert errors(f'\nmqtt {{\n  tls {{ cert_file: "{files["cert.pem"]}" }}\n}}') == [
        "t.conf:3:3: missing 'key_file' in TLS configuration"
    ]


# -- upstream -------------------------------------------------------------------------------------


def test_no_upstream_block_means_embedded_mode() -> None:
    assert build("").mode == "embedded"


def test_the_upstream_block_selects_upstream_mode(files: dict[str, str]) -> None:
    options = build(
        f"""upstream {{
          urls: ["nats://n1:4222", "tls://n2:4222", "ws://n3:8080", "wss://n4"]
          creds: "{files["user.creds"]}"
          js_domain: hub
          tls {{ ca_file: "{files["ca.pem"]}" }}
        }}"""
    )
    up = options.upstream
    assert options.mode == "upstream" and up is not None
    assert up.urls == ("nats://n1:4222", "tls://n2:4222", "ws://n3:8080", "wss://n4")
    assert (up.creds, up.js_domain) == (files["user.creds"], "hub")
    assert up.tls is not None and up.tls.ca_file == files["ca.pem"]


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('upstream { url: "nats://h:4222", user: u, password: p }', "user", "u"),
        ('upstream { urls: "nats://h", token: t }', "token", "t"),
    ],
)
def test_upstream_credentials(text: str, field: str, value: str) -> None:
    options = build(text)
    assert getattr(options.upstream, field) == value


def test_upstream_nkey_seed_file(files: dict[str, str]) -> None:
    options = build(f'upstream {{ urls: ["nats://h"], nkey: "{files["user.nk"]}" }}')
    assert options.upstream is not None and options.upstream.nkey == files["user.nk"]


UPSTREAM_ERRORS = [
    (
        "upstream { user: u }",
        ['t.conf:1:1: the upstream block needs urls, e.g. urls: ["nats://localhost:4222"]'],
    ),
    ("upstream { urls: [] }", ['t.conf:1:12: "urls" must not be empty']),
    (
        'upstream {\n  urls: [\n    "nats://ok:4222"\n    "http://web"\n    "nats://:4222"\n  ]\n}',
        [
            't.conf:4:5: upstream url "http://web" must be a nats://, tls://, ws:// or wss:// URL with '
            "a host (and an optional port)",
            't.conf:5:5: upstream url "nats://:4222" must be a nats://, tls://, ws:// or wss:// URL with '
            "a host (and an optional port)",
        ],
    ),
    (
        'upstream { urls: ["nats://h"], creds: "/no/such.creds" }',
        ['t.conf:1:32: creds file "/no/such.creds" does not exist or is not a file'],
    ),
    (
        'upstream { urls: ["nats://h"], user: u, token: t }',
        ["t.conf:1:1: the upstream block may log in one way only, got user and token"],
    ),
    (
        'upstream { urls: ["nats://h"], password: p }',
        ["t.conf:1:1: the upstream password needs a user"],
    ),
    (
        'upstream { urls: ["nats://h"], domain: x }',
        ['t.conf:1:32: unknown field "domain" in the upstream block; did you mean "js_domain"?'],
    ),
]


@pytest.mark.parametrize(("text", "expected"), UPSTREAM_ERRORS)
def test_each_upstream_mistake_is_an_error_at_its_key(text: str, expected: list[str]) -> None:
    assert errors(text) == expected
