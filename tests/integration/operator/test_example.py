"""The documented example ``deploy/examples/operator.conf`` and its identities work as described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conf import loads
from gateway.options import build_options
from gateway.server import Gateway
from tests.integration.auth.helpers import (
    NOT_AUTHORIZED,
    mqtt_connack,
    mqtt_port,
    nats_connect,
    nats_refusal,
)
from tests.integration.mqtt.helpers import PahoClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "examples" / "operator.conf"
IDS = ROOT / "deploy" / "examples" / "operator"


@pytest.fixture
async def gateway(tmp_path: Path):  # type: ignore[no-untyped-def]
    text = EXAMPLE.read_text()
    text = text.replace('"deploy/examples/operator/', f'"{ROOT}/deploy/examples/operator/')
    text = text.replace("port: 4222", "listen: 127.0.0.1:-1")
    text = re.sub(r"mqtt \{\s*port: 1883\s*\}", "mqtt { listen: 127.0.0.1:-1 }", text)
    text = text.replace('"./data/jetstream"', f'"{tmp_path}"')
    server = Gateway(build_options(loads(text)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_example_identities(gateway: Gateway) -> None:
    svc = await nats_connect(gateway, user_credentials=str(IDS / "svc.creds"))
    sensor = PahoClient(mqtt_port(gateway), 5)
    sensor.client.username_pw_set("sensor", (IDS / "sensor.jwt").read_text().strip())
    try:
        _flags, reason, _props = await sensor.connect()
        assert reason.value == 0
        readings = await svc.subscribe("sensors.>")
        await svc.flush()
        await sensor.publish("sensors/t1", b"21.5", 1)
        msg = await readings.next_msg(timeout=5)
        assert (msg.subject, msg.data) == ("sensors.t1", b"21.5")
    finally:
        await sensor.stop()
        await svc.close()
    # svc is no bearer token (and NATS-only); sensor is MQTT-only.
    assert (
        await mqtt_connack(gateway, 5, "svc", (IDS / "svc.jwt").read_text().strip())
        == NOT_AUTHORIZED
    )
    assert "Authorization Violation" in await nats_refusal(
        gateway, user_credentials=str(IDS / "sensor.creds")
    )
