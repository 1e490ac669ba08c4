"""Stream internals: the preallocated buffer and the bulk path give what the per-bar path gives."""

import numpy as np
import pytest

from sigbridge.bars import Bars
from sigbridge.config import FeatureConfig, bars_for_first_signal
from sigbridge.daemon.buffer import BarBuffer
from sigbridge.daemon.sessions import BarsRejected, Stream, StreamKey
from sigbridge.models.features import FeatureStream, compute_features

FEATURES = FeatureConfig()
KEY = StreamKey("test", "EURUSD", "H1")


def new_stream(max_bars=20_000):
    return Stream(KEY, point=1e-5, digits=5, utc_offset=0, features=FEATURES, max_bars=max_bars)


def per_bar_windows(stream, bars):
    windows, times = [], []
    for index in range(len(bars)):
        stream.append(bars[index : index + 1])
        window = stream.latest_window()
        if window is not None:
            windows.append(np.array(window))
            times.append(int(bars.time[index]))
    return np.array(windows), np.array(times)


def test_update_many_equals_update(eurusd):
    bars = eurusd.bars[:600]
    single, bulk = FeatureStream(FEATURES), FeatureStream(FEATURES)
    rows = np.array([single.update(h, l, c) for h, l, c in zip(bars.high, bars.low, bars.close)])
    np.testing.assert_array_equal(bulk.update_many(bars.high, bars.low, bars.close), rows)
    assert single.bars_seen == bulk.bars_seen == 600


def test_stream_features_match_batch_computation(eurusd):
    bars = eurusd.bars[:2500]
    stream = new_stream()
    for start in range(0, len(bars), 97):
        stream.append(bars[start : start + 97])
    expected = compute_features(bars.high, bars.low, bars.close, FEATURES)
    np.testing.assert_allclose(stream.features, expected, rtol=1e-9, atol=1e-12)


def test_append_windows_equals_per_bar_path(eurusd):
    bars = eurusd.bars
    expected_windows, expected_times = per_bar_windows(new_stream(max_bars=700), bars)
    stream = new_stream(max_bars=700)
    stream.append(bars[:100])
    first_windows, first_times = stream.append_windows(bars[100:1500])
    rest_windows, rest_times = stream.append_windows(bars[1500:])
    np.testing.assert_array_equal(np.concatenate([first_windows, rest_windows]), expected_windows)
    np.testing.assert_array_equal(np.concatenate([first_times, rest_times]), expected_times)
    assert len(expected_times) == len(bars) - bars_for_first_signal(FEATURES) + 1


def test_append_windows_skips_duplicates(eurusd):
    bars = eurusd.bars[:400]
    stream = new_stream()
    stream.append(bars[:300])
    windows, times = stream.append_windows(bars[290:400])
    assert times.tolist() == bars.time[300:400].tolist()
    np.testing.assert_array_equal(windows[-1], stream.latest_window())


def test_append_windows_empty_during_warm_up(eurusd):
    windows, times = new_stream().append_windows(eurusd.bars[:50])
    assert windows.shape == (0, FEATURES.window, 4)
    assert times.shape == (0,)


def test_buffer_capped_across_reallocations(eurusd):
    bars = eurusd.bars
    stream = new_stream(max_bars=500)
    for index in range(len(bars)):
        stream.append(bars[index : index + 1])
    assert len(stream.bars) == 500
    assert stream.bars_seen == len(bars)
    np.testing.assert_array_equal(stream.bars.time, bars.time[-500:])
    np.testing.assert_array_equal(stream.bars.close, bars.close[-500:])
    expected = compute_features(bars.high, bars.low, bars.close, FEATURES)[-500:]
    np.testing.assert_allclose(stream.features, expected, rtol=1e-9, atol=1e-12)


def test_snapshot_survives_later_appends(eurusd):
    """The trainer keeps `stream.bars` while the stream moves on and reallocates."""
    bars = eurusd.bars
    stream = new_stream(max_bars=300)
    stream.append(bars[:250])
    snapshot = stream.bars
    window = stream.latest_window()
    saved_close, saved_window = snapshot.close.copy(), np.array(window)
    for index in range(250, 1200):
        stream.append(bars[index : index + 1])
    np.testing.assert_array_equal(snapshot.close, saved_close)
    np.testing.assert_array_equal(snapshot.time, bars.time[:250])
    np.testing.assert_array_equal(window, saved_window)


def test_held_arrays_are_read_only(eurusd):
    stream = new_stream()
    stream.append(eurusd.bars[:300])
    with pytest.raises(ValueError, match="read-only"):
        stream.bars.close[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        stream.features[-1, 0] = 0.0


def test_lowering_max_bars_drops_oldest(eurusd):
    bars = eurusd.bars[:800]
    stream = new_stream(max_bars=1000)
    stream.append(bars)
    stream.max_bars = 300
    assert len(stream.bars) == 300
    np.testing.assert_array_equal(stream.bars.time, bars.time[-300:])
    stream.append(eurusd.bars[800:900])
    assert len(stream.bars) == 300
    assert stream.last_time == int(eurusd.bars.time[899])


def test_rejected_append_changes_nothing(eurusd):
    bars = eurusd.bars[:300]
    stream = new_stream()
    stream.append(bars[:200])
    before_features = np.array(stream.features)
    resent = bars[190:210]
    changed = resent.close.copy()
    changed[0] += 0.001
    conflicting = Bars.from_columns(
        resent.time, resent.open, np.maximum(resent.high, changed), resent.low, changed, resent.tick_volume, resent.spread
    )
    with pytest.raises(BarsRejected):
        stream.append_windows(conflicting)
    assert stream.bars_seen == 200
    np.testing.assert_array_equal(stream.features, before_features)


def test_buffer_rejects_rows_of_other_length(eurusd):
    buffer = BarBuffer(100, 4)
    with pytest.raises(ValueError, match="one row per bar"):
        buffer.append(eurusd.bars[:3], np.zeros((2, 4)))


def test_buffer_keeps_last_bars_of_oversized_append(eurusd):
    buffer = BarBuffer(100, 4)
    bars = eurusd.bars[:350]
    buffer.append(bars, np.arange(350 * 4, dtype=np.float64).reshape(350, 4))
    assert len(buffer) == 100
    np.testing.assert_array_equal(buffer.time, bars.time[-100:])
    assert buffer.features()[0, 0] == 250 * 4


def test_buffer_rejects_bad_max_bars():
    with pytest.raises(ValueError, match="`max_bars` must be a positive int"):
        BarBuffer(0, 4)


def test_stream_bars_is_a_bars_object(eurusd):
    stream = new_stream()
    assert isinstance(stream.bars, Bars)
    assert len(stream.bars) == 0
    assert stream.last_time is None
    assert stream.latest_window() is None
