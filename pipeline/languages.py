"""What a request may ask of the loaded model's languages, decided before any audio is fetched.

An English-only Whisper model (``tiny.en``, the bundled default, or any ``*.en``) has no language
or task tokens: faster-whisper ignores ``language`` and ``task`` with it and writes English. A
request for German on such a model would come back as an English transcript labelled ``de``, so it
is refused (``UnsupportedLanguageError``) instead.

What an English-only model still does, as before:

- ``language`` null or ``en``: English, ``language`` reported as ``en``; with null the
  probability is null (nothing was detected, the model implies it).
- ``task=translate`` with ``language`` null or ``en``: the audio is taken to be English, so its
  English transcript is its translation to English. Non-English speech comes out as whatever the
  English model makes of it; a multilingual model is needed to translate it.
"""

from __future__ import annotations

from pipeline.errors import UnsupportedLanguageError
from pipeline.types import Task, TranscriptionRequest

ENGLISH = "en"


def check_language(request: TranscriptionRequest, *, multilingual: bool, model: str) -> None:
    """Raise ``UnsupportedLanguageError`` when ``model`` cannot honour the request's language."""
    if multilingual or request.language is None or request.language.lower() == ENGLISH:
        return
    action = "translate from" if request.task is Task.TRANSLATE else "transcribe"
    raise UnsupportedLanguageError(
        f"language {request.language!r} was requested, but this worker's model {model} is English-only and "
        f"cannot {action} it; send language 'en' or null, or route the event to a worker whose WHISPER_MODEL "
        "is a multilingual model (README: Languages)"
    )
