"""Which user a client certificate names: ``verify_and_map`` and jetgate's ``map_field``.

The certificate is the dictionary ``ssl.SSLSocket.getpeercert()`` returns (what
``ConnInfo.peer_certificate`` carries). Without ``map_field`` the candidates
come in the NATS server's order: every e-mail address of the subject
alternative names, then every DNS name, then the whole subject in RFC 2253
form (``CN=dev-42,O=Acme``: last RDN first). ``map_field`` picks one source:
``email``, ``dns``, ``dn`` or ``cn`` (the subject's Common Name alone, as many
industrial MQTT brokers do).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: ``getpeercert()`` attribute names -> RFC 4514 short names.
_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_ESCAPE_ANYWHERE = set(',+"\\<>;')


def _escape(value: str) -> str:
    """An attribute value escaped as RFC 4514 (section 2.4) asks."""
    out = []
    for index, char in enumerate(value):
        if (
            char in _ESCAPE_ANYWHERE
            or (index == 0 and char in "# ")
            or (index == len(value) - 1 and char == " ")
        ):
            out.append("\\" + char)
        elif char == "\0":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def subject_rfc2253(certificate: Mapping[str, Any]) -> str:
    """The subject as an RFC 2253 string: RDNs last to first, ``+`` inside a multi-valued RDN."""
    rdns: Iterable[Iterable[tuple[str, str]]] = certificate.get("subject", ())
    parts = []
    for rdn in reversed(list(rdns)):
        parts.append(
            "+".join(f"{_SHORT_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn)
        )
    return ",".join(parts)


def common_names(certificate: Mapping[str, Any]) -> list[str]:
    """The subject's Common Name values, most specific (last) first."""
    names: list[str] = []
    for rdn in reversed(list(certificate.get("subject", ()))):
        names.extend(value for name, value in rdn if name == "commonName")
    return names


def _alt_names(certificate: Mapping[str, Any], kind: str) -> list[str]:
    return [value for name, value in certificate.get("subjectAltName", ()) if name == kind]


def candidate_names(certificate: Mapping[str, Any], map_field: str | None = None) -> list[str]:
    """The user names a certificate may map to, in the order they are tried."""
    if map_field == "cn":
        return common_names(certificate)
    names: list[str] = []
    if map_field in (None, "email"):
        names.extend(_alt_names(certificate, "email"))
    if map_field in (None, "dns"):
        names.extend(_alt_names(certificate, "DNS"))
    if map_field in (None, "dn"):
        subject = subject_rfc2253(certificate)
        if subject:
            names.append(subject)
    return names
