"""The result cache's persistent tier: one object per key under an S3 prefix.

``RESULT_CACHE_PREFIX=s3://fwv2-cache/transcripts/`` keeps ``<prefix><key>.avro``, each a
TranscriptEvent in the same single-object encoding the stage publishes (metadata left out).

Why an S3 prefix rather than a compacted Kafka topic: a lookup here is one GET by key, with
nothing to load at start and no bound but the bucket; a compacted topic is not a key-value
store, so every worker would have to read the whole topic into memory (or a local store) before
answering, and that copy would grow with the cache and slow every start and rebalance. The
worker already holds credentials and a client for the store; expiry is a lifecycle rule on the
prefix; erasing a customer's data is deleting objects, not waiting for compaction.

A dedicated bucket by default, not a prefix of the audio bucket: bucket notifications on the
audio bucket would announce every cache write as new audio.
"""

from __future__ import annotations

import io
from urllib.parse import urlparse

from minio import Minio
from minio.error import S3Error

from consumer.plumbing.settings import WorkerSettings
from consumer.plumbing.storage import make_client

_ABSENT = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


class PersistentCacheError(Exception):
    """The persistent tier failed; the caller treats it as a miss, never as the event's failure."""


def parse_prefix(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` as (bucket, "some/prefix/")."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"RESULT_CACHE_PREFIX must look like s3://bucket/prefix/, not {url!r}")
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parsed.netloc, prefix


def _client(settings: WorkerSettings) -> Minio:
    # Shorter timeouts than the audio fetch: a slow cache must cost an event little, since
    # the answer on failure is only a miss.
    return make_client(settings, connect_s=2.0, read_s=10.0, pool=2)


class S3ResultStore:
    """Blocking: call it from a thread."""

    def __init__(self, settings: WorkerSettings, client: Minio | None = None) -> None:
        self.bucket, self.prefix = parse_prefix(settings.result_cache_prefix)
        self._client = client or _client(settings)

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}.avro"

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None when there are none."""
        try:
            response = self._client.get_object(self.bucket, self.name(key))
        except S3Error as exc:
            if exc.code in _ABSENT:
                return None
            raise PersistentCacheError(f"get s3://{self.bucket}/{self.name(key)}: {exc.code}") from exc
        except Exception as exc:
            raise PersistentCacheError(f"get s3://{self.bucket}/{self.name(key)}: {type(exc).__name__}") from exc
        try:
            return bytes(response.read())
        except Exception as exc:
            raise PersistentCacheError(f"read s3://{self.bucket}/{self.name(key)}: {type(exc).__name__}") from exc
        finally:
            response.close()
            response.release_conn()

    def put(self, key: str, data: bytes) -> None:
        try:
            self._put(key, data)
        except S3Error as exc:
            if exc.code != "NoSuchBucket":
                raise PersistentCacheError(f"put s3://{self.bucket}/{self.name(key)}: {exc.code}") from exc
            try:  # the first write creates the bucket; a race with another worker is harmless
                if not self._client.bucket_exists(self.bucket):
                    self._client.make_bucket(self.bucket)
                self._put(key, data)
            except Exception as again:
                raise PersistentCacheError(f"create s3://{self.bucket}: {type(again).__name__}") from again
        except Exception as exc:
            raise PersistentCacheError(f"put s3://{self.bucket}/{self.name(key)}: {type(exc).__name__}") from exc

    def _put(self, key: str, data: bytes) -> None:
        self._client.put_object(
            self.bucket, self.name(key), io.BytesIO(data), len(data), content_type="application/vnd.apache.avro+binary"
        )
