"""Speaker turns onto a transcript: words, then segments, then the speaker list. Pure Python."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pipeline.types import Segment, Speaker, Transcript, Word


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of one speaker's speech, in seconds from the start of the clip."""

    start: float
    end: float
    speaker: str


class _Timeline:
    """Turns sorted by start, answering "who talks most in [a, b]" in about log time."""

    def __init__(self, turns: Iterable[SpeakerTurn]) -> None:
        self.turns = sorted((t for t in turns if t.end > t.start), key=lambda t: (t.start, t.end))
        self.starts = [t.start for t in self.turns]
        self.longest = max((t.end - t.start for t in self.turns), default=0.0)
        # Running max of ends, to find the last turn that ended before a point.
        self.max_end: list[float] = []
        running = float("-inf")
        for t in self.turns:
            running = max(running, t.end)
            self.max_end.append(running)

    def speaker(self, start: float, end: float) -> str | None:
        """Who talks most during [start, end]; for a gap (or an instant), the nearest turn's speaker."""
        if not self.turns:
            return None
        talk: dict[str, float] = {}
        hi = bisect.bisect_left(self.starts, end) if end > start else bisect.bisect_right(self.starts, end)
        lo = bisect.bisect_left(self.starts, start - self.longest)
        for turn in self.turns[lo:hi]:
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap > 0:
                talk[turn.speaker] = talk.get(turn.speaker, 0.0) + overlap
            elif overlap == 0 and start == end and turn.start <= start <= turn.end:
                talk.setdefault(turn.speaker, 0.0)  # an instant inside a turn belongs to it
        if talk:
            # Ties go to the speaker whose turn came first (dicts keep insertion order).
            return max(talk, key=lambda s: talk[s])
        return self._nearest(start, end)

    def _nearest(self, start: float, end: float) -> str:
        candidates: list[tuple[float, int]] = []
        after = bisect.bisect_left(self.starts, end)
        if after < len(self.turns):
            candidates.append((self.turns[after].start - end, after))
        before = bisect.bisect_right(self.starts, start) - 1
        if before >= 0:
            # The turn ending last among those that began before the gap.
            idx = self._last_ending(before)
            candidates.append((start - self.turns[idx].end, idx))
        return self.turns[min(candidates)[1]].speaker

    def _last_ending(self, upto: int) -> int:
        """Index of the turn that ends last among turns[0..upto]: where the running max first reaches its value."""
        return bisect.bisect_left(self.max_end, self.max_end[upto], 0, upto + 1)


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """Attach speakers to words and segments, splitting segments where the speaker changes.

    - Every word gets the speaker who talks most while it is said (the nearest one if nobody does).
    - A segment whose words change speaker is cut at each change, so every segment has one speaker;
      the parts keep the parent's scores, their text is rebuilt from their words, and segment ids
      are renumbered from 0.
    - A segment without words gets the speaker who talks most during it.
    - ``transcript.speakers`` lists each speaker of ``turns`` with their total speech time.
    With no turns at all the transcript comes back unchanged.
    """
    timeline = _Timeline(turns)
    if not timeline.turns:
        return transcript
    segments: list[Segment] = []
    for segment in transcript.segments:
        for part in _split(segment, timeline):
            segments.append(replace(part, id=len(segments)))
    return replace(
        transcript,
        segments=tuple(segments),
        text=" ".join(s.text for s in segments if s.text),
        speakers=_speakers(timeline.turns),
    )


def _split(segment: Segment, timeline: _Timeline) -> list[Segment]:
    if not segment.words:
        return [replace(segment, speaker=timeline.speaker(segment.start, segment.end))]
    words = [replace(w, speaker=timeline.speaker(w.start, w.end)) for w in segment.words]
    runs: list[list[Word]] = [[words[0]]]
    for word in words[1:]:
        if word.speaker == runs[-1][-1].speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [replace(segment, words=tuple(words), speaker=words[0].speaker)]
    parts = []
    for n, run in enumerate(runs):
        parts.append(
            replace(
                segment,
                start=segment.start if n == 0 else run[0].start,
                end=segment.end if n == len(runs) - 1 else run[-1].end,
                text="".join(w.word for w in run).strip(),
                words=tuple(run),
                speaker=run[0].speaker,
            )
        )
    return parts


def _speakers(turns: Sequence[SpeakerTurn]) -> tuple[Speaker, ...]:
    """Total speech per speaker, counting a speaker's own overlapping turns once."""
    by_speaker: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by_speaker.setdefault(t.speaker, []).append((t.start, t.end))
    speakers = []
    for name in sorted(by_speaker):
        total, reach = 0.0, float("-inf")
        for start, end in sorted(by_speaker[name]):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        speakers.append(Speaker(id=name, speech_s=round(total, 3)))
    return tuple(speakers)
