"""JetStreamLog: the ``Log`` interface on a real NATS server with JetStream, via nats-py.

Streams and consumers are real JetStream objects (``nats stream ls`` shows
them). Management calls are JetStream API requests (``$JS.API.*``, or
``$JS.<domain>.API.*`` for a JetStream domain) answered in JSON, converted by
``streams.jetstream.wire``. Push consumers deliver on their deliver subject on
NATS, where a subscriber of ``Log.bus`` sees them; acks go to the deliveries'
``$JS.ACK`` reply subjects. Publishing is pipelined (``streams.jetstream.pipeline``).

Direct get uses ``$JS.API.DIRECT.GET.<stream>`` when the stream allows it and
falls back to ``STREAM.MSG.GET`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg as NatsMsg

from gateway.bus.api import Bus
from gateway.bus.subjects import validate_subject
from streams.api import Log
from streams.errors import (
    BadRequest,
    LogClosed,
    LogError,
    LogTimeout,
    MessageNotFound,
)
from streams.jetstream.natsbus import NatsBus
from streams.jetstream.pipeline import Pipeline
from streams.jetstream.wire import (
    JSON,
    JetStreamAPIError,
    consumer_config_to_json,
    consumer_info_from_json,
    decode,
    parse_time,
    stored_msg_from_json,
    stream_config_to_json,
    stream_info_from_json,
)
from streams.types import (
    ACK,
    ACK_PREFIX,
    NAK,
    TERM,
    WPI,
    ConsumerConfig,
    ConsumerInfo,
    PubAck,
    StoredMsg,
    StreamConfig,
    StreamInfo,
)

__all__ = ["JetStreamLog"]

_DEFAULT_PREFIX = "$JS.API"

# Headers a direct get adds to the stored ones.
_DIRECT_HEADERS = frozenset(
    {
        "Nats-Stream",
        "Nats-Subject",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Num-Pending",
        "Nats-Last-Sequence",
        "Nats-UpTo-Sequence",
    }
)

_BAD_NAME_CHARS = frozenset(" \t\r\n\f\x00\x7f.*>/\\")


def _check_name(kind: str, name: str) -> None:
    if not name or not _BAD_NAME_CHARS.isdisjoint(name):
        raise BadRequest(f"invalid {kind} name {name!r}")


def _check_reply(reply: str) -> None:
    if not reply.startswith(ACK_PREFIX):
        raise BadRequest(f"not a JetStream ack subject: {reply!r}")


def _delete_error(exc: LogError, stream: str, seq: int) -> LogError:
    """A failed STREAM.MSG.DELETE as the Log interface names it."""
    # The server answers a missing sequence with a generic error: "sequence N not found"
    # (400, 10043) or, past the end, "stream store EOF" (500, 10057).
    if isinstance(exc, BadRequest | JetStreamAPIError):
        text = str(exc)
        if exc.err_code in (10043, 10057) and ("not found" in text or "EOF" in text):
            return MessageNotFound(f"no message {seq} in {stream}")
    return exc


class JetStreamLog(Log):
    """The log on real JetStream (see the module docstring).

    Build it with ``await JetStreamLog.connect(url)`` (it then owns the
    connection) or ``await JetStreamLog.attach(nc, bus=...)`` on a nats-py
    connection owned by the caller. ``bus`` must reach the same NATS server
    (the gateway's UpstreamBus); by default a ``NatsBus`` on ``nc`` is used.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        bus: Bus | None = None,
        domain: str | None = None,
        api_prefix: str | None = None,
        timeout: float = 5.0,
        own_connection: bool = False,
    ) -> None:
        if domain is not None and api_prefix is not None:
            raise BadRequest("give a JetStream domain or an API prefix, not both")
        if domain is not None:
            _check_name("domain", domain)
            api_prefix = f"$JS.{domain}.API"
        self._prefix = (api_prefix or _DEFAULT_PREFIX).rstrip(".")
        self._nc = nc
        self._own_bus = bus is None
        self._bus: Bus = bus if bus is not None else NatsBus(nc)
        self._timeout = timeout
        self._own = own_connection
        self._pipeline = Pipeline(nc, timeout)
        self._no_direct: set[str] = set()
        self._closed = False

    @classmethod
    async def attach(
        cls,
        nc: NATS,
        *,
        bus: Bus | None = None,
        domain: str | None = None,
        api_prefix: str | None = None,
        timeout: float = 5.0,
    ) -> JetStreamLog:
        """A Log on an open nats-py connection that the caller keeps owning."""
        log = cls(nc, bus=bus, domain=domain, api_prefix=api_prefix, timeout=timeout)
        await log._pipeline.start()
        return log

    @classmethod
    async def connect(
        cls,
        servers: str | list[str],
        *,
        domain: str | None = None,
        api_prefix: str | None = None,
        timeout: float = 5.0,
        nats_options: Mapping[str, Any] | None = None,
    ) -> JetStreamLog:
        """Connect to NATS (``nats_options`` go to ``nats.connect``) and return a Log owning it."""
        # A mapping, not **kwargs: mypyc 2.4 fails on keyword-only defaults beside **kwargs.
        try:
            nc = await nats.connect(servers, **(nats_options or {}))
        except (OSError, nats.errors.Error) as exc:
            raise LogClosed(f"cannot connect to NATS at {servers}: {exc}") from exc
        log = cls(nc, domain=domain, api_prefix=api_prefix, timeout=timeout, own_connection=True)
        await log._pipeline.start()
        return log

    @property
    def bus(self) -> Bus:
        return self._bus

    @property
    def api_prefix(self) -> str:
        """The JetStream API subject prefix in use (``$JS.API`` or ``$JS.<domain>.API``)."""
        return self._prefix

    # -- API requests ---------------------------------------------------------------

    async def _raw_request(self, subject: str, body: JSON | None) -> NatsMsg:
        if self._closed:
            raise LogClosed("log closed")
        # Read-your-writes: whatever this Log queued goes out before the request.
        await self._pipeline.drain(self._timeout)
        data = json.dumps(body).encode() if body is not None else b""
        try:
            return await self._nc.request(subject, data, timeout=self._timeout)
        except nats.errors.NoRespondersError:
            raise
        except nats.errors.TimeoutError:
            raise LogTimeout(f"no JetStream answer on {subject} in {self._timeout}s") from None
        except nats.errors.Error as exc:
            raise LogClosed(f"JetStream request failed: {exc}") from exc

    async def _api(self, op: str, body: JSON | None = None) -> JSON:
        subject = f"{self._prefix}.{op}"
        try:
            msg = await self._raw_request(subject, body)
        except nats.errors.NoRespondersError:
            raise JetStreamAPIError(503, 0, "JetStream not enabled (no responders)") from None
        return decode(msg.data)

    # -- streams ------------------------------------------------------------------

    async def add_stream(self, config: StreamConfig) -> StreamInfo:
        _check_name("stream", config.name)
        for subject in config.subjects:
            self._check_subject(subject, wildcards=True)
        self._no_direct.discard(config.name)
        resp = await self._api(f"STREAM.CREATE.{config.name}", stream_config_to_json(config))
        return stream_info_from_json(resp)

    async def update_stream(self, config: StreamConfig) -> StreamInfo:
        _check_name("stream", config.name)
        for subject in config.subjects:
            self._check_subject(subject, wildcards=True)
        self._no_direct.discard(config.name)
        resp = await self._api(f"STREAM.UPDATE.{config.name}", stream_config_to_json(config))
        return stream_info_from_json(resp)

    async def stream_info(self, name: str, subjects_filter: str | None = None) -> StreamInfo:
        _check_name("stream", name)
        if subjects_filter is None:
            return stream_info_from_json(await self._api(f"STREAM.INFO.{name}"))
        # The server answers with at most a page of subjects (100,000) per request.
        subjects: dict[str, int] = {}
        while True:
            resp = await self._api(
                f"STREAM.INFO.{name}", {"subjects_filter": subjects_filter, "offset": len(subjects)}
            )
            page = (resp.get("state") or {}).get("subjects") or {}
            subjects.update((str(subject), int(n)) for subject, n in page.items())
            if not page or len(subjects) >= int(resp.get("total", 0)):
                info = stream_info_from_json(resp)
                return replace(info, state=replace(info.state, subjects=subjects))

    async def stream_names(self) -> list[str]:
        names: list[str] = []
        while True:
            resp = await self._api("STREAM.NAMES", {"offset": len(names)})
            page = resp.get("streams") or []
            names.extend(page)
            if not page or len(names) >= int(resp.get("total", 0)):
                return sorted(names)

    async def delete_stream(self, name: str) -> None:
        _check_name("stream", name)
        self._no_direct.discard(name)
        await self._api(f"STREAM.DELETE.{name}")

    async def purge_stream(self, name: str, subject: str | None = None) -> int:
        _check_name("stream", name)
        body: JSON = {}
        if subject is not None:
            self._check_subject(subject, wildcards=True)
            body["filter"] = subject
        resp = await self._api(f"STREAM.PURGE.{name}", body)
        return int(resp.get("purged", 0))

    @staticmethod
    def _check_subject(subject: str, *, wildcards: bool) -> None:
        try:
            validate_subject(subject, wildcards=wildcards)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    # -- publishing -----------------------------------------------------------------

    def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> asyncio.Future[PubAck]:
        try:
            validate_subject(subject)
        except ValueError as exc:
            fut: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
            fut.set_exception(BadRequest(str(exc)))
            return fut
        return self._pipeline.publish(subject, payload, headers)

    def publish_then(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        then: Callable[[PubAck | LogError], None],
    ) -> None:
        try:
            validate_subject(subject)
        except ValueError as exc:
            then(BadRequest(str(exc)))
            return
        self._pipeline.publish_then(subject, payload, headers, then)

    # -- direct access ----------------------------------------------------------------

    async def get_msg(self, stream: str, seq: int) -> StoredMsg:
        _check_name("stream", stream)
        return await self._get(stream, {"seq": seq})

    async def get_last_msg(self, stream: str, subject: str) -> StoredMsg:
        _check_name("stream", stream)
        self._check_subject(subject, wildcards=True)
        return await self._get(stream, {"last_by_subj": subject})

    async def _get(self, stream: str, body: JSON) -> StoredMsg:
        if stream not in self._no_direct:
            try:
                msg = await self._raw_request(f"{self._prefix}.DIRECT.GET.{stream}", body)
            except nats.errors.NoRespondersError:
                # The stream does not allow direct get (or does not exist): ask the API.
                self._no_direct.add(stream)
            else:
                return self._direct_msg(stream, msg)
        resp = await self._api(f"STREAM.MSG.GET.{stream}", body)
        return stored_msg_from_json(stream, resp)

    @staticmethod
    def _direct_msg(stream: str, msg: NatsMsg) -> StoredMsg:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status == "404":
            raise MessageNotFound(f"no such message in {stream}")
        if status is not None:
            raise JetStreamAPIError(int(status), 0, str(headers.get("Description", "")))
        stored = {k: v for k, v in headers.items() if k not in _DIRECT_HEADERS}
        return StoredMsg(
            stream=headers.get("Nats-Stream", stream),
            subject=headers.get("Nats-Subject", ""),
            seq=int(headers.get("Nats-Sequence", 0)),
            data=msg.data,
            headers=stored or None,
            time=parse_time(headers.get("Nats-Time-Stamp")),
        )

    async def delete_msg(self, stream: str, seq: int) -> None:
        _check_name("stream", stream)
        try:
            await self._api(f"STREAM.MSG.DELETE.{stream}", {"seq": seq, "no_erase": True})
        except LogError as exc:
            raise _delete_error(exc, stream, seq) from None

    def delete_msg_then(
        self, stream: str, seq: int, then: Callable[[LogError | None], None]
    ) -> None:
        """Through the pipeline: no task, future or inbox subscription per message."""
        _check_name("stream", stream)

        def parse(data: bytes) -> PubAck | LogError:
            try:
                decode(data)
            except LogError as exc:
                return _delete_error(exc, stream, seq)
            return PubAck(stream, seq)

        def done(result: PubAck | LogError) -> None:
            then(result if isinstance(result, LogError) else None)

        body = json.dumps({"seq": seq, "no_erase": True}).encode()
        self._pipeline.request_then(f"{self._prefix}.STREAM.MSG.DELETE.{stream}", body, parse, done)

    # -- consumers ------------------------------------------------------------------------

    async def add_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        _check_name("stream", stream)
        if config.deliver_subject:
            self._check_subject(config.deliver_subject, wildcards=False)
        for f in config.filters:
            self._check_subject(f, wildcards=True)
        name = config.name or config.durable_name
        body: JSON = {"stream_name": stream, "config": consumer_config_to_json(config)}
        if name:
            _check_name("consumer", name)
            # "create": an equal config returns the consumer, a different one is an error.
            body["action"] = "create"
            resp = await self._api(f"CONSUMER.CREATE.{stream}.{name}", body)
        else:
            resp = await self._api(f"CONSUMER.CREATE.{stream}", body)
        return consumer_info_from_json(resp)

    async def update_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        _check_name("stream", stream)
        for f in config.filters:
            self._check_subject(f, wildcards=True)
        name = config.name or config.durable_name
        if not name:
            raise BadRequest("updating a consumer needs its name")
        _check_name("consumer", name)
        body: JSON = {
            "stream_name": stream,
            "config": consumer_config_to_json(config),
            "action": "update",
        }
        resp = await self._api(f"CONSUMER.CREATE.{stream}.{name}", body)
        return consumer_info_from_json(resp)

    async def consumer_info(self, stream: str, name: str) -> ConsumerInfo:
        _check_name("stream", stream)
        _check_name("consumer", name)
        await self._pipeline.settle()
        return consumer_info_from_json(await self._api(f"CONSUMER.INFO.{stream}.{name}"))

    async def consumer_names(self, stream: str) -> list[str]:
        _check_name("stream", stream)
        names: list[str] = []
        while True:
            resp = await self._api(f"CONSUMER.NAMES.{stream}", {"offset": len(names)})
            page = resp.get("consumers") or []
            names.extend(page)
            if not page or len(names) >= int(resp.get("total", 0)):
                return sorted(names)

    async def delete_consumer(self, stream: str, name: str) -> None:
        _check_name("stream", stream)
        _check_name("consumer", name)
        await self._api(f"CONSUMER.DELETE.{stream}.{name}")

    # -- acknowledgements ---------------------------------------------------------------------

    async def ack(self, reply: str) -> None:
        _check_reply(reply)
        self._pipeline.ack(reply, ACK)

    def ack_nowait(self, reply: str) -> None:
        _check_reply(reply)
        self._pipeline.ack_nowait(reply, ACK)

    async def nak(self, reply: str, delay: float | None = None) -> None:
        _check_reply(reply)
        body = NAK
        if delay is not None and delay > 0:
            body = NAK + b" " + json.dumps({"delay": round(delay * 1e9)}).encode()
        self._pipeline.ack(reply, body)

    async def in_progress(self, reply: str) -> None:
        _check_reply(reply)
        self._pipeline.ack(reply, WPI)

    async def term(self, reply: str) -> None:
        _check_reply(reply)
        self._pipeline.ack(reply, TERM)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(LogError):
            await self._pipeline.settle(1.0)
        await self._pipeline.close(self._timeout)
        if self._own_bus:
            await self._bus.close()
        if self._own:
            with contextlib.suppress(nats.errors.Error):
                await self._nc.close()

    def __repr__(self) -> str:
        return f"JetStreamLog(api_prefix={self._prefix!r})"
