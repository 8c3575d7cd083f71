"""An English-only model refuses other languages before any audio is fetched; English works as before."""

from __future__ import annotations

import pytest

from pipeline.config import EngineConfig
from pipeline.errors import ErrorCode, UnsupportedLanguageError
from pipeline.languages import check_language
from pipeline.stage import Pipeline
from pipeline.types import Task, TranscriptionRequest


@pytest.mark.parametrize("language", [None, "en", "EN"])
@pytest.mark.parametrize("task", list(Task))
def test_english_or_detection_passes_on_an_english_only_model(language: str | None, task: Task) -> None:
    check_language(TranscriptionRequest(language=language, task=task), multilingual=False, model="tiny.en")


@pytest.mark.parametrize("task", list(Task))
def test_a_multilingual_model_takes_any_language(task: Task) -> None:
    check_language(TranscriptionRequest(language="de", task=task), multilingual=True, model="base")


def test_another_language_on_an_english_only_model_is_refused_with_the_remedy() -> None:
    with pytest.raises(UnsupportedLanguageError) as info:
        check_language(TranscriptionRequest(language="de"), multilingual=False, model="tiny.en")
    error = info.value
    assert error.code is ErrorCode.UNSUPPORTED_LANGUAGE and not error.retriable
    assert "'de'" in error.message and "tiny.en is English-only" in error.message
    assert "language 'en' or null" in error.message and "WHISPER_MODEL" in error.message


def test_translating_from_another_language_is_refused_too() -> None:
    with pytest.raises(UnsupportedLanguageError, match="cannot translate from it"):
        check_language(TranscriptionRequest(language="fr", task=Task.TRANSLATE), multilingual=False, model="tiny.en")


def test_the_stage_checks_the_language_with_the_profile() -> None:
    """Pipeline.check_request (run before the object is fetched) knows the bundled tiny.en is English-only."""
    stage = Pipeline(EngineConfig(cpu_threads=1))
    assert not stage.transcriber.multilingual
    assert stage.check_request(TranscriptionRequest(language="en")).name == "whisper-1"
    with pytest.raises(UnsupportedLanguageError, match="'es'"):
        stage.check_request(TranscriptionRequest(language="es", profile="whisper-1-fast"))
