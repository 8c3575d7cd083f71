from __future__ import annotations

import pytest

from consumer.plumbing.settings import Settings
from pipeline.config import ProfileOverrides
from pipeline.errors import ErrorCode, UnknownProfileError
from pipeline.profiles import PROFILES, get_profile
from pipeline.transcribe import default_compute_type


def test_the_three_profiles_trade_speed_for_accuracy() -> None:
    fast, mid, quality = (get_profile(n) for n in ("whisper-1-fast", "whisper-1", "whisper-1-quality"))
    assert (fast.beam_size, fast.best_of, fast.patience) == (1, 1, 0.5)
    assert (mid.beam_size, mid.best_of, mid.patience) == (5, 5, 1.0)
    assert (quality.beam_size, quality.best_of, quality.patience) == (10, 10, 2.0)
    # aggressive -> conservative VAD: the threshold falls, silences and padding grow
    assert fast.vad.threshold > mid.vad.threshold > quality.vad.threshold
    assert fast.vad.speech_pad_ms < mid.vad.speech_pad_ms < quality.vad.speech_pad_ms


def test_unknown_profile_names_the_valid_ones() -> None:
    with pytest.raises(UnknownProfileError, match="whisper-1-fast, whisper-1-quality") as info:
        get_profile("whisper-2")
    assert info.value.code is ErrorCode.UNKNOWN_PROFILE


def test_overrides_replace_only_what_they_set() -> None:
    p = get_profile("whisper-1", ProfileOverrides(beam_size=2, vad_threshold=0.7))
    assert p.beam_size == 2 and p.vad.threshold == 0.7
    assert p.best_of == PROFILES["whisper-1"].best_of
    assert p.vad.speech_pad_ms == PROFILES["whisper-1"].vad.speech_pad_ms


def test_environment_overrides_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_SIZE", "3")
    monkeypatch.setenv("PATIENCE", "1.5")
    monkeypatch.setenv("ALLOWED_BUCKETS", "audio, calls")
    settings = Settings()
    assert settings.allowed_buckets == ["audio", "calls"]
    profile = get_profile("whisper-1-fast", settings.engine_config().overrides)
    assert (profile.beam_size, profile.patience, profile.best_of) == (3, 1.5, 1)


def test_compute_type_follows_the_device() -> None:
    assert default_compute_type("cpu") == "int8"
    assert default_compute_type("cuda") == "float16"


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_KEY", "very-secret-value")
    settings = Settings()
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings.model_dump())
    assert settings.s3_secret_key.get_secret_value() == "very-secret-value"


def test_whisper_options_carry_the_profile_and_its_overrides() -> None:
    options = get_profile("whisper-1-quality", ProfileOverrides(vad_speech_pad_ms=900)).whisper_options()
    assert (options["beam_size"], options["best_of"], options["patience"]) == (10, 10, 2.0)
    assert options["vad_filter"] is True
    assert options["vad_parameters"] == {"threshold": 0.35, "min_silence_duration_ms": 2000, "speech_pad_ms": 900}
