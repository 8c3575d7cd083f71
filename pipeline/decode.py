"""Any common audio or video container in, 16 kHz mono float32 out.

Decoding is streamed through PyAV (the FFmpeg libraries faster-whisper itself uses) and
stops as soon as the duration limit is passed, so a decompression bomb costs at most the
limit. Errors map to the stage's codes, because FFmpeg's own messages do not help a
producer: a PNG named .wav, a zero-byte file and a file with no audio track each get a
sentence that says what is wrong.
"""

from __future__ import annotations

import io
import logging

import av
import numpy as np

from pipeline.errors import AudioTooLongError, EmptyAudioError, UndecodableAudioError
from pipeline.types import DecodedAudio

SAMPLE_RATE = 16_000  # what Whisper's feature extractor expects

# A decode that yields less than this share of the declared duration is reported as
# truncated. 0.9 leaves room for encoder padding and imprecise bitrate-based estimates
# of VBR mp3 durations, which are the usual source of small mismatches.
TRUNCATION_RATIO = 0.9
TRUNCATION_MIN_GAP_S = 0.5

# FFmpeg logs every damaged packet at WARNING; the stage reports the outcome instead.
logging.getLogger("libav").setLevel(logging.ERROR)


def decode_audio(data: bytes, max_duration_s: float) -> DecodedAudio:
    """Decode ``data`` to 16 kHz mono; raise a ``StageError`` subclass when it cannot."""
    if not data:
        raise EmptyAudioError("the object is empty (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise UndecodableAudioError(
            f"not a readable audio or video file ({type(exc).__name__}); "
            "supported: wav, mp3, flac, ogg/opus, m4a/aac, and the audio track of mp4/webm/mkv"
        ) from exc
    with container:
        if not container.streams.audio:
            raise UndecodableAudioError("the file has no audio track")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        if declared is not None and declared > max_duration_s:
            raise AudioTooLongError(f"the file declares {declared:.1f} s of audio; the limit is {max_duration_s:.0f} s")
        samples, damaged = _decode_stream(container, stream, max_duration_s, declared)

    duration = len(samples) / SAMPLE_RATE
    if len(samples) == 0:
        raise UndecodableAudioError("the audio track holds no decodable samples")
    warnings: list[str] = []
    if damaged:
        warnings.append("DAMAGED_AUDIO: some packets could not be decoded and were skipped")
    if declared is not None and duration < declared * TRUNCATION_RATIO and declared - duration > TRUNCATION_MIN_GAP_S:
        warnings.append(f"TRUNCATED_AUDIO: decoded {duration:.1f} s of the {declared:.1f} s the file declares")
    return DecodedAudio(
        samples=samples,
        sample_rate=SAMPLE_RATE,
        duration_s=duration,
        declared_duration_s=declared,
        warnings=tuple(warnings),
    )


def _declared_duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    max_duration_s: float,
    declared_s: float | None = None,
) -> tuple[np.ndarray, bool]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit = int(max_duration_s * SAMPLE_RATE)
    pcm = _SampleBuffer(_initial_capacity(declared_s, limit))
    damaged = False

    def take(frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            pcm.append(frame.to_ndarray().reshape(-1))
        if pcm.size > limit:
            raise AudioTooLongError(f"the audio is longer than the limit of {max_duration_s:.0f} s")

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            # A damaged container after some good data: keep what decoded.
            damaged = True
            break
        try:
            for frame in packet.decode():
                take(resampler.resample(frame))
        except av.FFmpegError:
            damaged = True
    take(resampler.resample(None))  # flush the resampler's buffered tail
    return pcm.finish(), damaged


def _initial_capacity(declared_s: float | None, limit: int) -> int:
    """Samples to reserve: the declared duration and a little (encoder padding, VBR estimates), else 60 s."""
    if declared_s is None or declared_s <= 0:
        return min(60 * SAMPLE_RATE, limit + SAMPLE_RATE)
    return min(int(declared_s * 1.02 * SAMPLE_RATE) + SAMPLE_RATE, limit + SAMPLE_RATE)


class _SampleBuffer:
    """16 kHz float32 samples written in place as they decode: the waveform is held once.

    Collecting int16 chunks, concatenating them and scaling to float32 held the audio three to
    four times over at the end (a one-hour file: 220 MB of float32 peaked 680 MB above the
    decoder's baseline). Here each chunk is scaled into a buffer sized from the declared
    duration; a file that runs past it grows the buffer with ``ndarray.resize`` (realloc, which
    for large blocks remaps pages rather than copying them), and the unused tail is given back
    the same way.
    """

    def __init__(self, capacity: int) -> None:
        self._buffer = np.empty(max(capacity, SAMPLE_RATE), dtype=np.float32)
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        end = self.size + len(chunk)
        if end > len(self._buffer):
            self._buffer.resize(max(end, len(self._buffer) * 3 // 2), refcheck=False)
        target = self._buffer[self.size : end]
        target[:] = chunk
        target *= np.float32(1 / 32768)  # a power of two: the same values as int16 / 32768.0
        self.size = end

    def finish(self) -> np.ndarray:
        buffer, self._buffer = self._buffer, np.empty(0, dtype=np.float32)
        buffer.resize(self.size, refcheck=False)
        return buffer
