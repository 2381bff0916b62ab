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

from gateway.bus.api import Bus
from gateway.bus.local import LocalBus
from gateway.bus.upstream import UpstreamBus
from gateway.bus.upstream_connect import UpstreamConnectError
from gateway.options.model import Options
from streams.api import Log
from streams.embedded import EmbeddedLog
from streams.errors import LogError
from streams.jetstream.log import JetStreamLog

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
    try:
        bus = await UpstreamBus.connect(options.upstream, name=name, reconnect_wait=0.5)
    except UpstreamConnectError as exc:
        raise BackendError(str(exc)) from None
    if not needs_log:
        return Backend(bus, None, "upstream")
    domain = options.upstream.js_domain or options.mqtt.js_domain
    try:
        upstream_log = await JetStreamLog.attach(
            bus.nc, bus=bus, domain=domain, timeout=options.mqtt.js_api_timeout
        )
    except LogError as exc:
        await bus.close()
        raise BackendError(f"JetStream is not available upstream: {exc}") from None
    return Backend(bus, upstream_log, "upstream")
