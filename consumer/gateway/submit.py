"""From a checked form and its spooled file to an object in the bucket and an AudioReference on the topic."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
from typing import BinaryIO, cast

from aiokafka import AIOKafkaProducer
from minio import Minio
from pydantic import ValidationError

from consumer.contract.inputs import AudioReference, ObjectRef
from consumer.gateway.errors import ApiError
from consumer.gateway.form import SpooledUpload
from consumer.gateway.request import TranscriptionForm
from consumer.plumbing.kafka import make_producer
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import GatewaySettings
from consumer.plumbing.storage import make_client

log = get_logger("fwv2.gateway.submit")

# Objects over one part go up as an S3 multipart upload, which MinIO (and S3) abort as a whole on
# failure, so no partial object is left. 16 MiB parts, two at a time, bound the memory per upload.
PART_SIZE = 16 * 1024 * 1024
PARALLEL_PARTS = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def make_storage(settings: GatewaySettings) -> Minio:
    # A pool sized for many requests at once.
    return make_client(settings, pool=32)


def object_key(prefix: str, event_id: str, filename: str) -> str:
    name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1]).strip("._")[:100] or "audio"
    return f"{prefix}{event_id}/{name}"


def reference(
    settings: GatewaySettings, event_id: str, form: TranscriptionForm, upload: SpooledUpload
) -> AudioReference:
    """The event for this request; its validation errors (a bad language...) are the caller's 400s."""
    content_type = upload.content_type or mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    try:
        return AudioReference(
            event_id=event_id,
            object=ObjectRef(
                bucket=settings.s3_bucket,
                key=object_key(settings.gateway_upload_prefix, event_id, upload.filename),
                content_type=content_type,
                size_bytes=upload.size,
            ),
            profile=form.model,
            language=form.language,
            task=form.task,
            timestamp_granularities=(*form.granularities(),),
            prompt=form.prompt,
            temperature=form.temperature,
            metadata={"source": "gateway", "filename": upload.filename[:256]},
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors = exc.errors() if isinstance(exc, ValidationError) else []
        param = str(errors[0]["loc"][0]) if errors and errors[0].get("loc") else None
        message = errors[0]["msg"] if errors else str(exc)
        raise ApiError(400, f"{param}: {message}" if param else message, code="invalid_value", param=param) from exc


class Submitter:
    """Uploads the spooled file, then publishes its event; undoes the upload if the publish fails."""

    def __init__(self, settings: GatewaySettings, storage: Minio) -> None:
        self._settings = settings
        self._storage = storage
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        producer = make_producer(self._settings, "gateway")  # one per process, shared by every request
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def upload(self, ref: AudioReference, upload: SpooledUpload) -> AudioReference:
        upload.file.seek(0)
        try:
            written = await asyncio.to_thread(
                self._storage.put_object,
                ref.object.bucket,
                ref.object.key,
                cast(BinaryIO, upload.file),  # minio's stub asks for BinaryIO; it only read()s the IO[bytes]
                length=upload.size,
                content_type=ref.object.content_type or "application/octet-stream",
                part_size=PART_SIZE,
                num_parallel_uploads=PARALLEL_PARTS,
            )
        except Exception as exc:
            log.warning("upload_failed", event_id=ref.event_id, error=str(exc))
            raise ApiError(
                503, "the object store did not take the upload; try again", code="storage_unavailable", event_id=None
            ) from exc
        return ref.model_copy(update={"object": ref.object.model_copy(update={"etag": written.etag})})

    async def publish(self, ref: AudioReference) -> None:
        assert self._producer is not None, "start() first"
        try:
            await self._producer.send_and_wait(
                self._settings.kafka_input_topic, value=ref.to_json(), key=ref.event_id.encode()
            )
        except Exception as exc:
            log.warning("publish_failed", event_id=ref.event_id, error=str(exc))
            await self.discard(ref)
            raise ApiError(503, "the broker did not take the request; try again", code="broker_unavailable") from exc

    async def discard(self, ref: AudioReference) -> None:
        """Remove an uploaded object whose event was never published: nothing is left half-done."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._storage.remove_object, ref.object.bucket, ref.object.key)
