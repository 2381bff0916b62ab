"""TLS for every listener: SSL contexts from ``tls`` blocks, certificate identity, the built-in CA.

Modules, each one concept:

- ``errors``: the error root of the package.
- ``certs``: reading PEM files, fingerprints (SHA-256 of the certificate) and
  pins (SHA-256 of the public key, as the NATS server's ``pinned_certs``).
- ``identity``: which user a client certificate names (``verify_and_map``, ``map_field``).
- ``lists``: authorized and revoked certificates, re-read when their files change.
- ``context``: ``ssl.SSLContext`` from a ``TLSOptions``, with file mistakes as ``ConfigError``.
- ``handshake``: why a handshake failed, in words for the log and the counters.
- ``ca``: the built-in certificate authority (``jetgate ca ...``).
- ``runtime``: per-listener TLS as the running gateway uses it (policy checks,
  live revocation, the built-in broker certificate).

This ``__init__`` imports nothing, so that the listeners can use ``handshake``
without importing the rest.
"""
