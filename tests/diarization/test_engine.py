"""The real diarization engine on real speech: CAM++ weights, pyannote segmentation, sample.wav.

Needs the ``diarization`` extra (torch, torchaudio, pyannote.audio) and the weights from
scripts/install-diarization-models.sh. Without them these tests fail at import or with
DiarizationModelsMissingError, on purpose: a missing engine must not look like a pass.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.diarization.clips import (
    ESPEAK_VOICES,
    SAMPLE_RATE,
    SENTENCES,
    Clip,
    espeak,
    sample,
    score,
    single_speaker_pieces,
)
from bench.diarization.models import installed_config
from pipeline.diarization import (
    DiarizationModelsMissingError,
    Diarizer,
    SpeakerTurn,
    assign_speakers,
)
from pipeline.diarization.campplus import FBANK_BINS, CAMPlusPlus, load_campplus
from pipeline.diarization.embedding import CamPlusPlusEmbedding, fbank
from pipeline.diarization.onnx import EXPORT_TOLERANCE, OnnxCamPlusPlus, export, onnx_path
from pipeline.diarization.speech import FRAME, MARGIN_S

# Bounds from docs/DIARIZATION.md: with pyannote's clustering (step 0.2, threshold 0.7) sample.wav
# measured 7.1 % (collar 0) and 0.2 % (collar 0.5 s), and every step from 0.1 to 0.5 stayed within
# 5.2-7.2 % and 0.0-1.1 %: the errors are turn edges, not speakers. The segments clustering (the
# default since issue 12) measured 5.2 % and 0.0 %, and pyannote's behind the energy gate 8.3 % and
# 0.2 %. A speaker confused for a whole turn of a second or more adds over 4 points (the reference
# holds 24.4 s of speech), so these bounds catch a broken embedding or clustering while leaving
# room for float noise across CPUs.
MAX_DER_COLLAR_0 = 0.10
MAX_DER_COLLAR_05 = 0.03


@pytest.fixture(scope="module")
def clip() -> Clip:
    return sample()


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    return Diarizer(installed_config())


@pytest.fixture(scope="module")
def turns(diarizer: Diarizer, clip: Clip) -> tuple[SpeakerTurn, ...]:
    return diarizer.diarize(clip.samples)


def _der(clip: Clip, turns: tuple[SpeakerTurn, ...], collar: float) -> float:
    return score(clip, turns, collar)


def test_campplus_weights_fit_the_network_exactly() -> None:
    path = installed_config().embedding_path
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 937
    model = CAMPlusPlus()
    # strict=True: every tensor of the checkpoint has its place, and no layer is left random.
    assert model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == 6_848_544  # paper: 7.2 M with the classifier
    assert load_campplus(path)(torch.randn(2, 300, 80)).shape == (2, 192)


def _cosines(embeddings: dict[str, list[np.ndarray]]) -> tuple[list[float], list[float]]:
    unit = {k: [e / np.linalg.norm(e) for e in v] for k, v in embeddings.items()}
    same = [float(a @ b) for v in unit.values() for a, b in itertools.combinations(v, 2)]
    different = [float(a @ b) for x, y in itertools.combinations(unit, 2) for a in unit[x] for b in unit[y]]
    return same, different


@pytest.fixture(scope="module")
def campplus() -> CamPlusPlusEmbedding:
    return CamPlusPlusEmbedding(installed_config().embedding_path).eval()


def test_campplus_tells_the_two_real_speakers_apart(campplus: CamPlusPlusEmbedding, clip: Clip) -> None:
    pieces = {k: [p for p in v if len(p) >= SAMPLE_RATE] for k, v in single_speaker_pieces(clip).items()}
    with torch.inference_mode():
        embeddings = {
            k: [campplus.embed_features(fbank(torch.from_numpy(p))).numpy() for p in v] for k, v in pieces.items()
        }
    same, different = _cosines(embeddings)
    # Measured: same speaker 0.65 mean, different 0.32 (telephone speech, 1-4 s stretches).
    assert np.mean(same) > np.mean(different) + 0.2, (same, different)


@pytest.mark.tools  # espeak-ng speaks the voices
def test_campplus_tells_synthetic_voices_apart(campplus: CamPlusPlusEmbedding) -> None:
    texts = SENTENCES[:2]  # 5-6 s each; shorter sentences embed less stably
    with torch.inference_mode():
        embeddings = {
            name: [campplus.embed_features(fbank(torch.from_numpy(espeak(voice, t)))).numpy() for t in texts]
            for name, voice in ESPEAK_VOICES.items()
        }
    same, different = _cosines(embeddings)
    # Measured: 0.90-0.91 within a voice, 0.20-0.30 across: every same-voice pair beats every
    # cross-voice pair by a wide margin.
    assert min(same) > max(different) + 0.3, (same, different)


def test_masked_embedding_uses_only_the_speakers_frames(campplus: CamPlusPlusEmbedding, clip: Clip) -> None:
    # A mask selecting one speaker's stretch inside a 10 s chunk gives that stretch's embedding.
    chunk = torch.from_numpy(clip.samples[10 * SAMPLE_RATE : 20 * SAMPLE_RATE]).reshape(1, 1, -1)
    mask = torch.zeros(1, 589)
    mask[0, int(0.6 / 10 * 589) : int(3.9 / 10 * 589)] = 1.0  # 10.6-13.9 s: Diane alone
    with torch.inference_mode():
        masked = campplus(chunk, weights=mask)[0].numpy()
        direct = campplus.embed_features(fbank(chunk[0, 0, int(0.6 * SAMPLE_RATE) : int(3.9 * SAMPLE_RATE)])).numpy()
        silent = campplus(chunk, weights=torch.zeros(1, 589))[0]
    assert masked @ direct / np.linalg.norm(masked) / np.linalg.norm(direct) > 0.95
    assert torch.isnan(silent).all()  # nothing to embed: pyannote's "no embedding"


def test_parallel_embedding_workers_give_the_same_embeddings(campplus: CamPlusPlusEmbedding, clip: Clip) -> None:
    # A batch as pyannote sends it: each 10 s chunk once per local speaker, some slots empty.
    chunks = [torch.from_numpy(clip.samples[s * SAMPLE_RATE : (s + 10) * SAMPLE_RATE]) for s in (0, 5, 10, 15)]
    waveforms = torch.stack([c for c in chunks for _ in range(3)]).unsqueeze(1)
    masks = torch.zeros(len(waveforms), 589)
    for n in range(len(waveforms)):
        if n % 3 != 2:  # the third local speaker of each chunk is silent
            masks[n, (n % 3) * 250 : (n % 3) * 250 + 300] = 1.0
    parallel = CamPlusPlusEmbedding(installed_config().embedding_path, workers=3).eval()
    with torch.inference_mode():
        one = campplus(waveforms, weights=masks)
        three = parallel(waveforms, weights=masks)
    assert torch.isnan(one).any() and not torch.isnan(one).all()
    assert torch.equal(torch.isnan(one), torch.isnan(three))
    assert torch.allclose(one.nan_to_num(), three.nan_to_num(), atol=1e-5)


def test_sample_has_two_speakers_named_by_first_appearance(turns: tuple[SpeakerTurn, ...]) -> None:
    speakers = [t.speaker for t in turns]
    assert sorted(set(speakers)) == ["SPEAKER_00", "SPEAKER_01"]
    assert speakers[0] == "SPEAKER_00"
    assert list(turns) == sorted(turns, key=lambda t: (t.start, t.end))
    assert all(0.0 <= t.start < t.end <= 30.0 for t in turns)


def test_sample_error_rate_is_within_the_measured_bound(clip: Clip, turns: tuple[SpeakerTurn, ...]) -> None:
    assert _der(clip, turns, 0.0) < MAX_DER_COLLAR_0
    assert _der(clip, turns, 0.5) < MAX_DER_COLLAR_05


def test_speaker_bounds_are_obeyed(diarizer: Diarizer, clip: Clip) -> None:
    assert len({t.speaker for t in diarizer.diarize(clip.samples, max_speakers=1)}) == 1
    # A minimum above the maximum is capped, not an error. (A minimum is a hint to the clustering,
    # not a promise: pyannote keeps only speakers that win some frames.)
    assert len({t.speaker for t in diarizer.diarize(clip.samples, min_speakers=5, max_speakers=2)}) <= 2


def test_silence_gives_no_turns(diarizer: Diarizer) -> None:
    assert diarizer.diarize(np.zeros(40 * SAMPLE_RATE, dtype=np.float32)) == ()


def test_words_of_the_sample_get_the_right_speaker(clip: Clip, turns: tuple[SpeakerTurn, ...]) -> None:
    """Transcribe with the bundled tiny.en, attach speakers, and score words against sample.stm."""
    from pipeline.config import EngineConfig
    from pipeline.transcribe import Transcriber
    from pipeline.types import DecodedAudio, Granularity, TranscriptionRequest

    transcriber = Transcriber(EngineConfig(cpu_threads=2))
    audio = DecodedAudio(samples=clip.samples, sample_rate=SAMPLE_RATE, duration_s=clip.duration)
    transcript = transcriber.transcribe(audio, TranscriptionRequest(granularities=frozenset({Granularity.WORD})))
    out = assign_speakers(transcript, turns)

    reference = _stm_speaker_at()
    words = [w for s in out.segments for w in s.words]
    pairs = [(w.speaker, reference((w.start + w.end) / 2)) for w in words]
    pairs = [(h, r) for h, r in pairs if r is not None]
    mapping = {h: max({r for _, r in pairs}, key=lambda r: sum(p == (h, r) for p in pairs)) for h, _ in pairs}
    right = sum(mapping[h] == r for h, r in pairs) / len(pairs)
    assert len(pairs) > 50
    # Measured: 70 of 72 scored words (97.2 %).
    assert right > 0.9, right
    assert all(len({w.speaker for w in s.words}) <= 1 for s in out.segments)
    assert {sp.id for sp in out.speakers} == {"SPEAKER_00", "SPEAKER_01"}


def _stm_speaker_at() -> Callable[[float], str | None]:
    import pyannote.audio

    stm = Path(pyannote.audio.__file__).parent / "sample" / "sample.stm"
    rows = []
    for line in stm.read_text().splitlines():
        f = line.split(maxsplit=5)
        rows.append((float(f[3]), float(f[4]), f[2]))

    def at(t: float) -> str | None:
        inside = [r for r in rows if r[0] <= t <= r[1]]
        return inside[0][2] if len(inside) == 1 else None  # overlaps and gaps are not scored

    return at


def test_missing_weights_say_how_to_install_them(tmp_path: Path) -> None:
    config = installed_config(embedding_path=str(tmp_path / "nothing.pt"))
    with pytest.raises(DiarizationModelsMissingError, match="install-diarization-models"):
        Diarizer(config)


# -- CAM++ on ONNX Runtime ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campplus_onnx() -> CamPlusPlusEmbedding:
    return CamPlusPlusEmbedding(installed_config().embedding_path, runtime="onnx").eval()


def test_onnx_campplus_embeds_real_speech_as_torch_does(
    campplus: CamPlusPlusEmbedding, campplus_onnx: CamPlusPlusEmbedding, clip: Clip
) -> None:
    """The exported graph beside the weights is the same network: same embedding to within 1e-4."""
    assert campplus.runtime == "torch" and campplus_onnx.runtime == "onnx"
    pieces = [p for v in single_speaker_pieces(clip).values() for p in v if len(p) >= SAMPLE_RATE][:5]
    assert len(pieces) == 5
    with torch.inference_mode():
        for piece in pieces:
            features = fbank(torch.from_numpy(piece))
            expected = campplus.embed_features(features).numpy()
            got = campplus_onnx.embed_features(features).numpy()
            # Measured 2-4e-6 on embeddings of norm 7-9.
            assert np.abs(expected - got).max() < EXPORT_TOLERANCE
    # The engine's own path: spans of the whole clip, one too short to embed (NaN in both).
    spans = [(10.6, 13.9), (1.0, 4.0), (20.0, 25.0), (5.0, 5.05)]
    waveform = torch.from_numpy(clip.samples)
    expected, got = campplus.embed_spans(waveform, spans), campplus_onnx.embed_spans(waveform, spans)
    assert np.isnan(expected[3]).all() and np.isnan(got[3]).all()
    assert np.abs(expected[:3] - got[:3]).max() < EXPORT_TOLERANCE


def test_onnx_runtime_needs_the_exported_graph(tmp_path: Path) -> None:
    weights = tmp_path / "campplus.pt"
    weights.symlink_to(installed_config().embedding_path)
    with pytest.raises(FileNotFoundError, match="no exported CAM"):
        CamPlusPlusEmbedding(str(weights), runtime="onnx")


def test_export_writes_a_checked_graph_beside_the_weights(tmp_path: Path) -> None:
    """export() into a copy of the weights: the .onnx appears beside it, loads, and matches torch."""
    weights = tmp_path / "campplus_cn_en_common.pt"
    shutil.copyfile(installed_config().embedding_path, weights)
    assert not onnx_path(str(weights)).exists()
    graph = export(str(weights))
    assert graph == onnx_path(str(weights)) == tmp_path / "campplus_cn_en_common.onnx"
    assert graph.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [graph.name, weights.name]  # no staging left over
    features = torch.randn(1, 200, FBANK_BINS)
    with torch.inference_mode():
        expected = load_campplus(str(weights))(features).numpy()
    got = OnnxCamPlusPlus(graph)(features.numpy())
    assert got.shape == (1, 192)
    assert np.abs(expected - got).max() < EXPORT_TOLERANCE


def test_a_diarizer_exports_the_graph_on_first_load(tmp_path: Path) -> None:
    """Weights without a graph beside them (set-up skipped): the first Diarizer makes it and uses it."""
    weights = tmp_path / "campplus_cn_en_common.pt"
    shutil.copyfile(installed_config().embedding_path, weights)
    diarizer = Diarizer(installed_config(embedding_path=str(weights), device="cpu"))
    assert diarizer.embedding_runtime == "onnx"
    assert onnx_path(str(weights)).is_file()
    assert "embedding_runtime_note" not in diarizer.describe()


# -- what the Diarizer says it is ----------------------------------------------------------------


def test_describe_names_the_engine_device_runtime_and_settings(diarizer: Diarizer) -> None:
    described = diarizer.describe()
    config = diarizer.config
    assert described["engine"] == "pyannote.audio (segmentation-3.0 + CAM++)"
    assert described["clustering"] == "spectral" == config.clustering  # the default since issue 21
    gpu = torch.cuda.is_available()
    assert described["device"] == ("cuda" if gpu else "cpu")
    # CAM++ runs on ONNX Runtime on the CPU by default; on a GPU it runs on torch and says why.
    assert described["embedding_runtime"] == ("torch" if gpu else "onnx")
    assert ("embedding_runtime_note" in described) == gpu
    for setting in (
        "threshold",
        "segmentation_step",
        "min_train_s",
        "min_cluster_size",
        "min_active_ratio",
        "num_threads",
        "embedding_workers",
        "max_speakers",
    ):
        assert described[setting] == getattr(config, setting), setting
    assert isinstance(described["load_s"], float) and described["load_s"] > 0
    json.dumps(described)  # it goes into /readyz and the start-up log as it is
    assert not any("token" in key for key in described)


def test_describe_of_the_pyannote_clustering(pyannote_diarizer: Diarizer) -> None:
    described = pyannote_diarizer.describe()
    assert described["clustering"] == "pyannote"
    assert (described["threshold"], described["segmentation_step"]) == (0.7, 0.2)


# -- the energy gate in front of the models ------------------------------------------------------


class _SegmenterSpy:
    """Stands in for the Diarizer's segmentation Inference: counts calls, delegates them."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.seconds: list[float] = []  # length of the waveform of each call

    def __call__(self, file: dict[str, object]) -> object:
        waveform = file["waveform"]
        assert isinstance(waveform, torch.Tensor)
        self.seconds.append(waveform.shape[-1] / SAMPLE_RATE)
        return self.inner(file)  # type: ignore[operator]


@pytest.fixture
def spy(diarizer: Diarizer, monkeypatch: pytest.MonkeyPatch) -> _SegmenterSpy:
    assert diarizer._segmenter is not None
    spy = _SegmenterSpy(diarizer._segmenter)
    monkeypatch.setattr(diarizer, "_segmenter", spy)
    return spy


def test_ten_minutes_of_silence_never_reach_the_models(diarizer: Diarizer, spy: _SegmenterSpy) -> None:
    """Issue 12: 600 s of digital silence cost 33 s of segmentation; the gate now answers alone."""
    assert diarizer.diarize(np.zeros(600 * SAMPLE_RATE, dtype=np.float32)) == ()
    assert spy.seconds == []


@pytest.fixture(scope="module")
def monologue_with_a_long_silence() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """About 20 s of one espeak-ng voice, 60 s of digital silence, 20 s more: and where the voice is."""
    voice = ESPEAK_VOICES["andy"]
    pause = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    halves = []
    for texts in (SENTENCES[:4], SENTENCES[4:]):
        parts = [p for t in texts for p in (espeak(voice, t), pause)][:-1]
        halves.append(np.concatenate(parts))
    samples = np.concatenate([halves[0], np.zeros(60 * SAMPLE_RATE, np.float32), halves[1]])
    first_end = len(halves[0]) / SAMPLE_RATE
    second_start = first_end + 60.0
    return samples, [(0.0, first_end), (second_start, len(samples) / SAMPLE_RATE)]


@pytest.mark.tools  # espeak-ng speaks the monologue
def test_turns_stay_in_the_spoken_parts_around_a_long_silence(
    diarizer: Diarizer, spy: _SegmenterSpy, monologue_with_a_long_silence: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    """The models see the speech joined without the silence; the turns come back on the clip's timeline."""
    samples, spoken = monologue_with_a_long_silence
    duration = len(samples) / SAMPLE_RATE
    assert 39.0 < sum(e - s for s, e in spoken) < 42.0 and duration > 95.0
    turns = diarizer.diarize(samples)

    # One segmentation pass, over the joined speech only (about 41 s, not 100 s).
    assert len(spy.seconds) == 1
    assert spy.seconds[0] == pytest.approx(sum(e - s for s, e in spoken) + 2 * MARGIN_S, abs=0.2)
    # Every turn lies in a spoken part (give or take the gate's margin and one 30 ms frame) ...
    slack = MARGIN_S + FRAME / SAMPLE_RATE
    for turn in turns:
        assert any(s - slack <= turn.start and turn.end <= e + slack for s, e in spoken), turn
        assert turn.end <= spoken[0][1] + slack or turn.start >= spoken[1][0] - slack, turn
    # ... and the speech of both parts is found, the second one 60 s later than on the join.
    for s, e in spoken:
        covered = sum(max(0.0, min(e, t.end) - max(s, t.start)) for t in turns)
        assert covered > 0.9 * (e - s), (s, e, turns)
    # One voice is one speaker, on both sides of the cut (measured: one turn per part).
    assert {t.speaker for t in turns} == {"SPEAKER_00"}


# -- pyannote's own clustering, still selectable ---------------------------------------------------


@pytest.fixture(scope="module")
def pyannote_diarizer() -> Diarizer:
    return Diarizer(installed_config(clustering="pyannote", segmentation_step=0.2, threshold=0.7))


def test_pyannote_clustering_still_finds_the_two_speakers(pyannote_diarizer: Diarizer, clip: Clip) -> None:
    assert pyannote_diarizer._segmenter is None  # pyannote's SpeakerDiarization does the whole job
    turns = pyannote_diarizer.diarize(clip.samples)
    speakers = [t.speaker for t in turns]
    assert sorted(set(speakers)) == ["SPEAKER_00", "SPEAKER_01"]
    assert speakers[0] == "SPEAKER_00"
    assert all(0.0 <= t.start < t.end <= clip.duration for t in turns)
    # The bounds measured on this path (8.3 % and 0.2 % behind the energy gate).
    assert _der(clip, turns, 0.0) < MAX_DER_COLLAR_0
    assert _der(clip, turns, 0.5) < MAX_DER_COLLAR_05
    # Silence stops at the gate on this path too.
    assert pyannote_diarizer.diarize(np.zeros(600 * SAMPLE_RATE, dtype=np.float32)) == ()
