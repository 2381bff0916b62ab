"""Server ``ssl.SSLContext`` from a ``tls`` block, with every file mistake as a ``ConfigError``.

``server_context`` reads the files before handing them to ``ssl``: a missing or
unreadable file, a file without a PEM certificate, a key that does not match
its certificate, an expired (or not yet valid) broker certificate, a bad CA
file or certificate list are each a ``ConfigError`` at the key that named the
file, so ``jetgate -t`` reports them and the gateway never starts with them.

``cipher_suites`` takes the NATS server's (Go) names and OpenSSL's; TLS 1.3
suites cannot be restricted through Python's ``ssl`` and are always on.
``curve_preferences`` is accepted and left to OpenSSL.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from conf.errors import ConfigError, ConfigErrors
from conf.values import UNKNOWN, Position
from gateway.options.model import Options, TLSOptions
from gateway.tls.certs import read_pem_certificates
from gateway.tls.lists import CertificateList

_GO_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
}
_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)


@dataclass
class _Errors:
    """Errors found in one block, each at the key that caused it."""

    tls: TLSOptions
    where: str
    found: list[ConfigError] = field(default_factory=list)

    def add(self, key: str, message: str) -> None:
        pos: Position = self.tls.positions.get(key) or self.tls.positions.get("tls") or UNKNOWN
        self.found.append(ConfigError(message, pos.file, pos.line, pos.column))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_certificate(errors: _Errors, cert_file: str, key_file: str, cert_key: str) -> None:
    try:
        chain = read_pem_certificates(cert_file)
    except OSError as exc:
        errors.add(cert_key, f'cannot read cert_file "{cert_file}": {exc.strerror or exc}')
        return
    except ValueError:
        errors.add(cert_key, f'cert_file "{cert_file}" holds no PEM certificate')
        return
    leaf = chain[0]
    if leaf.not_valid_after_utc <= _now():
        errors.add(
            cert_key,
            f'the certificate in cert_file "{cert_file}" expired on '
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
        )
    elif leaf.not_valid_before_utc > _now():
        errors.add(
            cert_key,
            f'the certificate in cert_file "{cert_file}" is not valid before '
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC",
        )
    key_name = "key_file" if cert_key == "cert_file" else cert_key
    try:
        with open(key_file, "rb") as fh:
            key = load_pem_private_key(fh.read(), password=None)
    except OSError as exc:
        errors.add(key_name, f'cannot read key_file "{key_file}": {exc.strerror or exc}')
        return
    except (ValueError, TypeError):
        errors.add(key_name, f'key_file "{key_file}" holds no unencrypted PEM private key')
        return
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        errors.add(
            key_name, f'key_file "{key_file}" does not match the certificate in "{cert_file}"'
        )


def _check_ca(errors: _Errors, ca_file: str) -> None:
    try:
        read_pem_certificates(ca_file)
    except OSError as exc:
        errors.add("ca_file", f'cannot read ca_file "{ca_file}": {exc.strerror or exc}')
    except ValueError:
        errors.add("ca_file", f'ca_file "{ca_file}" holds no PEM certificate')


def _check_lists(errors: _Errors) -> None:
    for key in ("authorized", "revoked"):
        try:
            CertificateList(getattr(errors.tls, key))
        except (OSError, ValueError) as exc:
            errors.add(key, f"cannot read the {key} certificates: {exc}")


def tls12_ciphers(cipher_suites: Iterable[str]) -> list[str]:
    """OpenSSL's names of the TLS 1.2 suites in ``cipher_suites`` (Go's or OpenSSL's names)."""
    names: list[str] = []
    for name in cipher_suites:
        if name in _TLS13_SUITES:
            continue  # always enabled with TLS 1.3; Python's ssl cannot restrict them
        names.append(_GO_CIPHERS.get(name, name))
    return names


def server_context(
    tls: TLSOptions,
    where: str,
    *,
    cert_file: str | None = None,
    key_file: str | None = None,
    client_ca: str | None = None,
) -> ssl.SSLContext:
    """A server-side context for the ``tls`` block of ``where``.

    ``cert_file``/``key_file`` stand in when the block has none (the built-in
    CA's broker certificate); ``client_ca`` verifies client certificates when
    the block has no ``ca_file``. Raises ``ConfigErrors``.
    """
    errors = _Errors(tls, where)
    cert = tls.cert_file or cert_file
    key = tls.key_file or key_file
    if cert is None or key is None:
        errors.add("tls", f"the {where} tls block has no cert_file and no built-in certificate")
        raise ConfigErrors(errors.found)
    _check_certificate(errors, cert, key, "cert_file" if tls.cert_file else "tls")
    ca = tls.ca_file or client_ca
    if tls.ca_file:
        _check_ca(errors, tls.ca_file)
    _check_lists(errors)
    if errors.found:
        raise ConfigErrors(errors.found)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # No TLS 1.3 session tickets for this context (the WebSocket listener's): nothing
    # here could check a resumed session's client certificate for expiry. The TCP
    # listeners' context resumes sessions (gateway.tls.openssl).
    context.num_tickets = 0
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        errors.add("cert_file" if tls.cert_file else "tls", f"cannot use {cert}: {exc.reason}")
    ciphers = tls12_ciphers(tls.cipher_suites)
    if ciphers:
        try:
            context.set_ciphers(":".join(ciphers))
        except ssl.SSLError:
            errors.add("cipher_suites", f"no usable cipher among {', '.join(tls.cipher_suites)}")
    if tls.wants_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            if ca:
                context.load_verify_locations(cafile=ca)
            else:
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            if tls.trust_authorized:
                _trust_listed(context, CertificateList(tls.authorized))
        except ssl.SSLError as exc:
            errors.add("ca_file", f"cannot use the CA certificates: {exc.reason}")
    if errors.found:
        raise ConfigErrors(errors.found)
    return context


def _trust_listed(context: ssl.SSLContext, listed: CertificateList) -> None:
    """Make listed PEM certificates trust anchors of their own (``trust_authorized``)."""
    if not listed.certificates:
        return
    pem = "".join(c.public_bytes(Encoding.PEM).decode() for c in listed.certificates)
    context.load_verify_locations(cadata=pem)
    # A leaf in the trust store ends the chain there: OpenSSL's partial chains.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


def refresh_trust(context: ssl.SSLContext, tls: TLSOptions, listed: CertificateList) -> None:
    """Add certificates newly listed as authorized to the anchors (``trust_authorized``)."""
    if tls.trust_authorized:
        _trust_listed(context, listed)


def listener_blocks(options: Options) -> list[tuple[str, TLSOptions]]:
    """The ``tls`` blocks of the listeners that are on: (where, block)."""
    out: list[tuple[str, TLSOptions]] = []
    if options.tls is not None:
        out.append(("top-level", options.tls))
    if options.mqtt.enabled and options.mqtt.tls is not None:
        out.append(("mqtt", options.mqtt.tls))
    ws = options.websocket
    if ws.enabled and ws.tls is not None and not ws.no_tls:
        out.append(("websocket", ws.tls))
    return out


def check_options(options: Options) -> None:
    """Read every listener's certificate files as the gateway would; raises ``ConfigErrors``.

    Blocks without ``cert_file`` use the built-in CA, created at the first
    start; only their CA file and lists are read here.
    """
    found: list[ConfigError] = []
    for where, tls in listener_blocks(options):
        if tls.builtin_ca:
            errors = _Errors(tls, where)
            if tls.ca_file:
                _check_ca(errors, tls.ca_file)
            _check_lists(errors)
            found.extend(errors.found)
            continue
        try:
            server_context(tls, where)
        except ConfigErrors as exc:
            found.extend(exc.errors)
    if found:
        found.sort(key=lambda e: (e.file, e.line, e.column))
        raise ConfigErrors(found)
