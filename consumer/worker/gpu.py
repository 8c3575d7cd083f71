"""GPU memory in use, for ``gpu_memory_usage_bytes``: NVML when present, else nothing.

CTranslate2 allocates outside torch, so torch's allocator statistics would miss the model;
NVML reports what the device itself has in use. The CUDA image installs nvidia-ml-py;
CPU workers never call this.
"""

from __future__ import annotations

from typing import Any


class GpuMemory:
    def __init__(self, device_index: int) -> None:
        self._handle: Any = None
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML, no driver or no GPU: the metric stays unset
            self._handle = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def total_bytes(self) -> int | None:
        if self._handle is None:
            return None
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).total)

    def used_bytes(self) -> int | None:
        if self._handle is None:
            return None
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
