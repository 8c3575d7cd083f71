"""Fetching audio objects from MinIO or any S3, within the allow-list and the size limit."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import certifi
import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from consumer.contract.errors import (
    AccessDeniedError,
    BucketNotAllowedError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageUnavailableError,
)
from consumer.contract.inputs import ObjectRef
from consumer.plumbing.settings import S3Settings

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NoSuchObject"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


@dataclass(frozen=True)
class ObjectInfo:
    """What a stat says about an object, without its bytes."""

    etag: str | None
    size: int
    content_type: str | None


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str | None
    size: int
    content_type: str | None


def make_client(settings: S3Settings, *, connect_s: float = 5.0, read_s: float = 60.0, pool: int = 4) -> Minio:
    # Short timeouts and no hidden urllib3 retries: the caller owns retry and backoff,
    # so an outage shows up in its metrics and attempts instead of a silent stall.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_s, read=read_s),
        retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),
        maxsize=pool,
        # S3_CA_FILE: a private CA (the secure stack's, a company's); else minio-py's default, certifi.
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(settings.s3_ca_file) if settings.s3_ca_file else certifi.where(),
    )
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
        http_client=http,
    )


class BlobStore:
    """Reads one object at a time. Blocking: call it from a thread."""

    def __init__(self, settings: S3Settings, client: Minio | None = None) -> None:
        self._client = client or make_client(settings)
        self._allowed = frozenset(settings.allowed_buckets)
        self._max_bytes = settings.max_object_bytes

    def check_allowed(self, ref: ObjectRef) -> None:
        if ref.bucket not in self._allowed:
            raise BucketNotAllowedError(
                f"bucket {ref.bucket!r} is not in this stage's allow-list ({', '.join(sorted(self._allowed))})"
            )

    def stat(self, ref: ObjectRef) -> ObjectInfo:
        """The object's ETag, size and type, nothing downloaded; over the size limit is refused here too."""
        self.check_allowed(ref)
        where = f"s3://{ref.bucket}/{ref.key}"
        with _object_store_errors(where):
            stat = self._client.stat_object(ref.bucket, ref.key, version_id=ref.version_id)
        size = int(stat.size or 0)
        if size > self._max_bytes:
            raise ObjectTooLargeError(f"{where} is {size} bytes; the limit is {self._max_bytes} bytes")
        return ObjectInfo(etag=stat.etag, size=size, content_type=stat.content_type)

    def fetch(self, ref: ObjectRef) -> Blob:
        info = self.stat(ref)  # refused from the metadata alone: nothing is downloaded
        where = f"s3://{ref.bucket}/{ref.key}"
        with _object_store_errors(where):
            response = self._client.get_object(ref.bucket, ref.key, version_id=ref.version_id)
            try:
                # Read one byte past the limit so an object that grew after stat is still refused.
                data = response.read(self._max_bytes + 1)
            finally:
                response.close()
                response.release_conn()
        if len(data) > self._max_bytes:
            raise ObjectTooLargeError(f"{where} is over the limit of {self._max_bytes} bytes")
        return Blob(data=data, etag=info.etag, size=len(data), content_type=info.content_type)


@contextmanager
def _object_store_errors(where: str) -> Iterator[None]:
    """The object store's and the network's exceptions, as the stage's errors (which say if retriable)."""
    try:
        yield
    except S3Error as exc:
        raise _map_s3_error(exc, where) from exc
    except ServerError as exc:
        raise StorageUnavailableError(f"object store answered {exc.status_code} for {where}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if _untrusted(exc):
            raise StorageUnavailableError(
                f"the object store's TLS certificate is not trusted for {where}: "
                "set S3_CA_FILE to the CA bundle that signed it"
            ) from exc
        raise StorageUnavailableError(f"object store unreachable for {where}: {type(exc).__name__}") from exc


def _untrusted(exc: BaseException) -> bool:
    """A certificate verification failure, however deep urllib3 wrapped it."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
    return False


def _map_s3_error(exc: S3Error, where: str) -> Exception:
    if exc.code in _NOT_FOUND:
        return ObjectNotFoundError(f"{where} does not exist ({exc.code})")
    if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return AccessDeniedError(
            f"the object store refused the worker's credentials for {where} ({exc.code}): check S3_ACCESS_KEY "
            "and S3_SECRET_KEY"
        )
    if exc.code in _DENIED:
        return AccessDeniedError(
            f"the worker may not read {where} ({exc.code}): grant its S3 user s3:GetObject there, "
            "or remove the bucket from ALLOWED_BUCKETS"
        )
    if exc.response is not None and exc.response.status >= 500:
        return StorageUnavailableError(f"object store error {exc.code} for {where}")
    return ObjectNotFoundError(f"{where} could not be read ({exc.code})")
