"""The torch-free CPU diarizer: same models through onnxruntime, same answers, no torch in the process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.diarization.bench import _der
from bench.diarization.clips import Clip, sample
from bench.diarization.models import installed_config
from pipeline.diarization import make_diarizer
from pipeline.diarization.assign import SpeakerTurn
from pipeline.diarization.embedding import fbank as torch_fbank
from pipeline.diarization.features import fbank
from pipeline.diarization.light import LightDiarizer
from pipeline.diarization.onnx import OnnxSegmentation
from pipeline.diarization.segments import MAX_EMBED_S, Segment
from pipeline.diarization.voice import spectra
from tests.diarization.test_engine import MAX_DER_COLLAR_0, MAX_DER_COLLAR_05


@pytest.fixture(scope="module")
def clip() -> Clip:
    return sample()


@pytest.fixture(scope="module")
def light() -> LightDiarizer:
    diarizer = make_diarizer(installed_config(device="cpu"))
    assert isinstance(diarizer, LightDiarizer)  # set-up exported the graphs: the CPU default is the light one
    diarizer.warm_up()
    return diarizer


@pytest.fixture(scope="module")
def turns(light: LightDiarizer, clip: Clip) -> tuple[SpeakerTurn, ...]:
    return light.diarize(clip.samples)


def test_a_cpu_worker_diarizes_without_importing_torch_or_pyannote() -> None:
    code = (
        "import sys, json\n"
        "from consumer.plumbing.settings import Settings\n"
        "from consumer.worker.runner import build_pipeline\n"
        "p = build_pipeline(Settings(enable_diarization=True, device='cpu'))\n"
        "print(json.dumps([type(p.diarizer).__name__, sorted(m for m in ('torch', 'pyannote.audio', 'lightning') if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    name, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert name == "LightDiarizer"
    assert heavy == []


def test_numpy_fbank_is_kaldis(clip: Clip) -> None:
    ours = fbank(clip.samples[: 5 * 16_000])
    theirs = torch_fbank(torch.from_numpy(clip.samples[: 5 * 16_000].copy())).numpy()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 2e-3  # float32 against torch's float32: log-energies agree to 1e-3


def test_onnx_segmentation_is_pyannotes(clip: Clip) -> None:
    from pyannote.audio import Inference, Model

    config = installed_config()
    model = Model.from_pretrained(config.segmentation_path)
    theirs = Inference(model, duration=10.0, step=10.0, skip_aggregation=True)(
        {"waveform": torch.from_numpy(clip.samples.copy()).unsqueeze(0), "sample_rate": 16_000}
    )
    ours, step = OnnxSegmentation(config.segmentation_path)(clip.samples, 1.0)
    assert step == 10.0
    assert ours.shape == theirs.data.shape
    assert (ours == theirs.data).mean() > 0.999  # the same powerset class on every frame but ties


def test_sample_has_two_speakers_within_the_bounds(clip: Clip, turns: tuple[SpeakerTurn, ...]) -> None:
    assert sorted({t.speaker for t in turns}) == ["SPEAKER_00", "SPEAKER_01"]
    assert _der(clip, turns, 0.0) < MAX_DER_COLLAR_0
    assert _der(clip, turns, 0.5) < MAX_DER_COLLAR_05


def test_same_turns_as_the_torch_engine_with_the_same_settings(clip: Clip, turns: tuple[SpeakerTurn, ...]) -> None:
    from pipeline.diarization.engine import Diarizer

    torch_turns = Diarizer(installed_config(device="cpu", embedding_runtime="torch")).diarize(clip.samples)
    # Same segments and clustering; only the runtime and the fbank's float precision differ.
    assert {t.speaker for t in torch_turns} == {t.speaker for t in turns}
    assert _der(clip, torch_turns, 0.0) == pytest.approx(_der(clip, turns, 0.0), abs=0.02)


def test_silence_and_a_blip_are_no_speech(light: LightDiarizer) -> None:
    assert light.diarize(np.zeros(600 * 16_000, dtype=np.float32)) == ()
    blip = np.zeros(60 * 16_000, dtype=np.float32)
    blip[16_000 : 16_000 + 8_000] = 0.1 * np.sin(np.arange(8_000) / 5)  # half a second of tone
    assert light.diarize(blip) == ()


def test_speaker_bounds_are_obeyed(light: LightDiarizer, clip: Clip) -> None:
    assert len({t.speaker for t in light.diarize(clip.samples, max_speakers=1)}) == 1
    assert len({t.speaker for t in light.diarize(clip.samples, min_speakers=3)}) == 3


def test_long_segments_are_embedded_by_their_middle(light: LightDiarizer, clip: Clip) -> None:
    # A segment longer than MAX_EMBED_S gives the same embedding as its middle MAX_EMBED_S alone
    # (segments.speaker_turns hands the engine each segment's embedded() stretch).
    long = Segment(chunk=0, local=0, first=0, last=1, start=6.5, end=6.5 + MAX_EMBED_S + 2.0)
    whole, whole_spectrum = light._embed(clip.samples, [long.embedded()])
    middle, middle_spectrum = light._embed(clip.samples, [(7.5, 7.5 + MAX_EMBED_S)])
    assert np.allclose(whole, middle, atol=1e-4)
    assert np.allclose(whole_spectrum, middle_spectrum, atol=1e-4)
    # The envelope comes from CAM++'s own fbank here; the torch engine computes it with voice.spectra.
    assert np.allclose(middle_spectrum, spectra(clip.samples, [(7.5, 7.5 + MAX_EMBED_S)]), atol=1e-4)


def test_describe_says_what_is_loaded(light: LightDiarizer) -> None:
    described = light.describe()
    assert "onnxruntime" in str(described["engine"])
    assert described["device"] == "cpu" and described["embedding_runtime"] == "onnx"
    assert described["threshold"] == light.config.threshold
    assert described["spectral_weight"] == light.config.spectral_weight
    json.dumps(described)
