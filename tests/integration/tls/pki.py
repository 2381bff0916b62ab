"""A test PKI made with ``cryptography``: a CA, a broker certificate, clients, a rogue CA.

Clients (``Pki.clients[name]``):

- ``dn``: subject ``O=Acme, CN=dev-42``, no alternative names (maps to ``CN=dev-42,O=Acme``);
- ``mail``: e-mail ``dev@acme.io`` and DNS ``mail.acme.io`` (the e-mail wins);
- ``dns``: DNS ``sensor-7.acme.io`` only;
- ``other``: ``CN=nobody`` (no user of that name);
- ``rogue``: ``O=Acme, CN=dev-42`` again, but issued by the rogue CA;
- ``expired``: valid until yesterday; ``revoked``: ``CN=gone``, for the revoked lists.

Also an expired broker certificate and a key that matches nothing, for config errors.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.tls.certs import fingerprint

DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and key on disk."""

    cert: Path
    key: Path
    fingerprint: str


@dataclass
class Pki:
    """Paths of every certificate of the test PKI."""

    root: Path
    ca: Path
    rogue_ca: Path
    server: Issued
    expired_server: Issued
    stray_key: Path
    clients: dict[str, Issued] = field(default_factory=dict)
    _ca: _Issuer | None = field(default=None, repr=False)

    def client_valid_for(self, stem: str, cn: str, lifetime: datetime.timedelta) -> Issued:
        """A client certificate of the test CA that expires ``lifetime`` from now."""
        assert self._ca is not None
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH
        return self._ca.issue(stem, _name(cn), [], client_auth, lifetime=lifetime)

    def client_context(self, name: str | None = None, ca: Path | None = None) -> ssl.SSLContext:
        """A client context trusting the test CA, presenting client ``name`` if given."""
        context = ssl.create_default_context(cafile=str(ca or self.ca))
        if name is not None:
            issued = self.clients[name]
            context.load_cert_chain(str(issued.cert), str(issued.key))
        return context


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class _Issuer:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = root / f"{name.replace(' ', '_')}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        subject: x509.Name,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        expired: bool = False,
        lifetime: datetime.timedelta = 30 * DAY,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 10 * DAY, now - DAY) if expired else (now - DAY, now + lifetime)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.root / f"{stem}.crt", self.root / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return Issued(cert_path, key_path, fingerprint(der))


def make_pki(root: Path) -> Pki:
    """Write the whole test PKI under ``root``."""
    ca = _Issuer(root, "Test CA")
    rogue = _Issuer(root, "Rogue CA")
    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    pki = Pki(
        root=root,
        ca=ca.path,
        rogue_ca=rogue.path,
        server=ca.issue("server", _name("localhost"), server_sans, server_auth),
        expired_server=ca.issue("old-server", _name("localhost"), server_sans, server_auth, True),
        stray_key=rogue.issue("stray", _name("stray"), [], client_auth).key,
        _ca=ca,
    )
    pki.clients = {
        "dn": ca.issue("dn", _name("dev-42", "Acme"), [], client_auth),
        "mail": ca.issue(
            "mail",
            _name("mailer", "Acme"),
            [x509.RFC822Name("dev@acme.io"), x509.DNSName("mail.acme.io")],
            client_auth,
        ),
        "dns": ca.issue("dns", _name("sensor"), [x509.DNSName("sensor-7.acme.io")], client_auth),
        "other": ca.issue("other", _name("nobody"), [], client_auth),
        "rogue": rogue.issue("rogue", _name("dev-42", "Acme"), [], client_auth),
        "expired": ca.issue("expired", _name("old"), [], client_auth, expired=True),
        "revoked": ca.issue("revoked", _name("gone"), [], client_auth),
    }
    return pki
