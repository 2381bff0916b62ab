"""The ``tls`` block's own keys, certificate lists and handshake failure reasons."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from conf import ConfigErrors, loads
from gateway.options import Options, TLSOptions, build_options
from gateway.tls import handshake
from gateway.tls.lists import CertificateList, CertificatePolicy

FP = "ab" * 32


def build(text: str) -> Options:
    return build_options(loads(text, "t.conf"))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        build(text)
    return [str(e) for e in info.value.errors]


def test_map_field_implies_verify_and_map(tmp_path: Path) -> None:
    options = build(
        f'mqtt {{ tls {{ map_field: CN, revoked: ["{FP.upper()}"], ca_dir: "{tmp_path}" }} }}'
    )
    tls = options.mqtt.tls
    assert tls is not None
    assert (tls.map_field, tls.verify_and_map, tls.verify) == ("cn", True, True)
    assert tls.revoked == (FP,) and tls.ca_dir == str(tmp_path) and tls.builtin_ca


def test_positions_are_kept_for_later_file_errors() -> None:
    tls = build("tls {\n  verify: true\n}").tls
    assert tls is not None and tls.positions["verify"].line == 2
    assert tls == TLSOptions(verify=True)  # positions take no part in equality


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "tls { map_field: uid }",
            ['t.conf:1:7: unknown map_field "uid": must be one of email, dns, dn, cn'],
        ),
        (
            'tls { revoked: ["/no/such/list"] }',
            [
                't.conf:1:7: revoked entry "/no/such/list" is neither a SHA-256 fingerprint '
                "nor an existing file or directory"
            ],
        ),
        (
            "tls { authorized_only: true }",
            ['t.conf:1:7: "authorized_only" needs an "authorized" list'],
        ),
    ],
)
def test_each_mistake_is_an_error_at_its_key(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_a_list_reads_fingerprint_files_and_notices_changes(tmp_path: Path) -> None:
    listing = tmp_path / "revoked.txt"
    listing.write_text(f"# revoked\n{':'.join(FP[i : i + 2] for i in range(0, 64, 2))}  # dev\n")
    revoked = CertificateList([str(listing), "cd" * 32])
    assert revoked.fingerprints == {FP, "cd" * 32}
    assert not revoked.reload_if_changed()
    listing.write_text("")
    assert revoked.reload_if_changed()
    assert revoked.fingerprints == {"cd" * 32}


def test_a_policy_without_a_certificate() -> None:
    assert CertificatePolicy(TLSOptions(verify=True)).refusal(None) == handshake.NO_CERTIFICATE
    assert CertificatePolicy(TLSOptions()).refusal(None) is None


@pytest.mark.parametrize(
    "exc, reason",
    [
        (TimeoutError(), handshake.TIMEOUT),
        (
            ConnectionAbortedError("SSL handshake is taking longer than 0.5 seconds"),
            handshake.TIMEOUT,
        ),
        (ConnectionResetError(), handshake.CLOSED),
    ],
)
def test_failure_reasons(exc: BaseException, reason: str) -> None:
    assert handshake.failure_reason(exc) == reason


def test_an_ssl_error_reason() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    assert handshake.failure_reason(exc) == handshake.NOT_TLS
