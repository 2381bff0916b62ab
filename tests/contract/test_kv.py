"""Contract: key-value buckets (session records) on streams."""

from __future__ import annotations

import pytest

from streams.api import Log
from streams.errors import BucketNotFound, KeyExists, KeyNotFound, WrongLastSequence
from streams.types import KeyValueConfig, KeyValueOp


async def test_put_get_update_create_delete(log: Log) -> None:
    kv = await log.create_key_value(KeyValueConfig(bucket="sess"))
    r1 = await kv.put("client.a", b"v1")
    entry = await kv.get("client.a")
    assert (entry.key, entry.value, entry.revision) == ("client.a", b"v1", r1)
    r2 = await kv.update("client.a", b"v2", r1)
    assert r2 > r1
    with pytest.raises(WrongLastSequence):
        await kv.update("client.a", b"v3", r1)
    with pytest.raises(KeyExists):
        await kv.create("client.a", b"again")
    await kv.delete("client.a")
    with pytest.raises(KeyNotFound):
        await kv.get("client.a")
    r3 = await kv.create("client.a", b"reborn")
    assert (await kv.get("client.a")).value == b"reborn"
    assert r3 > r2
    with pytest.raises(KeyNotFound):
        await kv.get("never")


async def test_keys_skip_deleted_and_purged(log: Log) -> None:
    kv = await log.create_key_value(KeyValueConfig(bucket="b", history=3))
    assert await kv.keys() == []
    for k in ["a", "b", "c", "a"]:
        await kv.put(k, b"x")
    await kv.delete("b")
    await kv.purge("c")
    assert await kv.keys() == ["a"]


async def test_open_and_delete_bucket(log: Log) -> None:
    with pytest.raises(BucketNotFound):
        await log.key_value("missing")
    await log.create_key_value(KeyValueConfig(bucket="b"))
    kv = await log.key_value("b")
    await kv.put("k", b"v")
    await log.delete_key_value("b")
    with pytest.raises(BucketNotFound):
        await log.key_value("b")


async def test_watch_gives_current_values_then_updates(log: Log) -> None:
    kv = await log.create_key_value(KeyValueConfig(bucket="w"))
    await kv.put("x", b"1")
    await kv.put("y", b"2")
    watcher = await kv.watch()
    try:
        initial = [await watcher.updates(5), await watcher.updates(5)]
        assert sorted((e.key, e.value) for e in initial if e) == [("x", b"1"), ("y", b"2")]
        assert await watcher.updates(5) is None
        await kv.put("x", b"3")
        await kv.delete("y")
        upd = await watcher.updates(5)
        assert upd is not None and (upd.key, upd.value) == ("x", b"3")
        dele = await watcher.updates(5)
        assert dele is not None and (dele.key, dele.operation) == ("y", KeyValueOp.DEL)
    finally:
        await watcher.stop()


async def test_watch_of_an_empty_bucket_starts_with_the_marker(log: Log) -> None:
    kv = await log.create_key_value(KeyValueConfig(bucket="e"))
    watcher = await kv.watch("a.*")
    try:
        assert await watcher.updates(5) is None
        await kv.put("b.1", b"not watched")
        await kv.put("a.1", b"watched")
        entry = await watcher.updates(5)
        assert entry is not None and entry.key == "a.1"
    finally:
        await watcher.stop()
