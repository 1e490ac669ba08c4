"""Per-bar model features (RSI and MACD on the typical price), batch and streaming, and scaling.

The indicators follow MetaQuotes' MetaTrader 5 examples `RSI.mq5` and `MACD.mq5` with
`MovingAverages.mqh`: Wilder smoothing for RSI, exponential averages seeded with the first price for
the MACD main line, and a simple moving average of the main line for the signal line. Both paths
compute from the first bar of the series, so a stream started at a given bar matches the batch
computation over the same bars. Rows before `warmup_bars(config)` are NaN.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pandas as pd

from sigbridge.config import FeatureConfig, warmup_bars

FEATURE_NAMES = ("rsi", "macd_main", "macd_signal", "macd_histogram")
FEATURE_COUNT = len(FEATURE_NAMES)
_NAN_ROW = (math.nan,) * FEATURE_COUNT


def _check_config(config: FeatureConfig) -> None:
    for name in ("rsi_period", "macd_fast", "macd_slow", "macd_signal", "window"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`features.{name}` must be a positive integer, received {name}={value!r}")


def _as_prices(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of prices, received shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"`{name}` must hold finite prices, received {name}[{row}]={array[row]!r}")
    return array


def _rsi_from_averages(average_gain: np.ndarray, average_loss: np.ndarray) -> np.ndarray:
    """Apply RSI.mq5's formula: 100 when the average loss is 0, 50 when both averages are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_rsi = 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    flat = np.where(average_gain != 0.0, 100.0, 50.0)
    return np.where(average_loss != 0.0, ratio_rsi, flat)


def _rsi_value(average_gain: float, average_loss: float) -> float:
    """Scalar form of `_rsi_from_averages`, for the stream."""
    if average_loss != 0.0:
        return 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    return 100.0 if average_gain != 0.0 else 50.0


def _wilder_average(values: np.ndarray, period: int) -> np.ndarray:
    """Smooth price changes as RSI.mq5 does, where `values[i]` is the change into bar i+1.

    Returns an array aligned with bars: NaN before bar `period`, then the simple mean of the first
    `period` changes at bar `period`, then avg = (avg*(period-1) + change) / period.
    """
    result = np.full(len(values) + 1, np.nan)
    if len(values) < period:
        return result
    seeded = values[period - 1 :].copy()
    seeded[0] = values[:period].mean()
    result[period:] = pd.Series(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    return result


def _exponential_average(price: np.ndarray, period: int) -> np.ndarray:
    # k = 2/(period+1), seeded with the first price as ExponentialMAOnBuffer does.
    return pd.Series(price).ewm(span=period, adjust=False).mean().to_numpy()


def _simple_average(values: np.ndarray, period: int) -> np.ndarray:
    result = np.full(len(values), np.nan)
    if len(values) >= period:
        result[period - 1 :] = np.lib.stride_tricks.sliding_window_view(values, period).mean(axis=1)
    return result


def compute_features(high, low, close, config: FeatureConfig) -> np.ndarray:
    """Compute the features of every bar at once.

    Args:
        high: bar highs, shape (N,), oldest first.
        low: bar lows, shape (N,).
        close: bar closes, shape (N,).
        config: indicator periods.

    Returns:
        float64 array (N, F) with F = 4 columns in `FEATURE_NAMES` order: RSI scaled to
        (RSI-50)/50, MACD main, MACD signal, and main minus signal. Rows with index below
        `warmup_bars(config)` are NaN.

    Raises:
        ValueError: for columns of different lengths, non-finite prices or an invalid config.
    """
    _check_config(config)
    high = _as_prices("high", high)
    low = _as_prices("low", low)
    close = _as_prices("close", close)
    if not len(high) == len(low) == len(close):
        raise ValueError(
            f"`high`, `low` and `close` must have the same length, received {len(high)}, {len(low)} "
            f"and {len(close)}"
        )
    features = np.full((len(close), FEATURE_COUNT), np.nan)
    if len(close) == 0:
        return features

    price = (high + low + close) / 3.0
    change = np.diff(price)
    average_gain = _wilder_average(np.maximum(change, 0.0), config.rsi_period)
    average_loss = _wilder_average(np.maximum(-change, 0.0), config.rsi_period)
    # NaN before bar `rsi_period`, where the averages are still NaN.
    rsi = _rsi_from_averages(average_gain, average_loss)

    main = _exponential_average(price, config.macd_fast) - _exponential_average(price, config.macd_slow)
    signal = _simple_average(main, config.macd_signal)

    features[:, 0] = (rsi - 50.0) / 50.0
    features[:, 1] = main
    features[:, 2] = signal
    features[:, 3] = main - signal
    features[: warmup_bars(config)] = np.nan
    return features


class FeatureStream:
    """Features computed bar by bar, matching `compute_features`.

    Work per bar is constant: recursive averages plus a sum over the last `macd_signal` main values.

    The row for bar t equals row t of `compute_features` over the same bars to within float
    rounding (the tests check 1e-9 relative).

    Attributes:
        bars_seen: number of bars passed to `update`.
    """

    def __init__(self, config: FeatureConfig) -> None:
        _check_config(config)
        self._config = config
        self._warmup = warmup_bars(config)
        self._fast_factor = 2.0 / (config.macd_fast + 1.0)
        self._slow_factor = 2.0 / (config.macd_slow + 1.0)
        self.bars_seen = 0

        self._previous_price = math.nan
        # Sums of the first `rsi_period` gains and losses, then their smoothed averages.
        self._gain = 0.0
        self._loss = 0.0
        self._fast = math.nan
        self._slow = math.nan
        self._main_values: collections.deque[float] = collections.deque(maxlen=config.macd_signal)

    def update(self, high: float, low: float, close: float) -> np.ndarray:
        """Add one closed bar and return its feature row, shape (F,), which is NaN during warm-up.

        Raises:
            ValueError: for a non-finite price, leaving the stream unchanged.
        """
        for name, value in (("high", high), ("low", low), ("close", close)):
            if not math.isfinite(value):
                raise ValueError(f"`{name}` must be a finite price, received {name}={value!r}")
        return np.array(self._step(float(high), float(low), float(close)))

    def _step(self, high: float, low: float, close: float) -> tuple[float, float, float, float]:
        """Add one bar of checked prices; `update` and `update_many` share it, so their rows are equal."""
        bar = self.bars_seen
        self.bars_seen += 1
        price = (high + low + close) / 3.0
        rsi = self._update_rsi(bar, price)
        self._previous_price = price

        if bar == 0:
            self._fast = price
            self._slow = price
        else:
            self._fast = price * self._fast_factor + self._fast * (1.0 - self._fast_factor)
            self._slow = price * self._slow_factor + self._slow * (1.0 - self._slow_factor)
        main = self._fast - self._slow
        self._main_values.append(main)

        if bar < self._warmup:
            return _NAN_ROW
        signal = sum(self._main_values) / self._config.macd_signal
        return ((rsi - 50.0) / 50.0, main, signal, main - signal)

    def _update_rsi(self, bar: int, price: float) -> float:
        period = self._config.rsi_period
        if bar == 0:
            return math.nan
        change = price - self._previous_price
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        if bar < period:
            self._gain += gain
            self._loss += loss
            return math.nan
        if bar == period:
            self._gain = (self._gain + gain) / period
            self._loss = (self._loss + loss) / period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        return _rsi_value(self._gain, self._loss)

    def update_many(self, high, low, close) -> np.ndarray:
        """Add bars oldest first, e.g. a backfill, and return their rows, shape (n, F)."""
        high = _as_prices("high", high)
        low = _as_prices("low", low)
        close = _as_prices("close", close)
        if not len(high) == len(low) == len(close):
            raise ValueError(
                f"`high`, `low` and `close` must have the same length, received {len(high)}, "
                f"{len(low)} and {len(close)}"
            )
        # One list of tuples and one array at the end: about 2 us per bar, where a row array
        # per bar costs several times that.
        step = self._step
        rows = [
            step(bar_high, bar_low, bar_close)
            for bar_high, bar_low, bar_close in zip(high.tolist(), low.tolist(), close.tolist())
        ]
        return np.array(rows, dtype=np.float64).reshape(len(rows), FEATURE_COUNT)


@dataclasses.dataclass(frozen=True)
class FeatureScaling:
    """Per-column shift and scale, fitted on the training span only.

    The RSI column is already scaled to [-1, 1], so it keeps mean 0 and std 1. Each MACD column is
    z-scored with its own mean and population standard deviation.
    """

    mean: tuple[float, float, float, float]
    std: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != FEATURE_COUNT or not all(math.isfinite(value) for value in values):
                raise ValueError(f"`{name}` must hold {FEATURE_COUNT} finite numbers, received {values!r}")
        if any(value <= 0.0 for value in self.std):
            raise ValueError(f"`std` values must be > 0, received {self.std!r}")

    @classmethod
    def fit(cls, features: np.ndarray) -> FeatureScaling:
        """Fit the scaling on the rows (N, F) that contain no NaN, ignoring the others.

        Raises:
            ValueError: for a wrong shape or when no row is complete.
        """
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != FEATURE_COUNT:
            raise ValueError(f"`features` must have shape (N, {FEATURE_COUNT}), received {features.shape}")
        complete = features[~np.isnan(features).any(axis=1)]
        if len(complete) == 0:
            raise ValueError(
                f"`features` has no complete row among {len(features)} rows; fit on bars after the warm-up"
            )
        mean = complete.mean(axis=0)
        std = complete.std(axis=0)
        mean[0] = 0.0
        std[0] = 1.0
        # A constant column would divide by zero; leave it unscaled.
        std[std == 0.0] = 1.0
        return cls(mean=tuple(float(value) for value in mean), std=tuple(float(value) for value in std))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Scale features of any leading shape (..., F) to float32, keeping NaN as NaN."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim == 0 or features.shape[-1] != FEATURE_COUNT:
            raise ValueError(f"`features` must have shape (..., {FEATURE_COUNT}), received {features.shape}")
        scaled = (features - np.array(self.mean)) / np.array(self.std)
        return scaled.astype(np.float32)

    def to_dict(self) -> dict:
        return {"feature_names": list(FEATURE_NAMES), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureScaling:
        """Rebuild a scaling from `to_dict` output.

        Raises:
            ValueError: when keys are missing or the feature names differ from `FEATURE_NAMES`.
        """
        missing = [key for key in ("mean", "std") if key not in data]
        if missing:
            raise ValueError(f"feature scaling is missing keys {missing}, received keys {sorted(data)}")
        names = tuple(data.get("feature_names", FEATURE_NAMES))
        if names != FEATURE_NAMES:
            raise ValueError(
                f"feature scaling was fitted on features {list(names)}, expected {list(FEATURE_NAMES)}; "
                "retrain the model with the current feature set"
            )
        return cls(
            mean=tuple(float(value) for value in data["mean"]),
            std=tuple(float(value) for value in data["std"]),
        )


def window_end_indices(n_rows: int, config: FeatureConfig) -> np.ndarray:
    """Return the bar indices t, int64, whose window [t-window+1, t] holds only valid rows."""
    first = warmup_bars(config) + config.window - 1
    return np.arange(first, max(first, n_rows), dtype=np.int64)


def make_windows(features: np.ndarray, end_indices: np.ndarray, window: int) -> np.ndarray:
    """Gather the windows of `window` bars ending at each index.

    Args:
        features: rows (N, F).
        end_indices: bar indices, shape (B,), each in [window-1, N-1].
        window: bars per window.

    Returns:
        Array (B, window, F), a copy with the dtype of `features`.

    Raises:
        ValueError: for an index whose window does not fit in the rows.
    """
    features = np.asarray(features)
    end_indices = np.asarray(end_indices, dtype=np.int64)
    if features.ndim != 2:
        raise ValueError(f"`features` must have shape (N, F), received {features.shape}")
    if window < 1:
        raise ValueError(f"`window` must be a positive int, received window={window!r}")
    if end_indices.ndim != 1:
        raise ValueError(f"`end_indices` must be 1-D, received shape {end_indices.shape}")
    outside = (end_indices < window - 1) | (end_indices >= len(features))
    if outside.any():
        bad = int(end_indices[np.flatnonzero(outside)[0]])
        raise ValueError(
            f"`end_indices` must lie in [{window - 1}, {len(features) - 1}] for window={window} and "
            f"{len(features)} rows, received {bad}"
        )
    if len(features) < window:
        return np.empty((0, window, features.shape[1]), dtype=features.dtype)
    # Views have shape (N-window+1, F, window), and view i covers rows i..i+window-1.
    views = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)
    return np.ascontiguousarray(views[end_indices - window + 1].transpose(0, 2, 1))
