"""The error root of ``gateway.tls``."""

from __future__ import annotations


class TLSError(Exception):
    """A TLS setup problem that is not a configuration-file mistake (see ``context``)."""


class CertificateAuthorityError(TLSError):
    """The built-in CA cannot do what was asked (no CA yet, unknown certificate, bad name)."""


class TlsClosedError(ConnectionResetError):
    """The client closed its connection before the TLS handshake finished."""
