"""Which user a certificate names: order, RFC 2253 form and escaping, ``map_field``."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tls.identity import candidate_names, subject_rfc2253

CERT: dict[str, Any] = {
    "subject": (
        (("countryName", "DE"),),
        (("organizationName", "Acme, Inc."),),
        (("commonName", "dev-42"),),
    ),
    "subjectAltName": (("DNS", "a.acme.io"), ("email", "dev@acme.io"), ("DNS", "b.acme.io")),
}


def test_email_then_dns_then_the_subject_last_rdn_first() -> None:
    assert candidate_names(CERT) == [
        "dev@acme.io",
        "a.acme.io",
        "b.acme.io",
        "CN=dev-42,O=Acme\\, Inc.,C=DE",
    ]


@pytest.mark.parametrize(
    "field, expected",
    [
        ("email", ["dev@acme.io"]),
        ("dns", ["a.acme.io", "b.acme.io"]),
        ("dn", ["CN=dev-42,O=Acme\\, Inc.,C=DE"]),
        ("cn", ["dev-42"]),
    ],
)
def test_map_field_picks_one_source(field: str, expected: list[str]) -> None:
    assert candidate_names(CERT, field) == expected


@pytest.mark.parametrize(
    "value, escaped",
    [("#hash", "\\#hash"), (" lead", "\\ lead"), ("trail ", "trail\\ "), ('a+b"c', 'a\\+b\\"c')],
)
def test_rfc4514_escaping(value: str, escaped: str) -> None:
    assert subject_rfc2253({"subject": ((("commonName", value),),)}) == f"CN={escaped}"


def test_a_multi_valued_rdn_joins_with_plus() -> None:
    cert = {"subject": ((("commonName", "x"), ("userId", "7")),)}
    assert subject_rfc2253(cert) == "CN=x+UID=7"


def test_a_certificate_without_names_maps_to_nothing() -> None:
    assert candidate_names({}) == []
    assert candidate_names({}, "cn") == []
