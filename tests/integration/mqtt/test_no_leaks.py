"""Ended connections are freed, however they ended.

A gateway runs for months while devices come and go: nothing of a connection
(its session, subscriptions, timers, tasks) may stay referenced once it has
ended, whether it said DISCONNECT, dropped, sent garbage, was taken over, had
a Will or a persistent session.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.packets import Will
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import RawFactory

pytestmark = pytest.mark.integration


def _alive(prefix: str) -> list[str]:
    # By type, not by weakref: compiled (mypyc) classes take no weak references.
    return [
        o.client_id
        for o in gc.get_objects()
        if type(o) is MqttConnection and o.client_id.startswith(prefix)
    ]


async def _gone(prefix: str, *, collect: bool) -> list[str]:
    """The connections of ``prefix`` still alive once they had time to end (``collect``:
    running the cycle collector before each look)."""
    # Connection tasks wind down (socket close, session save) after the client has
    # seen the end; no event marks the very end, so look a few times.
    for _ in range(200):
        if collect:
            gc.collect()
        if not _alive(prefix):
            break
        await asyncio.sleep(0.02)
    return _alive(prefix)


async def _varied_sessions(gateway: Gateway, raw: RawFactory, round_: int, version: int) -> None:
    tag = f"leak{round_}-{version}"
    keep = Properties(session_expiry_interval=60) if version == 5 else None
    sub = await raw(gateway, version)
    await sub.connect(f"{tag}-sub", clean=True)
    assert await sub.subscribe("leak/#", qos=1) == [1]
    pub = await raw(gateway, version)
    await pub.connect(f"{tag}-pub")
    await pub.publish("leak/a", b"x", qos=1)
    await sub.receive_acked(1)
    await sub.disconnect()
    await pub.disconnect()

    persistent = await raw(gateway, version)
    await persistent.connect(f"{tag}-keep", clean=False, properties=keep)
    assert await persistent.subscribe("keep/#", qos=1) == [1]
    persistent.abort()  # no DISCONNECT: the session is kept, the connection must go

    willing = await raw(gateway, version)
    await willing.connect(f"{tag}-will", will=Will("will/t", b"bye", qos=1))
    willing.abort()

    first = await raw(gateway, version)
    await first.connect(f"{tag}-twice")
    second = await raw(gateway, version)
    await second.connect(f"{tag}-twice")  # takes the client id over
    await first.closed()
    await second.disconnect()

    garbage = await raw(gateway, version)
    await garbage.connect(f"{tag}-bad")
    garbage.send(b"\xf0\x00")  # reserved packet type: malformed, the gateway closes
    await garbage.closed()

    resumed = await raw(gateway, version)
    await resumed.connect(f"{tag}-keep", clean=True)  # ends the stored session
    await resumed.disconnect()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
async def test_no_connection_outlives_its_end(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    for round_ in range(3):
        await _varied_sessions(gateway, raw, round_, version)
    assert await _gone("leak", collect=True) == []


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
async def test_ended_connections_are_freed_without_the_cycle_collector(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """No reference cycle holds an ended connection (its socket, streams and session):
    reference counting frees it at once, the cycle collector has nothing of it to do.
    (It did: ~40 objects per connection, ~5% of a TLS connection's CPU.)"""
    gc.collect()
    gc.disable()
    try:
        await _varied_sessions(gateway, raw, 9, version)
        assert await _gone("leak9", collect=False) == []
    finally:
        gc.enable()
