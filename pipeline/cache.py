"""The result cache's pure part: which inputs make a transcript, and a bounded LRU to keep them in.

A transcript depends on the audio and on every option that reaches the model or the
diarization. The key is a SHA-256 over a canonical JSON of exactly those: the engine (model
and its weights, device, compute type, library versions), the profile as it runs (after the
worker's overrides), the request's language, task, prompt and granularities, and, only when
speakers are wanted, the diarization settings. Nothing per event (event_id, metadata, where
the object lives) enters it, so equal work finds equal keys. Storage knows nothing of this
module's callers: it is bytes and strings in, strings out.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from pipeline.profiles import Profile
from pipeline.types import Transcript, TranscriptionRequest

# Bump when the stage's output for the same audio and options changes without any input to
# the key changing (a new segment rule, a decode fix): every older entry then misses.
KEY_VERSION = 1

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class EngineIdentity:
    """What a worker contributes to a transcript, whatever the request.

    ``model`` names the weights by content (name, size of model.bin, digest of config.json),
    not by path: two pods mounting the same model at different paths share entries, a new
    model at the same path does not. ``diarization`` is a canonical string of the diarization
    settings, or None on a worker without diarization. The thread count is left out on purpose:
    it schedules the same arithmetic.
    """

    model: str
    device: str
    compute_type: str
    libraries: str  # e.g. "faster-whisper 1.2.1, ctranslate2 4.8.5"
    diarization: str | None = None
    diarization_min_s: float = 30.0


def cacheable(request: TranscriptionRequest) -> bool:
    """Whether a transcript for this request may be served again.

    A temperature above 0 asks for a sample: each request gets its own draw, never an earlier one.
    (Unset or 0 keeps faster-whisper's fallback schedule, which is deterministic unless a decode
    fails; the cache then pins the one answer it gave, which is as valid as any other.)
    """
    return not request.temperature


def options_digest(request: TranscriptionRequest, profile: Profile, engine: EngineIdentity) -> str:
    """A digest of every option that can change the transcript of one audio."""
    options: dict[str, Any] = {
        "v": KEY_VERSION,
        "model": engine.model,
        "device": engine.device,
        "compute_type": engine.compute_type,
        "libraries": engine.libraries,
        # The profile as it runs: beam, best_of, patience and VAD after the worker's overrides;
        # the name too, since the transcript reports it.
        "profile": asdict(profile) | {"description": None},
        "language": request.language,
        "task": request.task.value,
        "prompt": request.prompt,
        "temperature": request.temperature or 0.0,  # unset and 0 decode alike
        "granularities": sorted(g.value for g in request.granularities),
        "word_timestamps": request.word_timestamps,
        "diarization_mode": request.diarization.value,
    }
    if request.wants_speakers:
        # Only then can the worker's diarization change the answer (applied, skipped_short
        # against its minimum, skipped_disabled without it): elsewhere a transcript made with
        # or without diarization enabled is the same, and the key says so.
        options["diarization"] = {
            "engine": engine.diarization,
            "min_s": engine.diarization_min_s,
            "min_speakers": request.min_speakers,
            "max_speakers": request.max_speakers,
        }
    return _digest(options)


def object_key(etag: str, size: int, options: str) -> str:
    """The cheap first key: the object's ETag and size, known from a stat before any download.

    An ETag is the MD5 of the bytes for a simple upload and something else for multipart or
    encrypted ones; either way equal ETags and sizes mean equal bytes in practice, and unequal
    ones merely miss here and may still hit on the content key.
    """
    return _digest({"kind": "object", "etag": etag.strip('"'), "size": size, "options": options})


def content_key(sha256_hex: str, options: str) -> str:
    """The second key, after download: the SHA-256 of the bytes, so copies under other names hit."""
    return _digest({"kind": "content", "sha256": sha256_hex, "options": options})


def _digest(value: dict[str, Any]) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def approx_bytes(transcript: Transcript) -> int:
    """Roughly the Python heap a transcript holds: what RESULT_CACHE_MAX_BYTES bounds.

    Calibrated with tracemalloc on transcripts of 20 to 200 segments: about 400 bytes per
    segment with its floats, 250 per word, plus the text; within 25 % of the measured size.
    """
    size = 1024 + len(transcript.text.encode())
    for seg in transcript.segments:
        size += 400 + len(seg.text.encode())
        size += sum(250 + len(w.word.encode()) for w in seg.words)
    return size


class BoundedLRU(Generic[K, V]):
    """Least recently used entries go first, when either the entry or the byte bound is passed.

    Not thread-safe: the worker touches it from its event loop only.
    """

    def __init__(self, max_entries: int, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        item = self._entries.get(key)
        if item is None:
            return None
        self._entries.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> bool:
        """Keep ``value``; False when it alone is over a bound (then nothing is kept or evicted)."""
        size = self._size_of(value)
        if size > self.max_bytes or self.max_entries < 1:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.evictions += 1
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
