"""Which worker pool an event goes to: the routing policy and the overflow state machine. Pure.

The router (``consumer.router.service``) reads each AudioReference once and hands it to exactly one pool
by writing it to that pool's topic. This module decides where, from the event and from whether
the GPU pool is behind; it does no I/O, so every rule is unit-tested (tests/unit/consumer/router/test_rules.py).

Policy, first match wins (docs/ROUTING.md):

| event                                            | pool            | reason            |
|--------------------------------------------------|-----------------|-------------------|
| only one pool is deployed (ROUTER_POOLS)         | that pool       | ``only_pool``     |
| unreadable or invalid                            | default pool    | ``unreadable``    |
| speakers asked for (``speaker`` or ``always``)   | gpu             | ``diarization``   |
| profile ``whisper-1-quality``                    | gpu             | ``quality_profile``|
| profile ``whisper-1-fast``                       | cpu             | ``fast_profile``  |
| anything else                                    | default pool    | ``default``       |

While the GPU pool is overflowing, an event bound for the GPU that may run on a CPU goes to the
CPU pool instead, with reason ``overflow``: ``default`` and ``unreadable`` always may, quality and
diarization only when ROUTER_OVERFLOW_QUALITY / ROUTER_OVERFLOW_DIARIZATION allow it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from consumer.contract.inputs import AudioReference
from pipeline.types import DiarizationMode

QUALITY_PROFILE = "whisper-1-quality"
FAST_PROFILE = "whisper-1-fast"


class Pool(StrEnum):
    GPU = "gpu"
    CPU = "cpu"


class Reason(StrEnum):
    ONLY_POOL = "only_pool"
    UNREADABLE = "unreadable"
    DIARIZATION = "diarization"
    QUALITY_PROFILE = "quality_profile"
    FAST_PROFILE = "fast_profile"
    DEFAULT = "default"
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class Route:
    pool: Pool
    reason: Reason


@dataclass(frozen=True)
class RoutingPolicy:
    pools: frozenset[Pool] = frozenset({Pool.GPU, Pool.CPU})
    default_pool: Pool = Pool.GPU
    overflow_quality: bool = False
    overflow_diarization: bool = False

    def __post_init__(self) -> None:
        if not self.pools:
            raise ValueError("at least one pool is needed")

    def classify(self, ref: AudioReference | None) -> Route:
        """Where the event belongs when the GPU pool keeps up."""
        if len(self.pools) == 1:
            (only,) = self.pools
            return Route(only, Reason.ONLY_POOL)
        if ref is None:
            # The pool's worker dead-letters it (MALFORMED_EVENT or INVALID_EVENT), as without a
            # router: one dead-letter path, one set of codes.
            return Route(self.default_pool, Reason.UNREADABLE)
        request = ref.to_request()
        if request.wants_speakers and request.diarization is not DiarizationMode.NEVER:
            return Route(Pool.GPU, Reason.DIARIZATION)
        if ref.profile == QUALITY_PROFILE:
            return Route(Pool.GPU, Reason.QUALITY_PROFILE)
        if ref.profile == FAST_PROFILE:
            return Route(Pool.CPU, Reason.FAST_PROFILE)
        return Route(self.default_pool, Reason.DEFAULT)

    def may_run_on_cpu(self, reason: Reason) -> bool:
        """Whether a GPU-bound event of this reason may go to the CPU pool while the GPU pool overflows."""
        if reason is Reason.QUALITY_PROFILE:
            return self.overflow_quality
        if reason is Reason.DIARIZATION:
            return self.overflow_diarization
        return reason in (Reason.DEFAULT, Reason.UNREADABLE)

    def route(self, ref: AudioReference | None, overflowing: bool) -> Route:
        route = self.classify(ref)
        if overflowing and route.pool is Pool.GPU and Pool.CPU in self.pools and self.may_run_on_cpu(route.reason):
            return Route(Pool.CPU, Reason.OVERFLOW)
        return route


# --- overflow: is the GPU pool behind? ------------------------------------------------------------


@dataclass(frozen=True)
class GpuObservation:
    """One look at the GPU consumer group; None where the broker could not tell."""

    lag: int | None  # offsets the group is behind on the GPU topic
    members: int | None  # members of the group
    at: float  # monotonic seconds


@dataclass(frozen=True)
class OverflowConfig:
    high_watermark: int
    low_watermark: int
    down_after_s: float

    def __post_init__(self) -> None:
        # Hysteresis needs a gap: with low >= high the state would flip on every observation
        # around the threshold, and the CPU pool's share would flap with it.
        if not 0 <= self.low_watermark < self.high_watermark:
            raise ValueError(f"need 0 <= low watermark ({self.low_watermark}) < high watermark ({self.high_watermark})")


@dataclass(frozen=True)
class OverflowState:
    active: bool = False
    cause: str = ""  # "lag" | "gpu_group_down" while active
    since: float | None = None  # when the current state began (None: since the start)
    no_members_since: float | None = None  # when the group was first seen without members


def advance(state: OverflowState, seen: GpuObservation, config: OverflowConfig) -> OverflowState:
    """The overflow state after one observation.

    - Overflow begins when the lag reaches the high watermark, or when the GPU group has had no
      members for ``down_after_s`` (a pool that is down drains nothing, whatever its lag).
    - It ends only when the group has members again (or they are unknown) and the lag is at or
      below the low watermark: between the two watermarks the state stays as it is.
    - An unknown lag or membership never changes the state: a failed look is not news.
    """
    no_members_since = state.no_members_since
    if seen.members == 0:
        no_members_since = no_members_since if no_members_since is not None else seen.at
    elif seen.members is not None:
        no_members_since = None
    down = no_members_since is not None and seen.at - no_members_since >= config.down_after_s
    next_state = replace(state, no_members_since=no_members_since)

    if down:
        if not state.active:
            return replace(next_state, active=True, cause="gpu_group_down", since=seen.at)
        return replace(next_state, cause="gpu_group_down")
    if not state.active:
        if seen.lag is not None and seen.lag >= config.high_watermark:
            return replace(next_state, active=True, cause="lag", since=seen.at)
        return next_state
    if seen.lag is not None and seen.lag <= config.low_watermark:
        return replace(next_state, active=False, cause="", since=seen.at)
    # Still behind, or back with members but not yet drained: the lag decides from here.
    return replace(next_state, cause="lag" if no_members_since is None else state.cause)
