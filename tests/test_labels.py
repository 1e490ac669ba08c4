"""Tests for sigbridge.models.labels: the ZigZag port, its confirmation bars and the labels."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigbridge.config import LabelConfig
from sigbridge.models.labels import PEAK, TROUGH, Pivot, ZigZagStream, make_labels, zigzag

DATA_FILE = Path(__file__).resolve().parents[1] / "examples" / "data" / "EURUSD_H1.csv"
EURUSD_POINT = 1e-5
# Unit price step for the hand-made series, with deviation 0 and a short window.
SMALL = LabelConfig(depth=3, deviation=0, backstep=2)


@pytest.fixture(scope="module")
def eurusd() -> dict[str, np.ndarray]:
    """Read high, low and close of the MetaTrader export (tab-separated, <HIGH> style headers)."""
    frame = pd.read_csv(DATA_FILE, sep="\t")
    return {name: frame[f"<{name.upper()}>"].to_numpy(dtype=np.float64) for name in ("high", "low", "close")}


@pytest.fixture(scope="module")
def eurusd_pivots(eurusd) -> list[Pivot]:
    return zigzag(eurusd["high"], eurusd["low"], EURUSD_POINT, LabelConfig())


def reference_zigzag(high, low, point, depth, deviation, backstep) -> list[tuple[int, float]]:
    """Transcribe ZigZag.mq5's full recalculation buffer by buffer, without shortcuts.

    Returns the nonzero entries of the ZigZag buffer as (bar, price) pairs.
    """
    high = [float(value) for value in high]
    low = [float(value) for value in low]
    size = len(high)
    zigzag_buffer = [0.0] * size
    high_map = [0.0] * size
    low_map = [0.0] * size

    def extreme(prices, start, better):
        # MQL Highest/Lowest: scan back from `start` over `depth` bars, keep the first strict winner.
        best = prices[start]
        for bar in range(start - 1, max(start - depth, -1), -1):
            if better(prices[bar], best):
                best = prices[bar]
        return best

    last_low = last_high = 0.0
    for shift in range(depth, size):
        value = extreme(low, shift, lambda a, b: a < b)
        if value == last_low:
            value = 0.0
        else:
            last_low = value
            if low[shift] - value > deviation * point:
                value = 0.0
            else:
                for back in range(1, backstep + 1):
                    if shift - back >= 0 and low_map[shift - back] != 0.0 and low_map[shift - back] > value:
                        low_map[shift - back] = 0.0
        low_map[shift] = value if low[shift] == value else 0.0

        value = extreme(high, shift, lambda a, b: a > b)
        if value == last_high:
            value = 0.0
        else:
            last_high = value
            if value - high[shift] > deviation * point:
                value = 0.0
            else:
                for back in range(1, backstep + 1):
                    if shift - back >= 0 and high_map[shift - back] != 0.0 and high_map[shift - back] < value:
                        high_map[shift - back] = 0.0
        high_map[shift] = value if high[shift] == value else 0.0

    search = 0  # 0: first extremum, 1: next peak, -1: next bottom
    last_low = last_high = 0.0
    last_low_bar = last_high_bar = 0
    for shift in range(depth, size):
        if search == 0:
            if high_map[shift] != 0.0:
                last_high, last_high_bar, search = high[shift], shift, -1
                zigzag_buffer[shift] = last_high
            if low_map[shift] != 0.0:
                last_low, last_low_bar, search = low[shift], shift, 1
                zigzag_buffer[shift] = last_low
        elif search == 1:
            if low_map[shift] != 0.0 and low_map[shift] < last_low and high_map[shift] == 0.0:
                zigzag_buffer[last_low_bar] = 0.0
                last_low, last_low_bar = low_map[shift], shift
                zigzag_buffer[shift] = last_low
            if high_map[shift] != 0.0 and low_map[shift] == 0.0:
                last_high, last_high_bar, search = high_map[shift], shift, -1
                zigzag_buffer[shift] = last_high
        else:
            if high_map[shift] != 0.0 and high_map[shift] > last_high and low_map[shift] == 0.0:
                zigzag_buffer[last_high_bar] = 0.0
                last_high, last_high_bar = high_map[shift], shift
                zigzag_buffer[shift] = last_high
            if low_map[shift] != 0.0 and high_map[shift] == 0.0:
                last_low, last_low_bar, search = low_map[shift], shift, 1
                zigzag_buffer[shift] = last_low
    return [(bar, price) for bar, price in enumerate(zigzag_buffer) if price != 0.0]


def random_bars(seed: int, size: int, tick: float) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk highs and lows on a coarse price grid, so that equal highs and lows occur."""
    rng = np.random.default_rng(seed)
    middle = 1.0 + np.cumsum(rng.integers(-3, 4, size)) * tick
    high = np.round(middle + rng.integers(0, 3, size) * tick, 10)
    low = np.round(middle - rng.integers(0, 3, size) * tick, 10)
    return high, low


def pivot_keys(pivots: list[Pivot]) -> list[tuple[int, float]]:
    return [(pivot.index, pivot.price) for pivot in pivots]


# Hand-made series with depth 3, backstep 2, deviation 0 and point 1. Traced step by step:
# - "swing": highs are set at bars 3 and 12 and lows at bars 7 and 14; every other entry is
#   skipped or cleared by a deeper extreme within two bars.
# - "hidden_high": the high of 15 at bar 5 is no 3-bar high because bar 3 has 20. So the peak is
#   bar 8 at 14 although bar 5 is higher. Bar 9 clears the low entry of bar 8.
# - "outside_first": bar 3 sets both maps before any pivot, and the low wins.
# - "equal_low": bar 6 repeats the window low of 5, which MQL skips (val == last_low).
# - "lower_low": the same series with 4.99 at bar 6 moves the trough there.
def bars_from_lows(lows: list[float]) -> tuple[list[float], list[float]]:
    """Return (high, low) columns with every high one unit above its low."""
    return [value + 1.0 for value in lows], list(lows)


HAND_CASES = {
    "swing": (
        *bars_from_lows([10, 11, 12, 13, 12, 11, 10, 9, 10, 11, 12, 13, 14, 13, 12]),
        [Pivot(3, 14.0, PEAK, 9), Pivot(7, 9.0, TROUGH, 14), Pivot(12, 15.0, PEAK, None), Pivot(14, 12.0, TROUGH, None)],
    ),
    "hidden_high": (
        [11, 11, 11, 20, 12, 15, 13, 12, 14, 11, 10],
        [10, 10, 10, 12, 5, 8, 9, 10, 9, 7, 6],
        [Pivot(3, 20.0, PEAK, 6), Pivot(4, 5.0, TROUGH, 10), Pivot(8, 14.0, PEAK, None), Pivot(10, 6.0, TROUGH, None)],
    ),
    "outside_first": (
        [11, 11, 11, 20, 19, 18, 17, 16],
        [10, 10, 10, 5, 6, 7, 8, 9],
        [Pivot(3, 5.0, TROUGH, None)],
    ),
    "equal_low": (
        *bars_from_lows([10, 10, 10, 5, 7, 8, 5, 9]),
        [Pivot(3, 5.0, TROUGH, None), Pivot(7, 10.0, PEAK, None)],
    ),
    "lower_low": (
        *bars_from_lows([10, 10, 10, 5, 7, 8, 4.99, 9]),
        [Pivot(6, 4.99, TROUGH, None), Pivot(7, 10.0, PEAK, None)],
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_zigzag_hand_series(name):
    high, low, expected = HAND_CASES[name]
    assert zigzag(high, low, 1.0, SMALL) == expected


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_reference_port_hand_series(name):
    high, low, expected = HAND_CASES[name]
    assert reference_zigzag(high, low, 1.0, 3, 0, 2) == pivot_keys(expected)


def test_zigzag_hidden_high_is_not_peak():
    # MetaTrader's ZigZag does not promise that a peak is the highest high between its troughs.
    high, low, _ = HAND_CASES["hidden_high"]
    pivots = zigzag(high, low, 1.0, SMALL)
    assert max(high[pivots[1].index : pivots[3].index + 1]) > pivots[2].price


@pytest.mark.parametrize("seed", range(12))
def test_zigzag_matches_reference_on_random_bars(seed):
    high, low = random_bars(seed, 600, tick=1e-5)
    depth, deviation, backstep = [(5, 0, 3), (8, 2, 8), (4, 1, 6)][seed % 3]
    config = LabelConfig(depth=depth, deviation=deviation, backstep=backstep)
    expected = reference_zigzag(high, low, 1e-5, depth, deviation, backstep)
    assert pivot_keys(zigzag(high, low, 1e-5, config)) == expected


def test_zigzag_matches_reference_on_eurusd(eurusd, eurusd_pivots):
    config = LabelConfig()
    expected = reference_zigzag(
        eurusd["high"], eurusd["low"], EURUSD_POINT, config.depth, config.deviation, config.backstep
    )
    assert pivot_keys(eurusd_pivots) == expected


def test_zigzag_eurusd_pivots_alternate(eurusd_pivots):
    kinds = [pivot.kind for pivot in eurusd_pivots]
    assert set(kinds) == {PEAK, TROUGH}
    assert all(first != second for first, second in zip(kinds, kinds[1:]))


def test_zigzag_eurusd_prices_are_bar_extremes(eurusd, eurusd_pivots):
    for pivot in eurusd_pivots:
        column = eurusd["high"] if pivot.kind == PEAK else eurusd["low"]
        assert pivot.price == column[pivot.index]


def test_zigzag_eurusd_pivot_is_depth_window_extreme(eurusd, eurusd_pivots):
    depth = LabelConfig().depth
    for pivot in eurusd_pivots:
        start = pivot.index - depth + 1
        if pivot.kind == PEAK:
            assert pivot.price == eurusd["high"][start : pivot.index + 1].max()
        else:
            assert pivot.price == eurusd["low"][start : pivot.index + 1].min()


def test_zigzag_eurusd_peaks_above_neighbour_troughs(eurusd_pivots):
    for first, second in zip(eurusd_pivots, eurusd_pivots[1:]):
        peak, trough = (first, second) if first.kind == PEAK else (second, first)
        assert peak.price > trough.price


def test_zigzag_eurusd_mostly_extreme_between_neighbours(eurusd, eurusd_pivots):
    # Usually a peak is the highest high between its neighbour troughs (and a trough the lowest
    # low), but backstep clearing and the depth-window rule allow exceptions (see hidden_high).
    extreme = 0
    inner = eurusd_pivots[1:-1]
    for before, pivot, after in zip(eurusd_pivots, inner, eurusd_pivots[2:]):
        span = slice(before.index, after.index + 1)
        if pivot.kind == PEAK:
            extreme += pivot.price == eurusd["high"][span].max()
        else:
            extreme += pivot.price == eurusd["low"][span].min()
    assert extreme >= 0.9 * len(inner)


def test_zigzag_eurusd_count_is_plausible(eurusd, eurusd_pivots):
    depth = LabelConfig().depth
    indices = np.array([pivot.index for pivot in eurusd_pivots])
    mean_leg = np.diff(indices).mean()
    assert len(eurusd_pivots) >= 10
    assert depth / 2 <= mean_leg <= 4 * depth


def test_zigzag_confirmation_after_pivot(eurusd_pivots):
    backstep = LabelConfig().backstep
    confirmed = [pivot for pivot in eurusd_pivots if pivot.confirmed_at is not None]
    assert len(confirmed) == len(eurusd_pivots) - 2
    # Pivot k+1 is appended after bar k and may move later, so the confirmation bar lies in
    # (index_k + backstep, index_k+1 + backstep].
    for pivot, following in zip(eurusd_pivots, eurusd_pivots[1:]):
        if pivot.confirmed_at is not None:
            assert pivot.confirmed_at > pivot.index + backstep
            assert pivot.confirmed_at <= following.index + backstep
    assert eurusd_pivots[-1].confirmed_at is None


def assert_no_look_ahead(high, low, point, config, full, cut):
    """Pivots confirmed by bar `cut` must come out identical from the bars up to `cut` alone."""
    truncated = zigzag(high[: cut + 1], low[: cut + 1], point, config)
    known = [pivot for pivot in full if pivot.confirmed_at is not None and pivot.confirmed_at <= cut]
    assert truncated[: len(known)] == known, f"cut={cut}"
    # And the truncated run confirms nothing that the full run does not.
    confirmed = [pivot for pivot in truncated if pivot.confirmed_at is not None]
    assert confirmed == known, f"cut={cut}"


def test_zigzag_no_look_ahead_eurusd(eurusd, eurusd_pivots):
    config = LabelConfig()
    size = len(eurusd["high"])
    cuts = set(range(0, size, 50))
    cuts |= {pivot.confirmed_at for pivot in eurusd_pivots if pivot.confirmed_at is not None}
    for cut in sorted(cuts):
        assert_no_look_ahead(eurusd["high"], eurusd["low"], EURUSD_POINT, config, eurusd_pivots, cut)


@pytest.mark.parametrize("seed", range(6))
def test_zigzag_no_look_ahead_random_bars(seed):
    high, low = random_bars(100 + seed, 300, tick=1e-5)
    config = [LabelConfig(depth=5, deviation=0, backstep=3), LabelConfig(depth=6, deviation=2, backstep=6)][seed % 2]
    full = zigzag(high, low, 1e-5, config)
    assert sum(pivot.confirmed_at is not None for pivot in full) >= 5
    for cut in range(len(high)):
        assert_no_look_ahead(high, low, 1e-5, config, full, cut)


def test_zigzag_pivot_changes_before_confirmation(eurusd, eurusd_pivots):
    # The lag is needed: between the shift that appends pivot k+1 and the confirmation bar of
    # pivot k, a truncated run can show pivot k at another bar.
    config = LabelConfig()

    def changes_before_confirmation(k: int, pivot: Pivot) -> bool:
        for cut in range(pivot.confirmed_at - config.backstep, pivot.confirmed_at):
            truncated = zigzag(eurusd["high"][: cut + 1], eurusd["low"][: cut + 1], EURUSD_POINT, config)
            if len(truncated) > k + 1 and truncated[k].index != pivot.index:
                return True
        return False

    confirmed = [(k, pivot) for k, pivot in enumerate(eurusd_pivots) if pivot.confirmed_at is not None]
    assert any(changes_before_confirmation(k, pivot) for k, pivot in confirmed)


def test_labels_no_look_ahead_eurusd(eurusd, eurusd_pivots):
    config = LabelConfig()
    close = eurusd["close"]
    for cut in range(100, len(close), 50):
        known = make_labels(close, eurusd_pivots, known_by=cut)
        truncated_pivots = zigzag(eurusd["high"][: cut + 1], eurusd["low"][: cut + 1], EURUSD_POINT, config)
        truncated = make_labels(close[: cut + 1], truncated_pivots)
        for name in ("direction", "distance", "pivot_index", "known_at"):
            np.testing.assert_array_equal(getattr(known, name)[: cut + 1], getattr(truncated, name), err_msg=f"{name} cut={cut}")
        assert (known.pivot_index[cut + 1 :] == -1).all(), f"cut={cut}"


def test_labels_known_after_their_bar(eurusd, eurusd_pivots):
    labels = make_labels(eurusd["close"], eurusd_pivots)
    labelled = np.flatnonzero(labels.pivot_index >= 0)
    assert labelled.size > len(eurusd["close"]) // 2
    assert (labels.known_at[labelled] > labelled).all()
    assert (labels.pivot_index[labelled] > labelled).all()


def test_zigzag_stream_emits_confirmed_pivots(eurusd, eurusd_pivots):
    stream = ZigZagStream(EURUSD_POINT, LabelConfig())
    emitted = []
    for bar, (high, low) in enumerate(zip(eurusd["high"], eurusd["low"])):
        for pivot in stream.update(high, low):
            assert pivot.confirmed_at == bar
            emitted.append(pivot)
    assert emitted == [pivot for pivot in eurusd_pivots if pivot.confirmed_at is not None]
    assert stream.bars_seen == len(eurusd["high"])


@pytest.mark.parametrize("seed", range(6))
def test_zigzag_stream_matches_batch_random_bars(seed):
    high, low = random_bars(200 + seed, 800, tick=1e-5)
    config = [LabelConfig(depth=5, deviation=0, backstep=3), LabelConfig(depth=4, deviation=1, backstep=7)][seed % 2]
    stream = ZigZagStream(1e-5, config)
    emitted = [pivot for high_value, low_value in zip(high, low) for pivot in stream.update(high_value, low_value)]
    expected = [pivot for pivot in zigzag(high, low, 1e-5, config) if pivot.confirmed_at is not None]
    assert emitted == expected


def test_zigzag_stream_rejects_bad_price():
    stream = ZigZagStream(EURUSD_POINT, LabelConfig())
    with pytest.raises(ValueError, match="high"):
        stream.update(float("nan"), 1.1)


def test_zigzag_rejects_non_positive_point():
    with pytest.raises(ValueError, match="point"):
        zigzag([1.2, 1.3], [1.1, 1.2], 0.0, LabelConfig())


def test_zigzag_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        zigzag([1.2, 1.3], [1.1], EURUSD_POINT, LabelConfig())


def test_zigzag_short_series_has_no_pivots():
    assert zigzag([1.2] * 10, [1.1] * 10, EURUSD_POINT, LabelConfig()) == []


def test_zigzag_speed_100k_bars():
    high, low = random_bars(7, 100_000, tick=1e-5)
    started = time.perf_counter()
    pivots = zigzag(high, low, 1e-5, LabelConfig())
    elapsed = time.perf_counter() - started
    assert len(pivots) > 100
    # About 0.2 s on a 2020s x86 core; the bound only catches an accidental O(N * depth) loop.
    assert elapsed < 10.0


HAND_CLOSE = np.array([1.0, 1.1, 1.2, 1.1, 1.0, 0.9, 1.0, 1.5, 1.9, 1.8])
HAND_PIVOTS = [Pivot(2, 1.5, PEAK, 4), Pivot(5, 0.5, TROUGH, 8), Pivot(8, 2.0, PEAK, None)]


def test_make_labels_hand_example():
    labels = make_labels(HAND_CLOSE, HAND_PIVOTS)
    nan = np.nan
    np.testing.assert_array_equal(labels.direction, np.array([1, 1, -1, -1, -1, nan, nan, nan, nan, nan], dtype=np.float32))
    expected_distance = [1.5 - 1.0, 1.5 - 1.1, 0.5 - 1.2, 0.5 - 1.1, 0.5 - 1.0] + [nan] * 5
    np.testing.assert_allclose(labels.distance, expected_distance, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(labels.pivot_index, [2, 2, 5, 5, 5, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(labels.known_at, [4, 4, 8, 8, 8, -1, -1, -1, -1, -1])


def test_make_labels_dtypes():
    labels = make_labels(HAND_CLOSE, HAND_PIVOTS)
    assert labels.direction.dtype == np.float32
    assert labels.distance.dtype == np.float64
    assert labels.pivot_index.dtype == np.int64
    assert labels.known_at.dtype == np.int64


def test_make_labels_known_by_filters():
    labels = make_labels(HAND_CLOSE, HAND_PIVOTS, known_by=6)
    np.testing.assert_array_equal(labels.pivot_index, [2, 2] + [-1] * 8)
    np.testing.assert_array_equal(labels.known_at, [4, 4] + [-1] * 8)
    assert np.isnan(labels.distance[2:]).all()


def test_make_labels_known_by_too_early():
    labels = make_labels(HAND_CLOSE, HAND_PIVOTS, known_by=3)
    assert (labels.pivot_index == -1).all()
    assert np.isnan(labels.direction).all()


def test_make_labels_no_pivots():
    labels = make_labels(HAND_CLOSE, [])
    assert (labels.known_at == -1).all()


def test_make_labels_rejects_unordered_pivots():
    with pytest.raises(ValueError, match="strictly increasing"):
        make_labels(HAND_CLOSE, [HAND_PIVOTS[1], HAND_PIVOTS[0]])
