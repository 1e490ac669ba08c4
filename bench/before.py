"""The per-bar stream path as it was before the buffer rework, kept to measure what changed.

`Stream.append` used to concatenate the new bar onto every held column and the feature array,
then slice off the oldest bars beyond `max_bars`: each bar copied the whole buffer (20,000 bars
by default, about 1.9 MB). Replay called that once per bar of the file.
"""

from __future__ import annotations

import numpy as np

from sigbridge.bars import Bars, validate_bars
from sigbridge.config import FeatureConfig
from sigbridge.models.features import FEATURE_COUNT, FeatureStream


class ConcatenatingBuffer:
    """Bars and feature rows kept by concatenation, as `Stream` did before."""

    def __init__(self, max_bars: int) -> None:
        self.max_bars = max_bars
        self.bars = Bars.empty()
        self.features = np.zeros((0, FEATURE_COUNT), dtype=np.float64)

    def append(self, bars: Bars, rows: np.ndarray) -> None:
        self.bars = self.bars.concat(bars)
        self.features = np.concatenate([self.features, rows])
        if len(self.bars) > self.max_bars:
            self.bars = self.bars[-self.max_bars :]
            self.features = self.features[-self.max_bars :]

    def latest_window(self, window: int) -> np.ndarray | None:
        if len(self.features) < window:
            return None
        rows = self.features[-window:]
        return rows if np.isfinite(rows).all() else None


def per_bar_windows(bars: Bars, features: FeatureConfig, max_bars: int, backfill: int) -> list[np.ndarray]:
    """Replay's stream stage as it ran before: validate, update features, concatenate, per bar.

    The per-bar feature rows come from `FeatureStream.update`, one array per bar, as the old
    `update_many` built them. Windows are copied here: the old loop kept views, and each view
    held that bar's whole feature array alive (about 0.6 MB per bar at 20,000 bars).
    """
    buffer = ConcatenatingBuffer(max_bars)
    stream = FeatureStream(features)
    history = bars[:backfill]
    buffer.append(history, stream.update_many(history.high, history.low, history.close))
    windows = []
    for index in range(backfill, len(bars)):
        bar = bars[index : index + 1]
        validate_bars(bar)
        row = stream.update(float(bar.high[0]), float(bar.low[0]), float(bar.close[0]))
        buffer.append(bar, row[np.newaxis])
        window = buffer.latest_window(features.window)
        if window is not None:
            windows.append(window.copy())
    return windows
