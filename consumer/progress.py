"""``fwv2 submit --wait``'s progress bars: one per file, moved by the workers' StatusEvents.

tqdm (already a dependency of faster-whisper) draws them on stderr, so the transcripts on stdout stay
clean for a pipe; off when stderr is not a terminal. A bar shows the state in words (queued, accepted,
transcribing, diarizing, done, dead letter) and the share of audio done. A second ``accepted`` with a
new run id (a redelivery) says so and starts the bar again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

from consumer.contract.status import JobState, StatusEvent


class ProgressBars:
    def __init__(self, files: Iterable[tuple[str, str]], stream: TextIO | None = None, enabled: bool | None = None):
        """``files``: (event id, label) of each submitted file, in the order to draw them."""
        stream = stream or sys.stderr
        on = stream.isatty() if enabled is None else enabled
        self._bars: dict[str, tqdm] = {}
        self._runs: dict[str, str] = {}
        for position, (event_id, label) in enumerate(files):
            self._bars[event_id] = tqdm(
                total=100,
                desc=label,
                position=position,
                file=stream,
                disable=not on,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix}",
                postfix="queued",
            )

    def update(self, event: StatusEvent) -> None:
        bar = self._bars.get(event.event_id)
        if bar is None:
            return  # another producer's event
        if event.state is JobState.ACCEPTED:
            seen = self._runs.get(event.event_id)
            self._runs[event.event_id] = event.run_id
            bar.set_postfix_str("redelivered" if seen not in (None, event.run_id) else "accepted", refresh=False)
            self._move(bar, 0.0)
        elif event.state is JobState.PROGRESS:
            step = event.step.value if event.step is not None else "working"
            bar.set_postfix_str(step, refresh=False)
            self._move(bar, event.progress)
        elif event.state is JobState.COMPLETED:
            bar.set_postfix_str("done", refresh=False)
            self._move(bar, 1.0)
        elif event.state is JobState.DEAD_LETTERED:
            code = event.outcome.code if event.outcome is not None else None
            bar.set_postfix_str(f"dead letter {code or ''}".rstrip(), refresh=False)
            self._move(bar, 1.0)

    def percent(self, event_id: str) -> float:
        return float(self._bars[event_id].n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()

    @staticmethod
    def _move(bar: tqdm, share: float) -> None:
        bar.n = round(max(0.0, min(share, 1.0)) * 100, 1)
        bar.refresh()
