"""Authorized and revoked client certificates, and the per-listener certificate policy.

A list is made of entries, each a SHA-256 fingerprint of a certificate (64 hex
digits), a file (PEM certificates, or fingerprints one a line with ``#``
comments) or a directory (every ``*.pem``, ``*.crt``, ``*.cer`` file in it as
PEM, every ``*.txt`` file as fingerprints). ``reload_if_changed`` re-reads the
list when a file or directory changed (size, modification time, entries).

The policy, checked once the handshake is done (and again whenever a list
changes, for the connections still open): a revoked certificate is refused
even with a trusted chain; with ``authorized_only`` only listed certificates
are accepted; revoked wins over authorized; ``pinned_certs`` restrict to the
listed public keys.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from gateway.options.model import TLSOptions
from gateway.tls import handshake
from gateway.tls.certs import PEM_SUFFIXES, der_of, fingerprint, public_key_pin

log = logging.getLogger("jetgate.tls")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PEM_MARK = b"-----BEGIN CERTIFICATE-----"

Snapshot = tuple[tuple[str, int, int], ...]


def _parse_fingerprints(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().lower().replace(":", "")
        if word.startswith("sha256"):
            word = word[6:]
        if _HEX64.match(word):
            out.add(word)
    return out


class CertificateList:
    """One ``authorized`` or ``revoked`` list: fingerprints, plus the PEM certificates read."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = tuple(entries)
        self.fingerprints: frozenset[str] = frozenset()
        self.certificates: tuple[x509.Certificate, ...] = ()
        self._snapshot: Snapshot = ()
        self.reload()

    def __contains__(self, fp: str) -> bool:
        return fp in self.fingerprints

    def __len__(self) -> int:
        return len(self.fingerprints)

    @property
    def paths(self) -> tuple[str, ...]:
        """The entries that are files or directories."""
        return tuple(e for e in self.entries if not _HEX64.match(e))

    def reload(self) -> None:
        """Read every entry now; raises ``OSError``/``ValueError`` for an unreadable one."""
        fps: set[str] = set()
        certs: list[x509.Certificate] = []
        for entry in self.entries:
            if _HEX64.match(entry):
                fps.add(entry)
            elif os.path.isdir(entry):
                for path in sorted(Path(entry).iterdir()):
                    if path.suffix.lower() in PEM_SUFFIXES or path.suffix.lower() == ".txt":
                        self._read_file(path, fps, certs)
            else:
                self._read_file(Path(entry), fps, certs)
        self.fingerprints = frozenset(fps)
        self.certificates = tuple(certs)
        self._snapshot = self._take_snapshot()

    @staticmethod
    def _read_file(path: Path, fps: set[str], certs: list[x509.Certificate]) -> None:
        data = path.read_bytes()
        if _PEM_MARK in data:
            found = x509.load_pem_x509_certificates(data)
            certs.extend(found)
            fps.update(fingerprint(der_of(c)) for c in found)
        else:
            fps.update(_parse_fingerprints(data.decode("utf-8", "replace")))

    def _take_snapshot(self) -> Snapshot:
        out: list[tuple[str, int, int]] = []
        for entry in self.paths:
            try:
                paths = [Path(entry)]
                if paths[0].is_dir():
                    paths.extend(sorted(paths[0].iterdir()))
                for path in paths:
                    st = path.stat()
                    out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((entry, -1, -1))
        return tuple(out)

    def reload_if_changed(self) -> bool:
        """Re-read when a file changed; True when the list was re-read.

        A file that cannot be read keeps the list as it was (logged): a revoked
        list must not silently become empty because an editor replaced a file.
        """
        if not self.paths or self._take_snapshot() == self._snapshot:
            return False
        try:
            self.reload()
        except (OSError, ValueError) as exc:
            log.warning("certificate list %s not re-read: %s", ", ".join(self.paths), exc)
            self._snapshot = self._take_snapshot()
            return False
        return True


class CertificatePolicy:
    """The checks a listener makes on a client certificate once the handshake is done."""

    def __init__(self, tls: TLSOptions, extra_revoked: Sequence[str] = ()) -> None:
        self.authorized = CertificateList(tls.authorized)
        self.revoked = CertificateList((*tls.revoked, *extra_revoked))
        self.pins = frozenset(tls.pinned_certs)
        self.authorized_only = tls.authorized_only
        self.required = tls.wants_client_certificate
        self._pin_cache: dict[str, str] = {}

    def refusal(self, der: bytes | None) -> str | None:
        """Why the certificate ``der`` is refused here, or ``None`` when it is accepted."""
        if der is None:
            return handshake.NO_CERTIFICATE if self.required else None
        fp = fingerprint(der)
        if fp in self.revoked:
            return handshake.REVOKED
        if self.authorized_only and fp not in self.authorized:
            return handshake.NOT_AUTHORIZED
        if self.pins:
            pin = self._pin_cache.get(fp)
            if pin is None:
                pin = self._pin_cache[fp] = public_key_pin(der)
            if pin not in self.pins:
                return handshake.NOT_PINNED
        return None

    def reload_if_changed(self) -> bool:
        """Re-read changed list files; True when anything was re-read."""
        authorized = self.authorized.reload_if_changed()
        revoked = self.revoked.reload_if_changed()
        return authorized or revoked
