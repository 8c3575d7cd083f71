"""Errors of the diarization engine.

A diarization failure never dead-letters an event: the transcript is still published, marked
``failed`` with the message as its reason. So these keep the root's INTERNAL_ERROR code and are
not retriable; the message is what a reader of the transcript sees.
"""

from __future__ import annotations

from pipeline.errors import StageError


class DiarizationError(StageError):
    """Diarization of one clip failed; the transcript goes out without speakers."""


class DiarizationModelsMissingError(DiarizationError):
    """A weight file is not where the config says: no clip can be diarized until it is installed."""
