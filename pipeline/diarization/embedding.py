"""CAM++ behind the interface pyannote's SpeakerDiarization expects of an embedding model.

pyannote 4.0.7 wraps any ``pyannote.audio.Model`` it is given as ``embedding`` in
``PyannoteAudioPretrainedSpeakerEmbedding``, which supplies what the pipeline reads (``sample_rate``,
``dimension``, ``metric`` = cosine, ``min_num_samples``) and calls
``model(waveforms (batch, 1, samples), weights=masks (batch, frames))`` for a numpy
(batch, dimension) array. So the adapter is a small ``Model``: fbank, frame selection, CAM++.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from pyannote.audio import Model
from torchaudio.compliance import kaldi

from pipeline.diarization.campplus import EMBEDDING_DIM, FBANK_BINS, load_campplus
from pipeline.diarization.features import HOP as HOP_SAMPLES
from pipeline.diarization.features import MIN_FRAMES, MIN_SAMPLES
from pipeline.diarization.features import WINDOW as WINDOW_SAMPLES
from pipeline.diarization.onnx import OnnxCamPlusPlus, onnx_path

SAMPLE_RATE = 16_000
# A mask frame counts as this speaker's speech above this weight (pyannote passes 0/1 masks).
ACTIVE = 0.5


def fbank(waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) float in [-1, 1] at 16 kHz -> (frames, 80) log-mel fbank, not normalised."""
    features: torch.Tensor = kaldi.fbank(
        waveform.unsqueeze(0),
        num_mel_bins=FBANK_BINS,
        sample_frequency=SAMPLE_RATE,
        dither=0.0,  # deterministic: the same clip always gives the same speakers
    )
    return features


class CamPlusPlusEmbedding(Model):
    """CAM++ speaker embeddings of the frames a segmentation mask selects."""

    def __init__(self, weights_path: str, workers: int = 1, runtime: str = "torch") -> None:
        """``runtime`` "onnx" runs the exported graph beside the weights (CPU); "torch" the network itself."""
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self.network = load_campplus(weights_path)
        self.workers = max(1, workers)
        self._executor: ThreadPoolExecutor | None = None
        self._onnx: OnnxCamPlusPlus | None = None
        if runtime == "onnx":
            path = onnx_path(weights_path)
            if not path.is_file():
                raise FileNotFoundError(f"no exported CAM++ graph at {path}")
            self._onnx = OnnxCamPlusPlus(path)
        self.runtime = runtime

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """(frames, 80) fbank of one speaker -> (192,), mean-normalised over exactly these frames."""
        features = features - features.mean(dim=0, keepdim=True)
        if self._onnx is not None and features.device.type == "cpu":
            return torch.from_numpy(self._onnx(features.unsqueeze(0).numpy()))[0]
        embedding: torch.Tensor = self.network(features.unsqueeze(0))[0]
        return embedding

    # pyannote's Model.forward is typed (waveforms, **kwargs); its embedding models, its own WeSpeaker
    # included, take (waveforms, weights), which is how its pipelines call them.
    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """(batch, 1, samples) and optional (batch, mask_frames) -> (batch, 192), NaN where no speech.

        Only the frames the mask marks active are embedded (CAM++'s context masking averages over
        every frame it sees, so other speakers' frames would leak into the context); each item
        runs on its own since their lengths differ, which costs nothing measurable on CPU.
        """
        batch = waveforms.shape[0]
        out = torch.full((batch, EMBEDDING_DIM), math.nan, dtype=torch.float32, device=waveforms.device)
        jobs: list[tuple[int, torch.Tensor]] = []
        chunk_features: tuple[torch.Tensor, torch.Tensor] | None = None
        for i in range(batch):
            mask = None if weights is None else weights[i]
            if mask is not None and not bool((mask > ACTIVE).any()):
                continue  # an inactive speaker slot: pyannote discards it anyway
            # pyannote sends each chunk once per local speaker, back to back: one fbank per chunk.
            if chunk_features is None or not torch.equal(chunk_features[0], waveforms[i, 0]):
                chunk_features = (waveforms[i, 0], fbank(waveforms[i, 0].float()))
            features = chunk_features[1]
            if mask is not None:
                features = features[_frame_mask(mask, waveforms.shape[-1], features.shape[0])]
            if features.shape[0] < MIN_FRAMES:
                if weights is None:
                    # pyannote probes min_num_samples by waiting for an exception.
                    raise ValueError(f"{waveforms.shape[-1]} samples are too few for a speaker embedding")
                continue
            jobs.append((i, features))
        if self.workers > 1 and len(jobs) > 1:
            # Items of unequal length cannot share a forward pass, so they share the cores instead:
            # each runs inline in its own thread (torch intra-op 1), no OpenMP team to spin.
            parts = [jobs[k :: self.workers] for k in range(self.workers)]
            for part in self._pool().map(self._embed_all, parts):
                for i, embedding in part:
                    out[i] = embedding
        else:
            for i, embedding in self._embed_all(jobs):
                out[i] = embedding
        return out

    def embed_spans(self, samples: torch.Tensor, spans: list[tuple[float, float]]) -> np.ndarray:
        """One embedding per (start, end) second span of 16 kHz ``samples``: (len(spans), 192), NaN if too short."""
        out = np.full((len(spans), EMBEDDING_DIM), np.nan, dtype=np.float32)
        jobs: list[tuple[int, torch.Tensor]] = []
        for i, (start, end) in enumerate(spans):
            piece = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            if piece.shape[0] < MIN_SAMPLES:
                continue
            jobs.append((i, piece))
        parts = [jobs[k :: self.workers] for k in range(self.workers)] if len(jobs) > 1 else [jobs]
        for part in self._pool().map(self._embed_pieces, parts) if len(parts) > 1 else map(self._embed_pieces, parts):
            for i, embedding in part:
                out[i] = embedding.numpy()
        return out

    def _embed_pieces(self, jobs: list[tuple[int, torch.Tensor]]) -> list[tuple[int, torch.Tensor]]:
        with torch.inference_mode():
            return [(i, self.embed_features(fbank(piece.float()))) for i, piece in jobs]

    def _embed_all(self, jobs: list[tuple[int, torch.Tensor]]) -> list[tuple[int, torch.Tensor]]:
        with torch.inference_mode():
            return [(i, self.embed_features(features)) for i, features in jobs]

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="campplus")
        return self._executor


def _frame_mask(mask: torch.Tensor, num_samples: int, num_frames: int) -> torch.Tensor:
    """Map a mask over the chunk (any frame rate) onto fbank frames by each frame's centre."""
    centres = torch.arange(num_frames, dtype=torch.float64, device=mask.device) * HOP_SAMPLES + WINDOW_SAMPLES / 2
    index = (centres / num_samples * mask.shape[0]).long().clamp_(0, mask.shape[0] - 1)
    return mask[index] > ACTIVE


__all__ = ["CamPlusPlusEmbedding", "fbank"]
