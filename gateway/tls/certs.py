"""Certificates as files and bytes: PEM reading, fingerprints and public-key pins."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PEM_SUFFIXES = (".pem", ".crt", ".cer")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as 64 lower-case hex digits (``openssl x509 -fingerprint``)."""
    return hashlib.sha256(der).hexdigest()


def public_key_pin(der: bytes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo: the NATS server's ``pinned_certs`` value."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def der_of(cert: x509.Certificate) -> bytes:
    """The DER bytes of ``cert``."""
    return cert.public_bytes(Encoding.DER)


def read_pem_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Every certificate in a PEM file (``ValueError`` when there is none)."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (created 0600, never widened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)
