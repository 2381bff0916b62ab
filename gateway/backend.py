"""The two modes' backends: which Bus and which Log the gateway runs on.

- embedded (no ``upstream`` block): a ``LocalBus`` and, when MQTT is on,
  jetgate's own on-disk log in ``jetstream.store_dir``;
- upstream: one nats-py connection to the configured NATS servers, carrying
  both the Bus and the real-JetStream log, so the gateway keeps no state.

Everything above this module (protocol sessions, the MQTT store) sees only
the ``Bus`` and ``Log`` interfaces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import nats
from nats.errors import Error as NatsError

from gateway.bus.api import Bus
from gateway.bus.local import LocalBus
from gateway.options.model import Options, UpstreamOptions
from streams.api import Log
from streams.embedded import EmbeddedLog
from streams.errors import LogError
from streams.jetstream.log import JetStreamLog
from streams.jetstream.natsbus import NatsBus

log = logging.getLogger("jetgate")


class BackendError(Exception):
    """The store cannot be opened or the upstream NATS cannot be reached."""


@dataclass
class Backend:
    """The Bus and (when MQTT is on) the Log of a running gateway."""

    bus: Bus
    log: Log | None
    mode: str

    async def close(self) -> None:
        """Close the log, then the bus."""
        if self.log is not None:
            await self.log.close()
        await self.bus.close()


async def open_backend(options: Options, name: str) -> Backend:
    """The backend the options ask for."""
    needs_log = bool(options.mqtt.port)
    if options.upstream is None:
        local = LocalBus()
        if not needs_log:
            return Backend(local, None, "embedded")
        try:
            store = await EmbeddedLog.open(options.jetstream.store_dir, local)
        except (OSError, LogError) as exc:
            raise BackendError(
                f"cannot open the store in {options.jetstream.store_dir}: {exc}"
            ) from None
        return Backend(local, store, "embedded")
    nc = await connect_upstream(options.upstream, name)
    bus = NatsBus(nc, own_connection=True)
    if not needs_log:
        return Backend(bus, None, "upstream")
    domain = options.upstream.js_domain or options.mqtt.js_domain
    try:
        upstream_log = await JetStreamLog.attach(nc, bus=bus, domain=domain)
    except LogError as exc:
        await bus.close()
        raise BackendError(f"JetStream is not available upstream: {exc}") from None
    return Backend(bus, upstream_log, "upstream")


async def connect_upstream(upstream: UpstreamOptions, name: str) -> Any:
    """A nats-py connection to the upstream servers, reconnecting forever once up."""
    kwargs: dict[str, Any] = {
        "servers": list(upstream.urls),
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
    }
    if upstream.user is not None:
        kwargs["user"] = upstream.user
        kwargs["password"] = upstream.password or ""
    if upstream.token is not None:
        kwargs["token"] = upstream.token
    if upstream.creds is not None:
        kwargs["user_credentials"] = upstream.creds
    if upstream.nkey is not None:
        kwargs["nkeys_seed"] = upstream.nkey

    async def disconnected() -> None:
        log.warning("upstream NATS disconnected; reconnecting")

    async def reconnected() -> None:
        log.info("upstream NATS reconnected")

    async def error(exc: Exception) -> None:
        log.warning("upstream NATS: %s", exc)

    kwargs.update(disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
    try:
        return await nats.connect(**kwargs)
    except (OSError, NatsError, TimeoutError) as exc:
        raise BackendError(f"cannot reach the upstream NATS {list(upstream.urls)}: {exc}") from None
