"""The routing policy and the overflow state machine (consumer/router/rules.py), pure."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.contract.inputs import AudioReference
from consumer.plumbing.settings import Settings
from consumer.router.rules import (
    GpuObservation,
    OverflowConfig,
    OverflowState,
    Pool,
    Reason,
    Route,
    RoutingPolicy,
    advance,
)

BOTH = RoutingPolicy()


def ref(**fields: Any) -> AudioReference:
    return AudioReference(event_id="e-1", object={"bucket": "audio", "key": "a.wav"}, **fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, Route(Pool.GPU, Reason.DEFAULT)),
        ({"profile": "whisper-1"}, Route(Pool.GPU, Reason.DEFAULT)),
        ({"profile": "whisper-1-quality"}, Route(Pool.GPU, Reason.QUALITY_PROFILE)),
        ({"profile": "whisper-1-fast"}, Route(Pool.CPU, Reason.FAST_PROFILE)),
        ({"diarization": "always"}, Route(Pool.GPU, Reason.DIARIZATION)),
        ({"timestamp_granularities": ["segment", "speaker"]}, Route(Pool.GPU, Reason.DIARIZATION)),
        # Speakers outrank the fast profile: diarization is the GPU's work whatever the beam.
        ({"profile": "whisper-1-fast", "diarization": "always"}, Route(Pool.GPU, Reason.DIARIZATION)),
        # `never` wins over the speaker granularity in the pipeline, so nothing needs a GPU here.
        ({"timestamp_granularities": ["speaker"], "diarization": "never"}, Route(Pool.GPU, Reason.DEFAULT)),
        ({"timestamp_granularities": ["word"], "profile": "whisper-1-fast"}, Route(Pool.CPU, Reason.FAST_PROFILE)),
        # An unknown profile is the worker's UNKNOWN_PROFILE dead letter: default pool.
        ({"profile": "whisper-9"}, Route(Pool.GPU, Reason.DEFAULT)),
    ],
)
def test_policy_table(fields: dict[str, Any], expected: Route) -> None:
    assert BOTH.classify(ref(**fields)) == expected
    assert BOTH.route(ref(**fields), overflowing=False) == expected


def test_unreadable_goes_to_the_default_pool() -> None:
    assert BOTH.route(None, overflowing=False) == Route(Pool.GPU, Reason.UNREADABLE)
    cpu_default = RoutingPolicy(default_pool=Pool.CPU)
    assert cpu_default.route(None, overflowing=False) == Route(Pool.CPU, Reason.UNREADABLE)
    assert cpu_default.route(ref(), overflowing=False) == Route(Pool.CPU, Reason.DEFAULT)


def test_one_pool_takes_everything() -> None:
    cpu_only = RoutingPolicy(pools=frozenset({Pool.CPU}))
    gpu_only = RoutingPolicy(pools=frozenset({Pool.GPU}))
    for fields in ({}, {"profile": "whisper-1-quality"}, {"diarization": "always"}, {"profile": "whisper-1-fast"}):
        for overflowing in (False, True):
            assert cpu_only.route(ref(**fields), overflowing) == Route(Pool.CPU, Reason.ONLY_POOL)
            assert gpu_only.route(ref(**fields), overflowing) == Route(Pool.GPU, Reason.ONLY_POOL)
    assert cpu_only.route(None, True) == Route(Pool.CPU, Reason.ONLY_POOL)
    with pytest.raises(ValueError):
        RoutingPolicy(pools=frozenset())


def test_overflow_moves_only_what_may_run_on_a_cpu() -> None:
    overflow = Route(Pool.CPU, Reason.OVERFLOW)
    assert BOTH.route(ref(), overflowing=True) == overflow
    assert BOTH.route(None, overflowing=True) == overflow
    # Needs a GPU unless a setting says otherwise.
    assert BOTH.route(ref(profile="whisper-1-quality"), overflowing=True) == Route(Pool.GPU, Reason.QUALITY_PROFILE)
    assert BOTH.route(ref(diarization="always"), overflowing=True) == Route(Pool.GPU, Reason.DIARIZATION)
    # Already the CPU's.
    assert BOTH.route(ref(profile="whisper-1-fast"), overflowing=True) == Route(Pool.CPU, Reason.FAST_PROFILE)
    lenient = RoutingPolicy(overflow_quality=True, overflow_diarization=True)
    assert lenient.route(ref(profile="whisper-1-quality"), overflowing=True) == overflow
    assert lenient.route(ref(diarization="always"), overflowing=True) == overflow
    only_quality = RoutingPolicy(overflow_quality=True)
    assert only_quality.route(ref(profile="whisper-1-quality"), overflowing=True) == overflow
    assert only_quality.route(ref(diarization="always"), overflowing=True).pool is Pool.GPU
    # With the CPU pool the default, overflow has nothing to move by default.
    cpu_default = RoutingPolicy(default_pool=Pool.CPU)
    assert cpu_default.route(ref(), overflowing=True) == Route(Pool.CPU, Reason.DEFAULT)


# --- the overflow state machine --------------------------------------------------------------------

CONFIG = OverflowConfig(high_watermark=50, low_watermark=10, down_after_s=60)


def run(observations: list[tuple[int | None, int | None]], start: OverflowState | None = None) -> list[bool]:
    """The overflow flag after each (lag, members) observation, one second apart."""
    state = start or OverflowState()
    flags = []
    for second, (lag, members) in enumerate(observations):
        state = advance(state, GpuObservation(lag=lag, members=members, at=float(second)), CONFIG)
        flags.append(state.active)
    return flags


def test_hysteresis_between_the_watermarks() -> None:
    lags = [0, 30, 49, 50, 70, 40, 11, 30, 10, 30, 49, 50]
    assert run([(lag, 2) for lag in lags]) == [
        False, False, False, True, True, True, True, True, False, False, False, True,
    ]  # fmt: skip


def test_unknown_observations_change_nothing() -> None:
    assert run([(None, None), (60, 1), (None, None), (None, 1), (5, None)]) == [False, True, True, True, False]
    # Unknown lag with members known: still no change.
    assert run([(60, 1), (None, 3), (None, 3)]) == [True, True, True]


def test_a_group_without_members_for_long_is_down() -> None:
    state = OverflowState()
    for second in range(0, 60):
        state = advance(state, GpuObservation(lag=0, members=0, at=float(second)), CONFIG)
        assert not state.active, second
    state = advance(state, GpuObservation(lag=0, members=0, at=60.0), CONFIG)
    assert state.active and state.cause == "gpu_group_down" and state.since == 60.0
    # Unknown members while down: still down (the clock keeps running from the first empty look).
    state = advance(state, GpuObservation(lag=None, members=None, at=61.0), CONFIG)
    assert state.active and state.cause == "gpu_group_down"
    # Members are back but the backlog is not drained: overflow goes on, now for the lag.
    state = advance(state, GpuObservation(lag=30, members=1, at=62.0), CONFIG)
    assert state.active and state.cause == "lag" and state.no_members_since is None
    state = advance(state, GpuObservation(lag=10, members=1, at=63.0), CONFIG)
    assert not state.active and state.cause == ""


def test_a_member_coming_back_resets_the_down_clock() -> None:
    state = OverflowState()
    for second, members in enumerate([0] * 59 + [1] + [0] * 59):
        state = advance(state, GpuObservation(lag=0, members=members, at=float(second)), CONFIG)
        assert not state.active
    assert state.no_members_since == 60.0


def test_down_overrides_a_low_lag() -> None:
    # A pool that is down drains nothing: a low lag (nothing routed to it yet) does not end overflow.
    config = OverflowConfig(high_watermark=50, low_watermark=10, down_after_s=0)
    state = advance(OverflowState(), GpuObservation(lag=0, members=0, at=0.0), config)
    assert state.active
    state = advance(state, GpuObservation(lag=0, members=0, at=1.0), config)
    assert state.active


def test_watermarks_must_leave_a_gap() -> None:
    for high, low in ((10, 10), (10, 20), (10, -1)):
        with pytest.raises(ValueError):
            OverflowConfig(high_watermark=high, low_watermark=low, down_after_s=1)


def test_router_settings() -> None:
    s = Settings(router_pools="cpu", _env_file=None)
    assert s.router_pools == ["cpu"]
    s = Settings(router_pools=" GPU , cpu ", _env_file=None)
    assert s.router_pools == ["gpu", "cpu"]
    assert Settings(_env_file=None).kafka_gpu_topic == "audio.references.gpu"
    with pytest.raises(ValueError):
        Settings(router_pools="tpu", _env_file=None)
