"""Which Whisper model a worker loads when WHISPER_MODEL=auto: the seed's rule, local directories only.

Above 16 GiB of GPU memory large-v3, above 8 GiB medium, else base (and base on a CPU). The
models are CTranslate2 directories named after the model under one models directory; nothing is
downloaded. When the chosen one is not there, the next smaller one that is; when none is, the
bundled tiny.en, so a worker always starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
# Largest first: (name, GPU memory it needs at float16 with room for batches and diarization).
LADDER: tuple[tuple[str, int], ...] = (("large-v3", 16 * GIB), ("medium", 8 * GIB), ("base", 0))


@dataclass(frozen=True)
class ModelChoice:
    path: str | None  # None: the bundled tiny.en
    name: str
    reason: str


def wanted_model(gpu_memory_bytes: int | None) -> str:
    """The seed's rule: the largest model the device's memory is above the threshold of."""
    if gpu_memory_bytes is None:
        return "base"
    for name, needs in LADDER:
        if gpu_memory_bytes > needs:
            return name
    return "base"


def choose_model(models_dir: Path, gpu_memory_bytes: int | None) -> ModelChoice:
    wanted = wanted_model(gpu_memory_bytes)
    device = "CPU" if gpu_memory_bytes is None else f"{gpu_memory_bytes / GIB:.1f} GiB of GPU memory"
    names = [name for name, _ in LADDER]
    for name in names[names.index(wanted) :]:
        if (models_dir / name / "model.bin").is_file():
            why = f"{device}: {wanted}" + ("" if name == wanted else f" is not in {models_dir}, {name} is")
            return ModelChoice(str(models_dir / name), name, why)
    return ModelChoice(None, "tiny.en", f"{device}: none of {', '.join(names)} in {models_dir}; the bundled tiny.en")
