"""Speakers on real voices (issue 21): the CPU engine with its defaults and no hints, on recorded speech.

The defaults were chosen on the ``tune`` split of bench/diarization/real.py; these checks run on
held-out readers as well, so they say how the defaults generalise rather than that they were tuned.
The bounds leave room for one CPU kind's rounding (AVX2 against AVX-512), not for a wrong count.
"""

from __future__ import annotations

import pytest

from bench.diarization import real
from bench.diarization.clips import Clip
from bench.diarization.models import installed_config
from pipeline.diarization import make_diarizer
from pipeline.diarization.light import LightDiarizer
from pipeline.diarization.onnx import OnnxCamPlusPlusFrames, frames_paths, onnx_path


@pytest.fixture(scope="module")
def light() -> LightDiarizer:
    diarizer = make_diarizer(installed_config(device="cpu"))
    assert isinstance(diarizer, LightDiarizer)
    diarizer.warm_up()
    return diarizer


@pytest.fixture(scope="module")
def clips() -> dict[str, Clip]:
    return {c.name: c for split in ("tune", "heldout") for c in real.build(split)}


@pytest.mark.parametrize("name", ["tune_trump_1", "heldout_reader_m_1", "heldout_reader_f_1"])
def test_a_monologue_is_one_speaker(light: LightDiarizer, clips: dict[str, Clip], name: str) -> None:
    turns = light.diarize(clips[name].samples)
    assert len({t.speaker for t in turns}) == 1, turns
    assert sum(t.end - t.start for t in turns) > 0.8 * sum(t.end - t.start for t in clips[name].turns)


@pytest.mark.parametrize("name", ["heldout_mm_2", "heldout_ff_2", "heldout_mixed_2"])
def test_two_real_people_are_two_speakers_whatever_their_sex(
    light: LightDiarizer, clips: dict[str, Clip], name: str
) -> None:
    clip = clips[name]
    turns = light.diarize(clip.samples)
    assert len({t.speaker for t in turns}) == 2, turns
    assert real.score(clip, turns, 0.25) < 0.10


@pytest.mark.parametrize("name", ["heldout_minor_3", "heldout_overlap_4", "heldout_minor_6"])
def test_many_speakers_with_one_who_talks_little(light: LightDiarizer, clips: dict[str, Clip], name: str) -> None:
    clip = clips[name]
    turns = light.diarize(clip.samples)
    found = len({t.speaker for t in turns})
    assert abs(found - len(clip.speakers)) <= 1, (found, len(clip.speakers))
    assert real.score(clip, turns, 0.25) < 0.15


def test_bounds_from_the_event_still_win(light: LightDiarizer, clips: dict[str, Clip]) -> None:
    clip = clips["heldout_talk_4"]
    assert len({t.speaker for t in light.diarize(clip.samples, max_speakers=2)}) <= 2
    assert len({t.speaker for t in light.diarize(clip.samples, min_speakers=5, max_speakers=5)}) == 5


def test_units_pooled_from_one_pass_are_embeddings_of_the_same_kind(clips: dict[str, Clip]) -> None:
    """A unit pooled from a 6 s pass is close to the same 1.5 s embedded on its own (same voice space)."""
    import numpy as np

    from pipeline.diarization.features import fbank
    from pipeline.diarization.onnx import OnnxCamPlusPlus

    config = installed_config()
    frames_model = OnnxCamPlusPlusFrames(*frames_paths(config.embedding_path))
    whole = OnnxCamPlusPlus(onnx_path(config.embedding_path))
    clip = clips["tune_trump_1"]
    turn = max(clip.turns, key=lambda t: t.end - t.start)
    piece = clip.samples[int(turn.start * 16_000) : int(turn.start * 16_000) + 6 * 16_000]
    features = fbank(piece)
    frames = frames_model((features - features.mean(axis=0, keepdims=True))[None])
    pooled = frames_model.pool(frames, [(0, frames.shape[1]), (50, 125)])
    alone = fbank(piece[16_000 : 16_000 + 24_000])
    single = whole((alone - alone.mean(axis=0, keepdims=True))[None])[0]
    full = whole((features - features.mean(axis=0, keepdims=True))[None])[0]

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(pooled[0], full) > 0.999  # all frames pooled: the network's own embedding
    assert cos(pooled[1], single) > 0.6  # a unit in its pass's context: the same speaker's region
