"""Request/reply between NATS and MQTT 5: reply subjects and Response Topics map both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from conf import loads
from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connack, Connect, Publish, Suback, Subscribe, Subscription
from gateway.mqtt.properties import Properties
from gateway.options import build_options
from gateway.server import Gateway


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    config = (
        f"listen: 127.0.0.1:-1\nmqtt {{ listen: 127.0.0.1:-1 }}\n"
        f'jetstream {{ store_dir: "{tmp_path}" }}\n'
    )
    running = Gateway(build_options(loads(config)))
    await running.start()
    yield running
    await running.stop()


class Mqtt5:
    """A raw MQTT 5 client: enough to subscribe, publish and read PUBLISHes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = Decoder(server=False, version=5)
        self.packets: list[object] = []

    @classmethod
    async def connect(cls, port: int, client_id: str) -> Mqtt5:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        writer.write(Connect(client_id, protocol_level=5).encode(5))
        assert isinstance(await client.next(), Connack)
        return client

    async def next(self) -> object:
        while not self.packets:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "connection closed"
            self.packets.extend(self.decoder.feed(data))
        return self.packets.pop(0)

    async def subscribe(self, topic_filter: str) -> None:
        self.writer.write(Subscribe(1, [Subscription(topic_filter, 0)]).encode(5))
        assert isinstance(await self.next(), Suback)


async def test_nats_request_answered_by_an_mqtt5_responder(gateway: Gateway) -> None:
    assert gateway.mqtt is not None and gateway.nats is not None
    responder = await Mqtt5.connect(gateway.mqtt.port, "responder")
    await responder.subscribe("svc/time")
    nc = await nats.connect(f"nats://127.0.0.1:{gateway.nats.port}")
    try:
        request = asyncio.ensure_future(nc.request("svc.time", b"now?", timeout=5))
        got = await responder.next()
        assert isinstance(got, Publish)
        assert got.payload == b"now?"
        response_topic = got.properties.response_topic
        assert response_topic is not None and response_topic.startswith("_INBOX/")
        responder.writer.write(Publish(response_topic, b"noon").encode(5))
        assert (await request).data == b"noon"
    finally:
        await nc.close()
        responder.writer.close()


async def test_mqtt5_request_answered_by_a_nats_service(gateway: Gateway) -> None:
    assert gateway.mqtt is not None and gateway.nats is not None
    nc = await nats.connect(f"nats://127.0.0.1:{gateway.nats.port}")
    requester = await Mqtt5.connect(gateway.mqtt.port, "requester")
    try:

        async def answer(msg: Msg) -> None:
            await msg.respond(b"pong:" + msg.data)

        await nc.subscribe("svc.ping", cb=answer)
        await nc.flush()
        await requester.subscribe("replies/requester")
        props = Properties(response_topic="replies/requester", correlation_data=b"42")
        requester.writer.write(Publish("svc/ping", b"1", properties=props).encode(5))
        got = await requester.next()
        assert isinstance(got, Publish)
        assert (got.topic, got.payload) == ("replies/requester", b"pong:1")
    finally:
        await nc.close()
        requester.writer.close()
