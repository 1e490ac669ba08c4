"""Tests for sigbridge.models.features: indicator values, warm-up, streaming, scaling, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigbridge.config import FeatureConfig, warmup_bars
from sigbridge.models.features import (
    FEATURE_NAMES,
    FeatureScaling,
    FeatureStream,
    compute_features,
    make_windows,
    window_end_indices,
)

DATA_FILE = Path(__file__).resolve().parents[1] / "examples" / "data" / "EURUSD_H1.csv"
# Short periods so that a 60-bar series has valid rows: warm-up = 3 * 4 + 3 = 15 bars.
SMALL = FeatureConfig(rsi_period=3, macd_fast=2, macd_slow=4, macd_signal=3, window=5)


@pytest.fixture(scope="module")
def eurusd() -> dict[str, np.ndarray]:
    """Read high, low and close of the MetaTrader export (tab-separated, <HIGH> style headers)."""
    frame = pd.read_csv(DATA_FILE, sep="\t")
    return {name: frame[f"<{name.upper()}>"].to_numpy(dtype=np.float64) for name in ("high", "low", "close")}


@pytest.fixture(scope="module")
def eurusd_features(eurusd) -> np.ndarray:
    return compute_features(eurusd["high"], eurusd["low"], eurusd["close"], FeatureConfig())


def random_bars(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0.0, 1e-3, size))
    high = close + rng.uniform(0.0, 1e-3, size)
    low = close - rng.uniform(0.0, 1e-3, size)
    return high, low, close


def loop_features(high, low, close, config: FeatureConfig) -> list[list[float]]:
    """Compute the four features with plain loops over Python floats, bar by bar."""
    price = [(h + l + c) / 3.0 for h, l, c in zip(high, low, close)]
    period = config.rsi_period
    rsi = [float("nan")] * len(price)
    average_gain = average_loss = 0.0
    for i in range(1, len(price)):
        change = price[i] - price[i - 1]
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if i <= period:
            average_gain += gain / period
            average_loss += loss / period
            if i < period:
                continue
        else:
            average_gain = (average_gain * (period - 1) + gain) / period
            average_loss = (average_loss * (period - 1) + loss) / period
        if average_loss == 0.0:
            rsi[i] = 100.0 if average_gain > 0.0 else 50.0
        else:
            rsi[i] = 100.0 - 100.0 / (1.0 + average_gain / average_loss)

    def ema(length: int) -> list[float]:
        factor = 2.0 / (length + 1)
        values = [price[0]]
        for value in price[1:]:
            values.append(factor * value + (1.0 - factor) * values[-1])
        return values

    main = [fast - slow for fast, slow in zip(ema(config.macd_fast), ema(config.macd_slow))]
    rows = []
    for i in range(len(price)):
        if i < warmup_bars(config):
            rows.append([float("nan")] * 4)
            continue
        signal = sum(main[i - config.macd_signal + 1 : i + 1]) / config.macd_signal
        rows.append([(rsi[i] - 50.0) / 50.0, main[i], signal, main[i] - signal])
    return rows


def test_feature_names_order():
    assert FEATURE_NAMES == ("rsi", "macd_main", "macd_signal", "macd_histogram")


def test_compute_features_matches_loop():
    high, low, close = random_bars(1, 60)
    expected = np.array(loop_features(high, low, close, SMALL))
    actual = compute_features(high, low, close, SMALL)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-15)


def test_compute_features_loop_default_config(eurusd, eurusd_features):
    bars = slice(0, 600)
    expected = np.array(
        loop_features(eurusd["high"][bars], eurusd["low"][bars], eurusd["close"][bars], FeatureConfig())
    )
    np.testing.assert_allclose(eurusd_features[bars], expected, rtol=1e-9, atol=1e-15)


def test_compute_features_rising_prices():
    price = np.linspace(1.0, 2.0, 40)
    features = compute_features(price, price, price, SMALL)
    valid = features[warmup_bars(SMALL) :]
    # No losses: RSI is 100, scaled to +1.
    np.testing.assert_array_equal(valid[:, 0], 1.0)
    assert (valid[:, 1] > 0.0).all()


def test_compute_features_constant_prices():
    price = np.full(40, 1.25)
    features = compute_features(price, price, price, SMALL)
    valid = features[warmup_bars(SMALL) :]
    # No gains and no losses give RSI 50, scaled to 0. Both averages equal the price, so MACD is 0.
    np.testing.assert_array_equal(valid, 0.0)


def test_compute_features_uses_typical_price():
    high, low, close = random_bars(2, 50)
    typical = (high + low + close) / 3.0
    np.testing.assert_array_equal(
        compute_features(high, low, close, SMALL), compute_features(typical, typical, typical, SMALL)
    )


def test_compute_features_warmup_nan(eurusd_features):
    warmup = warmup_bars(FeatureConfig())
    assert warmup == 156
    assert np.isnan(eurusd_features[:warmup]).all()
    assert np.isfinite(eurusd_features[warmup:]).all()


def test_compute_features_shape_and_dtype(eurusd, eurusd_features):
    assert eurusd_features.shape == (len(eurusd["close"]), 4)
    assert eurusd_features.dtype == np.float64


def test_compute_features_short_series_all_nan():
    high, low, close = random_bars(3, 10)
    features = compute_features(high, low, close, SMALL)
    assert features.shape == (10, 4)
    assert np.isnan(features).all()


def test_compute_features_empty_series():
    assert compute_features([], [], [], SMALL).shape == (0, 4)


def test_compute_features_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        compute_features([1.0, 2.0], [1.0], [1.0, 2.0], SMALL)


def test_compute_features_rejects_nan_price():
    with pytest.raises(ValueError, match=r"close\[1\]"):
        compute_features([1.0, 2.0], [1.0, 2.0], [1.0, np.nan], SMALL)


def test_compute_features_rejects_bad_period():
    with pytest.raises(ValueError, match="rsi_period"):
        compute_features([1.0], [1.0], [1.0], FeatureConfig(rsi_period=0))


def test_stream_matches_batch_every_row(eurusd, eurusd_features):
    stream = FeatureStream(FeatureConfig())
    rows = np.array([stream.update(h, l, c) for h, l, c in zip(eurusd["high"], eurusd["low"], eurusd["close"])])
    np.testing.assert_array_equal(np.isnan(rows), np.isnan(eurusd_features))
    np.testing.assert_allclose(rows, eurusd_features, rtol=1e-9, atol=0.0)
    assert stream.bars_seen == len(eurusd["close"])


def test_stream_matches_batch_after_backfill(eurusd, eurusd_features):
    split = int(np.random.default_rng(20240611).integers(1, len(eurusd["close"]) - 1))
    stream = FeatureStream(FeatureConfig())
    backfill = stream.update_many(eurusd["high"][:split], eurusd["low"][:split], eurusd["close"][:split])
    live = [
        stream.update(h, l, c)
        for h, l, c in zip(eurusd["high"][split:], eurusd["low"][split:], eurusd["close"][split:])
    ]
    rows = np.vstack([backfill, np.array(live)])
    np.testing.assert_array_equal(np.isnan(rows), np.isnan(eurusd_features))
    np.testing.assert_allclose(rows, eurusd_features, rtol=1e-9, atol=0.0)


def test_stream_warmup_nan():
    high, low, close = random_bars(4, 20)
    stream = FeatureStream(SMALL)
    rows = stream.update_many(high, low, close)
    warmup = warmup_bars(SMALL)
    assert np.isnan(rows[:warmup]).all()
    assert np.isfinite(rows[warmup:]).all()


def test_stream_rejects_nan_price_unchanged():
    stream = FeatureStream(SMALL)
    stream.update(1.2, 1.1, 1.15)
    with pytest.raises(ValueError, match="low"):
        stream.update(1.2, float("nan"), 1.15)
    assert stream.bars_seen == 1


def test_scaling_fit_ignores_rows_after_slice(eurusd_features):
    end = 1500
    changed = eurusd_features.copy()
    changed[end:] *= 1000.0
    assert FeatureScaling.fit(eurusd_features[:end]) == FeatureScaling.fit(changed[:end])


def test_scaling_fit_ignores_nan_rows(eurusd_features):
    valid = eurusd_features[~np.isnan(eurusd_features).any(axis=1)]
    assert FeatureScaling.fit(eurusd_features) == FeatureScaling.fit(valid)


def test_scaling_keeps_rsi_column(eurusd_features):
    scaling = FeatureScaling.fit(eurusd_features)
    assert scaling.mean[0] == 0.0
    assert scaling.std[0] == 1.0


def test_scaling_standardises_macd_columns(eurusd_features):
    train = eurusd_features[:2000]
    scaled = FeatureScaling.fit(train).apply(train)
    valid = scaled[~np.isnan(scaled).any(axis=1)].astype(np.float64)
    np.testing.assert_allclose(valid[:, 1:].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(valid[:, 1:].std(axis=0), 1.0, atol=1e-5)


def test_scaling_constant_column_keeps_std_one():
    features = np.ones((10, 4))
    scaling = FeatureScaling.fit(features)
    assert scaling.std == (1.0, 1.0, 1.0, 1.0)


def test_scaling_apply_leading_shape(eurusd_features):
    scaling = FeatureScaling.fit(eurusd_features)
    batch = eurusd_features[200:260].reshape(3, 20, 4)
    scaled = scaling.apply(batch)
    assert scaled.dtype == np.float32
    assert scaled.shape == (3, 20, 4)
    np.testing.assert_allclose(scaled[1, 5], scaling.apply(eurusd_features[225]), rtol=0, atol=0)


def test_scaling_dict_round_trip(eurusd_features):
    scaling = FeatureScaling.fit(eurusd_features)
    assert FeatureScaling.from_dict(scaling.to_dict()) == scaling


def test_scaling_from_dict_rejects_other_features():
    data = {"feature_names": ["rsi", "atr", "macd_signal", "macd_histogram"], "mean": [0.0] * 4, "std": [1.0] * 4}
    with pytest.raises(ValueError, match="retrain"):
        FeatureScaling.from_dict(data)


def test_scaling_fit_rejects_all_nan():
    with pytest.raises(ValueError, match="no complete row"):
        FeatureScaling.fit(np.full((5, 4), np.nan))


def test_window_end_indices_start(eurusd_features):
    config = FeatureConfig()
    ends = window_end_indices(len(eurusd_features), config)
    assert ends[0] == warmup_bars(config) + config.window - 1
    assert ends[-1] == len(eurusd_features) - 1
    assert ends.dtype == np.int64


def test_window_end_indices_too_few_rows():
    assert window_end_indices(100, FeatureConfig()).size == 0


def test_windows_are_complete(eurusd_features):
    config = FeatureConfig()
    ends = window_end_indices(len(eurusd_features), config)
    windows = make_windows(eurusd_features, ends, config.window)
    assert not np.isnan(windows).any()
    earlier = make_windows(eurusd_features, ends[:1] - 1, config.window)
    assert np.isnan(earlier).any()


def test_make_windows_shape_and_content(eurusd_features):
    window = 40
    ends = np.array([195, 196, 1000, len(eurusd_features) - 1])
    windows = make_windows(eurusd_features, ends, window)
    assert windows.shape == (4, window, 4)
    for row, end in enumerate(ends):
        np.testing.assert_array_equal(windows[row], eurusd_features[end - window + 1 : end + 1])


def test_make_windows_keeps_dtype(eurusd_features):
    scaled = FeatureScaling.fit(eurusd_features).apply(eurusd_features)
    windows = make_windows(scaled, np.array([300]), 40)
    assert windows.dtype == np.float32


def test_make_windows_rejects_short_history(eurusd_features):
    with pytest.raises(ValueError, match="end_indices"):
        make_windows(eurusd_features, np.array([10]), 40)
