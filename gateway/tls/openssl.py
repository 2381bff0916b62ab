"""The TCP listeners' server TLS context, on pyOpenSSL, and what its handshakes report.

Python's ``ssl`` runs on the system's OpenSSL (3.0 on Debian 12 and Ubuntu 22.04),
whose server handshake costs about 30% more CPU than the OpenSSL inside
``cryptography``'s wheel, which pyOpenSSL reaches (bench/tls.py). The MQTT and
NATS TCP listeners therefore handshake through this context (``TlsLayer``); the
WebSocket listener keeps ``ssl`` (asyncio's TLS needs an ``ssl.SSLContext``).
``openssl_context`` builds it from the same ``tls`` block and files as
``server_context`` (which has already reported every file mistake as a
``ConfigError``), so both listeners accept exactly the same clients.

A failed handshake is reported as the ``ssl`` exception the stdlib would raise
(``ssl_error``), so one ``failure_reason`` serves both stacks; a refused client
certificate carries OpenSSL's verification code (``verify_code``).
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from gateway.options.model import TLSOptions
from gateway.tls.context import tls12_ciphers
from gateway.tls.lists import CertificateList

#: OpenSSL's long names, as ``ssl.SSLSocket.getpeercert()`` spells attribute types.
_LONG_NAMES = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    NameOID.STREET_ADDRESS: "streetAddress",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "surname",
    NameOID.GIVEN_NAME: "givenName",
    NameOID.TITLE: "title",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "domainComponent",
    NameOID.USER_ID: "userId",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
}
TLS13_PREFERENCE = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
_MIN_VERSIONS = {"1.3": SSL.TLS1_3_VERSION}
#: SSL_MODE_NO_AUTO_CHAIN (openssl/ssl.h), which pyOpenSSL does not name.
_MODE_NO_AUTO_CHAIN = 0x8
X509_V_ERR_CERT_HAS_EXPIRED = 10
#: OpenSSL's words for the X509_V_ERR codes a client certificate meets most (x509_vfy.h).
_VERIFY_MESSAGES = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
}


# OpenSSL's verdict on a client certificate. pyOpenSSL keeps SSL_get_verify_result in its
# private binding; a verify callback would tell the same, but costs ~35 us per handshake
# (two Python calls from C). Without the binding a refusal is reported without its reason.
_get_verify_result: Callable[[Any], int] | None = getattr(
    getattr(SSL, "_lib", None), "SSL_get_verify_result", None
)
# Whether a handshake resumed a session (private binding too). Without it, sessions are
# not resumed: a resumed client certificate's expiry could not be checked.
_session_reused: Callable[[Any], int] | None = getattr(
    getattr(SSL, "_lib", None), "SSL_session_reused", None
)
#: Distinguishes this gateway's sessions from another application's (OpenSSL requires one
#: to resume sessions whose client certificate was verified).
SESSION_ID_CONTEXT = b"jetgate"


def resumed(connection: SSL.Connection) -> bool:
    """Whether the finished handshake resumed an earlier session (no certificate checks)."""
    return _session_reused is not None and bool(_session_reused(connection._ssl))


def verify_code(connection: SSL.Connection) -> int:
    """OpenSSL's X509_V_ERR code for the client's certificate (0: accepted, or unknown)."""
    if _get_verify_result is None:
        return 0
    return int(_get_verify_result(connection._ssl))


def openssl_context(tls: TLSOptions, cert: str, key: str, ca: str | None) -> SSL.Context:
    """The server context for ``tls``, with ``cert``/``key`` and client CAs from ``ca``.

    Call it after ``server_context`` accepted the block: then the files are known good,
    and ``SSL.Error`` would mean a setting this OpenSSL refuses though Python's accepted
    it (none is known).
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    # As the NATS server (Go) does with AES hardware: AES-128 first, chosen by the server
    # (``TLS13_PREFERENCE``); it costs both ends less than the AES-256/SHA-384 suite
    # OpenSSL clients ask for first.
    options = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE
    if _session_reused is None or tls.trust_authorized:
        # trust_authorized: a listed certificate is trusted only while listed, and
        # nothing would check that a resumed session's still is.
        options |= SSL.OP_NO_TICKET
    context.set_options(options)
    # Session tickets, as the NATS server (Go) issues them: a client that keeps one
    # resumes without certificate checks or signatures (a reconnecting fleet), and the
    # server keeps nothing (the ticket holds the session, sealed with a key of this
    # process). TLS 1.3 also does a fresh key exchange on resumption. The certificate
    # policy (revoked, authorized, pinned, expiry: TlsLayer) still applies to resumed
    # sessions. No session cache: session ids (TLS 1.2 without tickets) are not resumed.
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_session_id(SESSION_ID_CONTEXT)
    # An idle connection gives its record buffers back: 46 KiB per idle TLS client
    # instead of 62 (bench: 1,000 idle mqtts clients; nats-server 57).
    # The certificate message carries cert_file's chain as written, as the NATS server
    # sends it; OpenSSL would otherwise add the CA from ca_file on every handshake, which
    # costs both ends a chain build (~100 us each here).
    context.set_mode(SSL.MODE_RELEASE_BUFFERS | _MODE_NO_AUTO_CHAIN)
    context.set_tls13_ciphersuites(TLS13_PREFERENCE)
    context.set_min_proto_version(_MIN_VERSIONS.get(tls.min_version or "", SSL.TLS1_2_VERSION))
    context.use_certificate_chain_file(cert)
    context.use_privatekey_file(key)
    context.check_privatekey()
    ciphers = tls12_ciphers(tls.cipher_suites)
    if ciphers:
        context.set_cipher_list(":".join(ciphers).encode())
    if tls.wants_client_certificate:
        if ca:
            context.load_verify_locations(ca)
        else:
            context.set_default_verify_paths()
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
        if tls.trust_authorized:
            trust_listed(context, CertificateList(tls.authorized))
    return context


def trust_listed(context: SSL.Context, listed: CertificateList) -> None:
    """Make listed certificates trust anchors of their own (``trust_authorized``)."""
    if not listed.certificates:
        return
    store = context.get_cert_store()
    if store is None:
        return
    for certificate in listed.certificates:
        try:
            store.add_cert(crypto.X509.from_cryptography(certificate))
        except crypto.Error:
            continue  # already an anchor: the list was re-read
    # A leaf in the trust store ends the chain there: OpenSSL's partial chains.
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)


def refresh_openssl_trust(context: SSL.Context, tls: TLSOptions, listed: CertificateList) -> None:
    """Add certificates newly listed as authorized to the anchors (``trust_authorized``)."""
    if tls.trust_authorized:
        trust_listed(context, listed)


def expired_error(der: bytes) -> ssl.SSLCertVerificationError | None:
    """The error OpenSSL's verification gives ``der`` if it has expired by now, else None."""
    certificate = x509.load_der_x509_certificate(der)
    if certificate.not_valid_after_utc >= datetime.datetime.now(datetime.UTC):
        return None
    return _verify_error(X509_V_ERR_CERT_HAS_EXPIRED)


def ssl_error(exc: SSL.Error, refused: int = 0) -> ssl.SSLError:
    """The ``ssl`` exception Python's own TLS would have raised for ``exc``.

    ``refused``: OpenSSL's verification error when the handshake failed on the client's
    certificate (``verify_code``).
    """
    if refused:
        return _verify_error(refused)
    reason = ""
    details = exc.args[0] if exc.args else None
    if isinstance(details, list) and details and isinstance(details[-1], tuple):
        reason = str(details[-1][-1]).upper().replace(" ", "_")
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower().replace('_', ' ')}")
    error.reason = reason
    error.library = "SSL"
    return error


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    verify = ssl.SSLCertVerificationError(1, f"certificate verify failed ({code})")
    verify.reason = "CERTIFICATE_VERIFY_FAILED"
    verify.library = "SSL"
    verify.verify_code = code
    verify.verify_message = _verify_message(code)
    return verify


def _verify_message(code: int) -> str:
    return _VERIFY_MESSAGES.get(code, f"verification error {code}")


def peer_certificate_der(connection: SSL.Connection) -> bytes | None:
    """The client certificate of a finished handshake as DER (None if it sent none)."""
    certificate = connection.get_peer_certificate()
    if certificate is None:
        return None
    return crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)


class PeerCertificate(Mapping[str, Any]):
    """A client certificate as the dictionary ``getpeercert()`` gives, decoded when first read.

    Most connections never look at it (only ``verify_and_map`` does), and decoding
    costs a tenth of a handshake.
    """

    def __init__(self, der: bytes) -> None:
        self.der = der
        self._fields: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = peercert_dict(x509.load_der_x509_certificate(self.der))
        return self._fields

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())


def _name(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple(
            (_LONG_NAMES.get(attribute.oid, attribute.oid.dotted_string), str(attribute.value))
            for attribute in rdn
        )
        for rdn in name.rdns
    )


def _serial(number: int) -> str:
    # Whole bytes, as OpenSSL prints an ASN.1 integer: 0x0CC4... keeps its leading zero.
    digits = f"{number:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def _when(moment: datetime.datetime) -> str:
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def peercert_dict(certificate: x509.Certificate) -> dict[str, Any]:
    """``certificate`` in the form of ``ssl.SSLSocket.getpeercert()``."""
    out: dict[str, Any] = {
        "subject": _name(certificate.subject),
        "issuer": _name(certificate.issuer),
        "version": certificate.version.value + 1,
        "serialNumber": _serial(certificate.serial_number),
        "notBefore": _when(certificate.not_valid_before_utc),
        "notAfter": _when(certificate.not_valid_after_utc),
    }
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return out
    alt: list[tuple[str, str]] = []
    for entry in names:
        if isinstance(entry, x509.RFC822Name):
            alt.append(("email", entry.value))
        elif isinstance(entry, x509.DNSName):
            alt.append(("DNS", entry.value))
        elif isinstance(entry, x509.IPAddress):
            alt.append(("IP Address", str(entry.value)))
        elif isinstance(entry, x509.UniformResourceIdentifier):
            alt.append(("URI", entry.value))
    if alt:
        out["subjectAltName"] = tuple(alt)
    return out
