"""The result cache in the worker: the same audio with the same options is transcribed once.

One event looks up to two keys (``pipeline.cache``), each first in memory, then in the
persistent tier when there is one:

1. the **object key** (ETag and size) from a stat, before any download: a hit costs one HEAD;
2. on a miss, the **content key** (SHA-256 of the downloaded bytes): another object with the
   same audio hits here, and the object key is remembered for it too.

A miss runs inference as before; its transcript is then remembered under both keys. Only
transcripts are remembered (a dead letter never is, nor a transcript whose diarization failed,
since that may pass on a retry). The persistent tier can only ever cost a miss: every failure
there is logged and counted (``fwv2_cache_errors``), never the event's failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path

from consumer.contract.avro import TRANSCRIPT_EVENT, load_schema
from consumer.contract.inputs import AudioReference
from consumer.contract.outputs import TranscriptEvent, from_millis, to_millis
from consumer.contract.wire import Wire
from consumer.plumbing.logs import get_logger
from consumer.plumbing.settings import WorkerSettings
from consumer.plumbing.storage import Blob, BlobStore
from consumer.worker.metrics import WorkerMetrics
from consumer.worker.result_cache_s3 import PersistentCacheError, S3ResultStore
from pipeline.cache import BoundedLRU, EngineIdentity, approx_bytes, cacheable, content_key, object_key, options_digest
from pipeline.profiles import Profile
from pipeline.stage import Pipeline
from pipeline.types import CacheHit, CacheMatch, CacheTier, DiarizationStatus, Transcript, TranscriptionRequest

log = get_logger("fwv2.cache")

# Diarization settings that change how the work is scheduled, not its answer (and a secret).
_DIARIZATION_SCHEDULING = frozenset({"hf_token", "batch_size", "num_threads", "embedding_workers"})


@dataclass(frozen=True)
class Cached:
    """A transcript as inference made it, and when."""

    transcript: Transcript
    computed_at_ms: int


@dataclass(frozen=True)
class Lookup:
    """What the worker needs for one event: a transcript served from the cache, or the bytes to transcribe."""

    etag: str | None
    size: int
    content_type: str | None
    hit: Transcript | None = None  # with ``cache`` set and no decode or inference time
    blob: Blob | None = None  # on a miss
    remember_as: tuple[str, ...] = ()  # keys under which this event's transcript is to be kept
    found: Cached | None = None  # on a content hit: the entry to keep under the object key too

    @property
    def data(self) -> bytes:
        assert self.blob is not None, "a cache hit has no bytes"
        return self.blob.data


def engine_identity(settings: WorkerSettings, pipeline: Pipeline) -> EngineIdentity:
    info = pipeline.transcriber.info
    model = Path(info.path)
    weights = model / "model.bin"
    config_file = model / "config.json"
    digest = hashlib.sha256(config_file.read_bytes()).hexdigest()[:16] if config_file.is_file() else "-"
    diarization = None
    if pipeline.diarizer is not None:
        config = getattr(pipeline.diarizer, "config", None) or settings.diarization_config()
        # Every setting but those that only schedule the same work (and the token); model files by
        # name, so pods that mount them at different paths share entries. New settings count by default.
        fields = {
            k: Path(v).name if k.endswith("_path") and v else v
            for k, v in asdict(config).items()
            if k not in _DIARIZATION_SCHEDULING
        }
        fields["device"] = getattr(pipeline.diarizer, "device", fields.get("device"))  # "auto" as resolved
        diarization = json.dumps(fields, sort_keys=True, default=str)
    return EngineIdentity(
        model=f"{info.name} {weights.stat().st_size if weights.is_file() else 0} {digest}",
        device=info.device,
        compute_type=info.compute_type,
        libraries=", ".join(f"{p} {version(p)}" for p in ("faster-whisper", "ctranslate2")),
        diarization=diarization,
        diarization_min_s=pipeline.diarization_min_s,
    )


class ResultCache:
    def __init__(
        self,
        settings: WorkerSettings,
        store: BlobStore,
        pipeline: Pipeline,
        metrics: WorkerMetrics,
        persistent: S3ResultStore | None = None,
    ) -> None:
        self.enabled = settings.result_cache_enabled
        self._store = store
        self._pipeline = pipeline
        self._metrics = metrics
        self.memory: BoundedLRU[str, Cached] = BoundedLRU(
            settings.result_cache_max_entries, settings.result_cache_max_bytes, lambda c: approx_bytes(c.transcript)
        )
        if persistent is None and self.enabled and settings.result_cache_persistent == "s3":
            persistent = S3ResultStore(settings)
        self.persistent = persistent if self.enabled else None
        self._engine = engine_identity(settings, pipeline) if self.enabled else None

    async def fetch(self, ref: AudioReference, request: TranscriptionRequest, profile: Profile) -> Lookup:
        """The event's transcript from the cache, else its bytes (downloaded as without a cache)."""
        if not self.enabled or not cacheable(request):
            blob = await asyncio.to_thread(self._store.fetch, ref.object)
            return Lookup(blob.etag, blob.size, blob.content_type, blob=blob)
        assert self._engine is not None
        options = options_digest(request, profile, self._engine)
        info = await asyncio.to_thread(self._store.stat, ref.object)
        by_object = object_key(info.etag, info.size, options) if info.etag else None
        if by_object is not None and (found := await self._find(by_object)) is not None:
            entry, tier = found
            self._count_hit(tier, CacheMatch.OBJECT)
            return Lookup(info.etag, info.size, info.content_type, hit=_served(entry, tier, CacheMatch.OBJECT))
        blob = await asyncio.to_thread(self._store.fetch, ref.object)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(blob.data).hexdigest())  # off the loop: GIL released
        by_content = content_key(digest, options)
        keep_object_key = by_object is not None and await self._unchanged(ref, info.etag, blob)
        aliases = (by_object,) if keep_object_key and by_object else ()
        if (found := await self._find(by_content)) is not None:
            entry, tier = found
            self._count_hit(tier, CacheMatch.CONTENT)
            hit = _served(entry, tier, CacheMatch.CONTENT)
            return Lookup(blob.etag, blob.size, blob.content_type, hit=hit, remember_as=aliases, found=entry)
        self._metrics.cache_misses.labels(CacheTier.MEMORY.value).inc()
        if self.persistent is not None:
            self._metrics.cache_misses.labels(CacheTier.S3.value).inc()
        return Lookup(blob.etag, blob.size, blob.content_type, blob=blob, remember_as=(by_content, *aliases))

    async def remember(self, lookup: Lookup, ref: AudioReference, transcript: Transcript) -> None:
        """Keep the event's fresh transcript (or, after a content hit, the object key for it). Never raises:
        it runs after the transcript is delivered, where an error must not turn into a dead letter too."""
        if not self.enabled or not lookup.remember_as:
            return
        try:
            await self._remember(lookup, ref, transcript)
        except Exception as exc:
            self._metrics.cache_errors.labels(CacheTier.MEMORY.value, "put").inc()
            log.error("cache_remember_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)

    async def _remember(self, lookup: Lookup, ref: AudioReference, transcript: Transcript) -> None:
        if lookup.found is not None:
            entry = lookup.found
        elif transcript.cache is None and transcript.diarization.status is not DiarizationStatus.FAILED:
            entry = Cached(transcript, int(time.time() * 1000))
        else:
            return
        for key in lookup.remember_as:
            self.memory.put(key, entry)
        self._metrics.cache_entries.set(len(self.memory))
        self._metrics.cache_bytes.set(self.memory.bytes)
        if self.persistent is not None:
            data = _encode(ref, entry)
            for key in lookup.remember_as:
                try:
                    await asyncio.to_thread(self.persistent.put, key, data)
                except PersistentCacheError as exc:
                    self._metrics.cache_errors.labels(CacheTier.S3.value, "put").inc()
                    log.warning("cache_put_failed", tier="s3", error=str(exc))

    async def _find(self, key: str) -> tuple[Cached, CacheTier] | None:
        if (entry := self.memory.get(key)) is not None:
            return entry, CacheTier.MEMORY
        if self.persistent is not None and (entry := await self._persistent_get(key)) is not None:
            return entry, CacheTier.S3
        return None

    async def _persistent_get(self, key: str) -> Cached | None:
        assert self.persistent is not None
        try:
            data = await asyncio.to_thread(self.persistent.get, key)
        except PersistentCacheError as exc:
            self._metrics.cache_errors.labels(CacheTier.S3.value, "get").inc()
            log.warning("cache_get_failed", tier="s3", error=str(exc))
            return None
        if data is None or data[2:10] != load_schema(TRANSCRIPT_EVENT).fingerprint:
            return None  # absent, or written by another schema version: recomputed and overwritten
        try:
            entry = _decode(data)
        except Exception as exc:  # noqa: BLE001 - a damaged entry is a miss
            self._metrics.cache_errors.labels(CacheTier.S3.value, "decode").inc()
            log.warning("cache_entry_unreadable", tier="s3", error=f"{type(exc).__name__}: {exc}")
            return None
        self.memory.put(key, entry)  # the next duplicate on this worker does not ask the store
        self._metrics.cache_entries.set(len(self.memory))
        self._metrics.cache_bytes.set(self.memory.bytes)
        return entry

    async def _unchanged(self, ref: AudioReference, etag: str | None, blob: Blob) -> bool:
        """Whether the bytes read are those of ``etag``: the object was not replaced around the download.

        Only then may the transcript be kept under the object key; the content key is right anyway.
        """
        if blob.etag != etag:
            return False
        try:
            after = await asyncio.to_thread(self._store.stat, ref.object)
        except Exception:  # noqa: BLE001 - unsure: skip the object key, lose nothing but a cheap hit
            return False
        return after.etag == etag and after.size == blob.size

    def _count_hit(self, tier: CacheTier, match: CacheMatch) -> None:
        self._metrics.cache_hits.labels(tier.value, match.value).inc()
        if tier is CacheTier.S3:
            self._metrics.cache_misses.labels(CacheTier.MEMORY.value).inc()


def _served(entry: Cached, tier: CacheTier, match: CacheMatch) -> Transcript:
    """The cached transcript as this event's: marked as a hit, no decode, inference or diarization time."""
    return replace(
        entry.transcript,
        decode_s=0.0,
        transcribe_s=0.0,
        diarize_s=0.0,
        inference_s=0.0,
        cache=CacheHit(tier=tier, matched_by=match, computed_at_ms=entry.computed_at_ms),
    )


# Entries are single-object encoded whatever the deployment's framing: the fingerprint in the
# header is how a reader tells an entry of another schema version (``_persistent_get``).
_ENTRIES = Wire()


def _encode(ref: AudioReference, entry: Cached) -> bytes:
    """The entry as a TranscriptEvent, without the request's metadata (it is another event's)."""
    event = TranscriptEvent.of(
        ref.model_copy(update={"metadata": {}}),
        entry.transcript,
        blob_etag=None,
        blob_size=None,
        fetch_s=0.0,
        total_s=0.0,
        group="",
        pool="",
        host="",
    )
    return _ENTRIES.encode(replace(event, completed_at=from_millis(entry.computed_at_ms)))


def _decode(data: bytes) -> Cached:
    event = _ENTRIES.transcript(data)
    return Cached(replace(event.to_transcript(), cache=None), to_millis(event.completed_at))
