"""What the gateway tests look at from outside: objects in the bucket, records on the input topic, raw HTTP."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from typing import Any

import httpx2 as httpx
from aiokafka import TopicPartition

from consumer.gateway.submit import make_storage
from consumer.plumbing.kafka import make_consumer, partitions_for, start_consumer
from devtools.settings import DevSettings


def objects_under(settings: DevSettings) -> list[str]:
    """Keys under the gateway's upload prefix: complete objects and unfinished multipart uploads alike."""
    storage = make_storage(settings)
    keys = [
        o.object_name
        for o in storage.list_objects(settings.s3_bucket, prefix=settings.gateway_upload_prefix, recursive=True)
    ]
    uploads = storage._list_multipart_uploads(settings.s3_bucket, prefix=settings.gateway_upload_prefix)
    return keys + [f"(unfinished) {u.object_name}" for u in uploads.uploads]


async def input_records(settings: DevSettings) -> int:
    """How many records the input topic holds: every published AudioReference."""
    consumer = make_consumer(settings, group_id=None)
    await start_consumer(consumer)
    try:
        parts = [
            TopicPartition(settings.kafka_input_topic, p)
            for p in await partitions_for(consumer, settings.kafka_input_topic)
        ]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


def png_bytes() -> bytes:
    """A real 1x1 PNG: a picture, not audio."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


async def post_form(url: str, fields: list[tuple[str, Any]], **kwargs: Any) -> httpx.Response:
    """A multipart POST with the parts in exactly the given order (curl's -F order)."""
    files = [(name, value) for name, value in fields]
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.post(f"{url}/v1/audio/transcriptions", files=files, **kwargs)


async def poll(url: str, event_id: str, timeout_s: float = 120, **params: str) -> httpx.Response:
    """GET the result until it is there (not 202 or 404)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            answer = await client.get(f"{url}/v1/audio/transcriptions/{event_id}", params=params)
            if answer.status_code not in (202, 404) or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.25)


def assert_openai_error(answer: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert error["code"] == code and error["message"], error
    if param is not None:
        assert error["param"] == param, error
    return error
