"""Errors of the MQTT store, under one root.

The connection layer turns any ``StoreError`` into "close without CONNACK" (on
CONNECT) or "no PUBACK/PUBREC" (on PUBLISH); ``SessionCollision`` is the one
that has its own MQTT answer (CONNACK 0x02 / 0x85: client identifier not
valid). Every failure of the underlying log arrives wrapped in a
``StoreError`` with the ``LogError`` as its ``__cause__``.
"""

from __future__ import annotations

__all__ = ["SessionCollision", "SessionConflict", "StoreError", "StoreTimeout"]


class StoreError(Exception):
    """Root of every error raised by the MQTT store."""


class StoreTimeout(StoreError, TimeoutError):
    """The log did not answer in time."""


class SessionCollision(StoreError):
    """A session record under the same hash8 belongs to another client ID (nats-mqtt.md 2.3)."""


class SessionConflict(StoreError):
    """The session record changed since it was loaded (optimistic concurrency failed)."""
