"""The built-in certificate authority: ``jetgate ca init|server|client|list|revoke``.

For operators without a PKI of their own. Everything lives in one directory
(by default ``<store_dir>/ca``)::

    ca-cert.pem  ca-key.pem        the CA (the key is 0600, never logged or served)
    server-cert.pem server-key.pem the broker certificate (issued on first start)
    issued/<fingerprint>.pem       every certificate issued, for ``list`` and ``revoke``
    revoked.txt                    fingerprints of revoked certificates, one a line

Keys are ECDSA P-256: small, and cheap to handshake with. ``revoked.txt`` is
the ``revoked`` list of every listener that uses the built-in CA, and it is
re-read while the gateway runs, so ``jetgate ca revoke`` ends a connected
client's session without a restart.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.tls.certs import der_of, fingerprint, write_private
from gateway.tls.errors import CertificateAuthorityError

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server-cert.pem"
SERVER_KEY = "server-key.pem"
REVOKED = "revoked.txt"
ISSUED = "issued"
DEFAULT_CA_DAYS = 3650
DEFAULT_SERVER_DAYS = 825
DEFAULT_CLIENT_DAYS = 365
#: A broker certificate this close to its end is replaced at start.
RENEW_BEFORE = datetime.timedelta(days=7)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@-]+")


def default_ca_dir(store_dir: str) -> str:
    """Where the built-in CA lives unless ``ca_dir`` says otherwise."""
    return os.path.join(store_dir, "ca")


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the CA issued, as ``jetgate ca list`` shows it."""

    name: str
    kind: str
    fingerprint: str
    not_after: datetime.datetime
    revoked: bool
    path: Path


@dataclass(frozen=True)
class ClientFiles:
    """The files of one issued client certificate (a bundle for paho or mosquitto)."""

    cert: Path
    key: Path
    ca: Path
    fingerprint: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class BuiltinCA:
    """A CA in a directory of its own; ``init`` creates it, ``open`` loads it."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.directory = directory
        self.cert = cert
        self._key = key

    # -- creating and opening ---------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        name: str = "jetgate CA",
        days: int = DEFAULT_CA_DAYS,
    ) -> BuiltinCA:
        """Create a CA in ``directory``; refuses to overwrite an existing one."""
        path = Path(directory)
        if (path / CA_CERT).exists() or (path / CA_KEY).exists():
            raise CertificateAuthorityError(f"a CA already exists in {path}")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(path / CA_KEY, _key_pem(key))
        (path / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (path / ISSUED).mkdir(exist_ok=True)
        (path / REVOKED).touch()
        return cls(path, cert, key)

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> BuiltinCA:
        """Load the CA of ``directory``."""
        path = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((path / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((path / CA_KEY).read_bytes(), None)
        except FileNotFoundError:
            raise CertificateAuthorityError(
                f"no CA in {path}: create one with `jetgate ca init`"
            ) from None
        except (OSError, ValueError) as exc:
            raise CertificateAuthorityError(f"cannot read the CA in {path}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateAuthorityError(f"the CA key in {path} is not an EC key")
        return cls(path, cert, key)

    @classmethod
    def open_or_init(cls, directory: str | os.PathLike[str]) -> tuple[BuiltinCA, bool]:
        """The CA of ``directory``, created if absent; True when it was just created."""
        if (Path(directory) / CA_CERT).exists():
            return cls.open(directory), False
        return cls.init(directory), True

    # -- paths -------------------------------------------------------------------

    @property
    def cert_path(self) -> Path:
        """The CA certificate that clients trust."""
        return self.directory / CA_CERT

    @property
    def revoked_path(self) -> Path:
        """The revoked list (fingerprints), re-read by running gateways."""
        return self.directory / REVOKED

    # -- issuing -----------------------------------------------------------------

    def _issue(
        self,
        subject: x509.Name,
        sans: Sequence[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        days: int,
        key: ec.EllipticCurvePrivateKey,
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = self.directory / ISSUED
        issued.mkdir(exist_ok=True)
        (issued / f"{fingerprint(der_of(cert))}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
        )
        return cert

    def issue_server(
        self,
        hosts: Sequence[str],
        days: int = DEFAULT_SERVER_DAYS,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> tuple[Path, Path]:
        """A broker certificate for host names and addresses; returns (cert, key) paths."""
        if not hosts:
            raise CertificateAuthorityError("a server certificate needs at least one host")
        sans: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        cert = self._issue(subject, sans, ExtendedKeyUsageOID.SERVER_AUTH, days, key)
        out = Path(out_dir) if out_dir is not None else self.directory
        out.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = out / SERVER_CERT, out / SERVER_KEY
        write_private(key_path, _key_pem(key))
        cert_path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self.cert_path.read_bytes()
        )
        return cert_path, key_path

    def server_certificate(self, hosts: Sequence[str]) -> tuple[Path, Path, bool]:
        """The broker certificate, issued when absent or about to expire; True when new."""
        cert_path, key_path = self.directory / SERVER_CERT, self.directory / SERVER_KEY
        if cert_path.exists() and key_path.exists():
            try:
                cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
            except ValueError:
                cert = None
            if cert is not None and cert.not_valid_after_utc - RENEW_BEFORE > _now():
                return cert_path, key_path, False
        cert_path, key_path = self.issue_server(hosts)
        return cert_path, key_path, True

    def issue_client(
        self,
        name: str,
        *,
        email: str | None = None,
        days: int = DEFAULT_CLIENT_DAYS,
        out_dir: str | os.PathLike[str] | None = None,
        organization: str | None = None,
    ) -> ClientFiles:
        """A client certificate (CN=name, optional e-mail SAN) with its key and the CA.

        Written to ``out_dir`` (default ``<ca>/clients/<name>``) as ``client.crt``,
        ``client.key`` and ``ca.crt``: mosquitto's ``--cafile ca.crt --cert
        client.crt --key client.key``, paho's ``tls_set(ca_certs, certfile, keyfile)``.
        """
        if not name or _SAFE_NAME.sub("", name) != name:
            raise CertificateAuthorityError(
                f'bad client name "{name}": letters, digits, "_", ".", "@" and "-" only'
            )
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        sans: list[x509.GeneralName] = [x509.RFC822Name(email)] if email else []
        key = _key()
        cert = self._issue(x509.Name(attributes), sans, ExtendedKeyUsageOID.CLIENT_AUTH, days, key)
        out = Path(out_dir) if out_dir is not None else self.directory / "clients" / name
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = ClientFiles(
            out / "client.crt", out / "client.key", out / "ca.crt", fingerprint(der_of(cert))
        )
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_private(files.key, _key_pem(key))
        files.ca.write_bytes(self.cert_path.read_bytes())
        return files

    # -- listing and revoking ------------------------------------------------------

    def revoked(self) -> set[str]:
        """Fingerprints on the revoked list."""
        try:
            text = self.revoked_path.read_text()
        except FileNotFoundError:
            return set()
        return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate issued, oldest expiry first."""
        revoked = self.revoked()
        out = []
        for path in sorted((self.directory / ISSUED).glob("*.pem")):
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            try:
                usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
                kind = "server" if ExtendedKeyUsageOID.SERVER_AUTH in usage else "client"
            except x509.ExtensionNotFound:
                kind = "?"
            fp = fingerprint(der_of(cert))
            out.append(
                IssuedCertificate(
                    str(names[0].value) if names else "",
                    kind,
                    fp,
                    cert.not_valid_after_utc,
                    fp in revoked,
                    path,
                )
            )
        out.sort(key=lambda c: (c.not_after, c.name))
        return out

    def revoke(self, what: str) -> list[IssuedCertificate]:
        """Revoke by client name (every certificate with that CN) or fingerprint (or a prefix)."""
        wanted = what.lower().replace(":", "")
        matches = [
            c
            for c in self.issued()
            if c.name == what or (len(wanted) >= 8 and c.fingerprint.startswith(wanted))
        ]
        if not matches:
            raise CertificateAuthorityError(
                f'no issued certificate named or fingerprinted "{what}"'
            )
        already = self.revoked()
        lines = [f"{c.fingerprint}  # {c.name}\n" for c in matches if c.fingerprint not in already]
        if lines:
            # Write a new file and rename it over the old one: readers never see half a list.
            current = self.revoked_path.read_text() if self.revoked_path.exists() else ""
            tmp = self.revoked_path.with_suffix(".tmp")
            tmp.write_text(current + "".join(lines))
            os.replace(tmp, self.revoked_path)
        return matches
