"""The pure health state machine: first round, fall/rise thresholds, all-down, least-loaded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.dns.health import (
    CheckResult,
    HealthConfig,
    HealthState,
    HealthTarget,
    Live,
    parse_load,
)

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def _round(state: HealthState, ok: dict[str, bool], loads: dict[str, float] | None = None) -> None:
    loads = loads or {}
    state.record_all(CheckResult(a, good, loads.get(a)) for a, good in ok.items())


def test_zone_as_written_until_every_address_was_checked() -> None:
    state = HealthState([A, B, C], fall=1, rise=1)
    assert state.live() == Live(None)
    state.record(CheckResult(A, True))
    state.record(CheckResult(B, False))
    assert state.live() == Live(None)
    state.record(CheckResult(C, True))
    assert state.live() == Live((A, C))


def test_first_result_sets_the_state_directly() -> None:
    state = HealthState([A, B], fall=3, rise=3)
    _round(state, {A: True, B: False})
    assert state.is_up(A) is True
    assert state.is_up(B) is False
    assert state.live() == Live((A,))


def test_fall_needs_consecutive_failures() -> None:
    state = HealthState([A, B], fall=3, rise=2)
    _round(state, {A: True, B: True})
    _round(state, {A: False, B: True})
    _round(state, {A: False, B: True})
    assert state.live() == Live((A, B))
    _round(state, {A: True, B: True})  # a pass resets the streak
    _round(state, {A: False, B: True})
    _round(state, {A: False, B: True})
    assert state.is_up(A)
    _round(state, {A: False, B: True})
    assert not state.is_up(A)
    assert state.live() == Live((B,))


def test_rise_needs_consecutive_passes() -> None:
    state = HealthState([A, B], fall=1, rise=2)
    _round(state, {A: False, B: True})
    _round(state, {A: True, B: True})
    assert state.live() == Live((B,))
    _round(state, {A: False, B: True})
    _round(state, {A: True, B: True})
    assert state.live() == Live((B,))
    _round(state, {A: True, B: True})
    assert state.live() == Live((A, B))


def test_all_down_gives_all() -> None:
    state = HealthState([A, B], fall=1, rise=1)
    _round(state, {A: True, B: False})
    assert state.live() == Live((A,))
    _round(state, {A: False, B: False})
    assert state.live() == Live(None)


def test_least_loaded_orders_live_addresses() -> None:
    state = HealthState([A, B, C], fall=1, rise=1, order="least-loaded")
    _round(state, {A: True, B: True, C: True}, {A: 0.9, B: 0.1, C: 0.5})
    assert state.live() == Live((B, C, A), ordered=True)
    _round(state, {A: True, B: False, C: True}, {A: 0.2, C: 0.5})
    assert state.live() == Live((A, C), ordered=True)


def test_least_loaded_unknown_load_sorts_last_ties_keep_zone_order() -> None:
    state = HealthState([A, B, C], fall=1, rise=1, order="least-loaded")
    _round(state, {A: True, B: True, C: True}, {B: 1.0, C: 1.0})
    assert state.live() == Live((B, C, A), ordered=True)


def test_least_loaded_without_any_figure_rotates() -> None:
    state = HealthState([A, B, C], fall=1, rise=1, order="least-loaded")
    _round(state, {A: True, B: True, C: False})
    assert state.live() == Live((A, B), ordered=False)


def test_unknown_address_is_an_error() -> None:
    state = HealthState([A], fall=1, rise=1)
    with pytest.raises(KeyError):
        state.record(CheckResult(B, True))


@settings(max_examples=150, deadline=None)
@given(
    fall=st.integers(1, 4),
    rise=st.integers(1, 4),
    results=st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_state_follows_threshold_model(fall: int, rise: int, results: list[bool]) -> None:
    """Against a direct model: the state flips exactly after fall/rise opposite results in a row."""
    state = HealthState([A], fall=fall, rise=rise)
    up: bool | None = None
    streak = 0
    for ok in results:
        state.record(CheckResult(A, ok))
        if up is None:
            up, streak = ok, 0
        elif ok == up:
            streak = 0
        else:
            streak += 1
            if streak == (rise if ok else fall):
                up, streak = ok, 0
        assert state.is_up(A) is up
    assert state.live() == Live((A,) if up else None)


@pytest.mark.parametrize(
    ("headers", "body", "load"),
    [
        ({"X-Load": "0.25"}, b"", 0.25),
        ({"X-Load": "0.25"}, b'{"load": 7}', 0.25),
        ({}, b'{"load": 7}', 7.0),
        ({}, b'{"load": "3.5", "other": 1}', 3.5),
        ({}, b'{"load": true}', None),
        ({}, b'{"load": "nan"}', None),
        ({}, b"[1, 2]", None),
        ({}, b"not json", None),
        ({}, b"", None),
        ({"X-Load": "busy"}, b"", None),
    ],
)
def test_parse_load(headers: dict[str, str], body: bytes, load: float | None) -> None:
    assert parse_load(headers, body) == load


def test_config_validation() -> None:
    t = (HealthTarget(A, 80),)
    HealthConfig("www.foo.com.", t)
    with pytest.raises(ValueError, match="fall"):
        HealthConfig("www.foo.com.", t, fall=0)
    with pytest.raises(ValueError, match="kind"):
        HealthConfig("www.foo.com.", t, kind="icmp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="least-loaded"):
        HealthConfig("www.foo.com.", t, kind="tcp", order="least-loaded")
    with pytest.raises(ValueError, match="twice"):
        HealthConfig("www.foo.com.", (HealthTarget(A, 80), HealthTarget(A, 81)))
    with pytest.raises(ValueError, match="no addresses"):
        HealthConfig("www.foo.com.", ())
    with pytest.raises(ValueError, match="port"):
        HealthTarget(A, 0)
