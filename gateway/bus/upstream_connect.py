"""How UpstreamBus logs in: ``UpstreamOptions`` -> keyword arguments for ``nats.connect``.

One way to log in, as the options builder guarantees: user and password, a
token, a ``.creds`` file (user JWT and seed) or an nkey seed file. A ``tls``
block becomes an ``ssl.SSLContext`` (CA file, client certificate, ``insecure``
and ``min_version``); ``tls://`` URLs without a ``tls`` block get nats-py's
default context. Secrets never appear in errors or logs.
"""

from __future__ import annotations

import ssl
from typing import Any

from gateway.bus.api import BusError
from gateway.options.model import TLSOptions, UpstreamOptions

__all__ = ["UpstreamConnectError", "connect_kwargs", "tls_context"]

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class UpstreamConnectError(BusError):
    """The upstream NATS servers could not be reached or refused the login."""


def tls_context(tls: TLSOptions) -> ssl.SSLContext:
    """A client-side SSL context for ``tls`` (server verified unless ``insecure``)."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UpstreamConnectError(f"upstream tls: cannot load certificates: {exc}") from exc
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.min_version is not None:
        version = _TLS_VERSIONS.get(tls.min_version)
        if version is None:
            raise UpstreamConnectError(f"upstream tls: unsupported min_version {tls.min_version!r}")
        ctx.minimum_version = version
    return ctx


def connect_kwargs(options: UpstreamOptions) -> dict[str, Any]:
    """The ``nats.connect`` keyword arguments for the servers, login and TLS of ``options``."""
    kwargs: dict[str, Any] = {"servers": list(options.urls)}
    if options.user is not None:
        kwargs["user"] = options.user
        if options.password is not None:
            kwargs["password"] = options.password
    if options.token is not None:
        kwargs["token"] = options.token
    if options.creds is not None:
        kwargs["user_credentials"] = options.creds
    if options.nkey is not None:
        kwargs["nkeys_seed"] = options.nkey
    if options.tls is not None:
        kwargs["tls"] = tls_context(options.tls)
        kwargs["tls_handshake_first"] = options.tls.handshake_first
    return kwargs
