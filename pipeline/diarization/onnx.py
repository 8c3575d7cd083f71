"""CAM++ and segmentation-3.0 on ONNX Runtime: the same networks and weights, a runtime fast on any x86 CPU.

CAM++ is ~60 small conv layers; torch's eager CPU path pays a dispatch per op and picks different
kernels on AVX-512 and AVX2-only machines. ONNX Runtime (already installed: faster-whisper runs its
VAD on it) runs the whole graph in one call with the GIL released, so the embedding threads truly
run side by side. The graph is exported from the torch network once, next to the weights
(``scripts/install-diarization-models.sh`` does it at set-up; ``export`` here is the code it runs),
and checked against torch on random input before it is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch comes with the diarization extra; onnxruntime with faster-whisper
    import onnxruntime
    import torch

# Largest difference allowed between torch's and the exported graph's embedding (unit-scale values):
# measured 1-6e-6 on 1-10 s inputs; anything near 1e-3 would mean a wrong export, not rounding.
EXPORT_TOLERANCE = 1e-4
OPSET = 17


def onnx_path(weights_path: str) -> Path:
    """Where the exported graph of ``weights_path`` lives: beside it, same name, ``.onnx``."""
    return Path(weights_path).with_suffix(".onnx")


def export(weights_path: str) -> Path:
    """Export the CAM++ network of ``weights_path`` to ONNX (needs torch and the ``onnx`` package)."""
    import torch

    from pipeline.diarization.campplus import FBANK_BINS, load_campplus

    probes = [torch.randn(1, frames, FBANK_BINS) for frames in (300, 40, 1000)]  # traced on the first
    return _export_checked(
        load_campplus(weights_path),
        probes,
        onnx_path(weights_path),
        ("fbank", "embedding"),
        {"fbank": {0: "batch", 1: "frames"}},
    )


def frames_paths(weights_path: str) -> tuple[Path, Path]:
    """The exported frame-level CAM++ graph and its pooling head (numpy arrays), beside ``weights_path``."""
    base = Path(weights_path)
    return base.with_suffix(".frames.onnx"), base.with_suffix(".head.npz")


def export_frames(weights_path: str) -> Path:
    """Export CAM++ up to its pooling (``CAMPlusPlusFrames``) and its head; checked against the whole network.

    The check: pooling all frames of the graph's output with ``OnnxCamPlusPlusFrames.pool`` must give
    the torch network's embedding of the same input, so units pooled from one pass are embeddings of
    the same kind.
    """
    import torch

    from pipeline.diarization.campplus import FBANK_BINS, CAMPlusPlusFrames, load_campplus, pooling_head

    model = load_campplus(weights_path)
    graph, head = frames_paths(weights_path)
    np.savez(head, **pooling_head(model))  # type: ignore[arg-type]  # numpy types its kwargs narrowly
    probes = [torch.randn(1, frames, FBANK_BINS) for frames in (300, 40, 1000)]
    _export_checked(
        CAMPlusPlusFrames(model).eval(), probes, graph, ("fbank", "frames"), {"fbank": {0: "batch", 1: "frames"}}
    )
    pooled = OnnxCamPlusPlusFrames(graph, head)
    for probe in probes:
        with torch.inference_mode():
            expected = model(probe).numpy()[0]
        frames = pooled(probe.numpy())
        got = pooled.pool(frames, [(0, frames.shape[1])])[0]
        if not np.allclose(expected, got, atol=EXPORT_TOLERANCE * 10):
            graph.unlink()
            raise RuntimeError(f"pooled {graph.name} differs from torch by {np.abs(expected - got).max():.2e}")
    return graph


def _export_checked(
    model: torch.nn.Module,
    probes: list[torch.Tensor],
    target: Path,
    names: tuple[str, str],
    axes: dict[str, dict[int, str]],
) -> Path:
    """Export ``model`` (torch) to ``target``: staged beside it, kept only if it gives torch's outputs on ``probes``."""
    import torch

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        torch.onnx.export(
            model, (probes[0],), str(staged), input_names=[names[0]], output_names=[names[1]],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        session = _session(staged, threads=1)
        for probe in probes:
            with torch.inference_mode():
                expected = model(probe).numpy()
            got = session.run(None, {names[0]: probe.numpy()})[0]
            if not np.allclose(expected, got, atol=EXPORT_TOLERANCE):
                raise RuntimeError(f"exported {target.name} differs from torch by {np.abs(expected - got).max():.2e}")
        os.replace(staged, target)  # only a checked graph is ever in place
    return target


def _session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def segmentation_paths(weights_path: str) -> tuple[Path, Path]:
    """The exported segmentation graph and its timing sidecar (JSON), beside ``weights_path``."""
    graph = Path(weights_path).with_suffix(".onnx")
    return graph, graph.with_suffix(".json")


def export_segmentation(weights_path: str) -> Path:
    """Export pyannote's segmentation model of ``weights_path`` to ONNX, with what using it takes.

    The sidecar keeps what pyannote knows about the model and the graph does not: the window, the
    frames' timing (its receptive field) and the powerset classes as local speakers.
    """
    import torch
    from pyannote.audio import Model
    from pyannote.audio.utils.powerset import Powerset

    model = Model.from_pretrained(weights_path)
    if model is None:
        raise RuntimeError(f"{weights_path} is not a pyannote checkpoint")
    model.eval()
    spec = model.specifications
    if isinstance(spec, tuple) or spec.classes is None or spec.powerset_max_classes is None:
        raise RuntimeError(f"{weights_path} is not a single-task powerset segmentation model")
    sample_rate = int(model.hparams["sample_rate"])
    window = int(spec.duration * sample_rate)
    field = model.receptive_field
    sidecar = {
        "sample_rate": sample_rate,
        "window_samples": window,
        "frame_start": float(field.start),
        "frame_duration": float(field.duration),
        "frame_step": float(field.step),
        "powerset_mapping": Powerset(len(spec.classes), spec.powerset_max_classes).build_mapping().int().tolist(),
    }
    graph, meta = segmentation_paths(weights_path)
    probes = [torch.randn(2, 1, window) * 0.1]
    _export_checked(model, probes, graph, ("waveform", "scores"), {"waveform": {0: "batch"}, "scores": {0: "batch"}})
    meta.write_text(json.dumps(sidecar))
    return graph


class OnnxSegmentation:
    """pyannote segmentation-3.0 over windows of a clip: (chunks, frames, local speakers) activity in {0, 1}."""

    def __init__(self, weights_path: str, threads: int = 1, batch_size: int = 32) -> None:
        graph, meta = segmentation_paths(weights_path)
        self.path = graph
        self.meta = json.loads(meta.read_text())
        self.mapping = np.asarray(self.meta["powerset_mapping"], dtype=np.uint8)
        self.window = int(self.meta["window_samples"])
        self.batch_size = batch_size
        self._session = _session(graph, threads)

    def __call__(self, samples: np.ndarray, step: float) -> tuple[np.ndarray, float]:
        """Activity of every window starting 0, step x window, ... (the last padded with silence, as
        pyannote pads it), and the windows' step in seconds."""
        hop = max(1, int(round(step * self.window)))
        starts = list(range(0, max(1, len(samples) - self.window + hop), hop))
        if starts and starts[-1] + self.window < len(samples):
            starts.append(starts[-1] + hop)
        out = []
        for b in range(0, len(starts), self.batch_size):
            batch = np.zeros((len(starts[b : b + self.batch_size]), 1, self.window), dtype=np.float32)
            for i, start in enumerate(starts[b : b + self.batch_size]):
                piece = samples[start : start + self.window]
                batch[i, 0, : len(piece)] = piece
            scores = self._session.run(None, {"waveform": batch})[0]
            out.append(self.mapping[scores.argmax(axis=2)])  # powerset class -> local speakers
        return np.concatenate(out), hop / self.meta["sample_rate"]


class OnnxCamPlusPlus:
    """Callable like the torch network on one item: (1, frames, 80) float32 -> (1, 192)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self._session = _session(path, threads)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        outputs: list[np.ndarray] = self._session.run(None, {"fbank": np.ascontiguousarray(features, dtype=np.float32)})
        return outputs[0]


class OnnxCamPlusPlusFrames:
    """CAM++ in two steps: one pass gives frames (20 ms each), ``pool`` embeds any stretches of them.

    Diarization needs many short embeddings (1.5 s units) of each segment. Run separately they
    cost a pass each (twice the audio at a 0.75 s shift); here a segment is one pass and its units
    are pooled from its frames, so each second of speech goes through the network once.
    """

    frame_s = 0.02  # the TDNN halves the 10 ms fbank frame rate

    def __init__(self, graph: Path, head: Path, threads: int = 1) -> None:
        self.path = graph
        self._session = _session(graph, threads)
        arrays = np.load(head)
        self._weight = arrays["weight"].astype(np.float32)  # (192, 2 * channels)
        self._mean = arrays["mean"].astype(np.float32)
        self._scale = (1.0 / np.sqrt(arrays["var"] + float(arrays["eps"]))).astype(np.float32)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(1, frames, 80) mean-normalised fbank -> (channels, ceil(frames / 2)) frame features."""
        outputs: list[np.ndarray] = self._session.run(None, {"fbank": np.ascontiguousarray(features, dtype=np.float32)})
        frames: np.ndarray = outputs[0][0]
        return frames

    def pool(self, frames: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
        """(len(ranges), 192): the embedding of each [first, last) range of ``frames``; NaN under two frames."""
        stats = np.full((len(ranges), self._weight.shape[1]), np.nan, dtype=np.float32)
        for i, (a, b) in enumerate(ranges):
            piece = frames[:, max(0, a) : b]
            if piece.shape[1] >= 2:
                stats[i] = np.concatenate([piece.mean(axis=1), piece.std(axis=1, ddof=1)])
        out: np.ndarray = ((stats @ self._weight.T) - self._mean) * self._scale
        return out


__all__ = [
    "OnnxCamPlusPlus",
    "OnnxCamPlusPlusFrames",
    "export_frames",
    "frames_paths",
    "OnnxSegmentation",
    "export",
    "export_segmentation",
    "onnx_path",
    "segmentation_paths",
]
