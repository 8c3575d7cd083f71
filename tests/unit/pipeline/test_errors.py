from __future__ import annotations

import pytest

from pipeline.errors import ResourceExhaustedError, TranscriptionError, model_failure


@pytest.mark.parametrize(
    ("exc", "kind", "retriable"),
    [
        (MemoryError("no room"), ResourceExhaustedError, True),
        (RuntimeError("CUDA failed: out of memory"), ResourceExhaustedError, True),
        (RuntimeError("shape mismatch"), TranscriptionError, False),
        (ValueError("unsupported language"), TranscriptionError, False),
    ],
)
def test_model_failures_are_retriable_only_when_memory_ran_out(exc: BaseException, kind: type, retriable: bool) -> None:
    error = model_failure(exc, "transcribing", TranscriptionError)
    assert isinstance(error, kind)
    assert error.retriable is retriable
    assert "while transcribing" in error.message
