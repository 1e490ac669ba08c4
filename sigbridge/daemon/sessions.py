"""Per-stream state: the bar buffer, incremental features and the signal computed from them.

A stream is one client's feed of one symbol and timeframe. The daemon and replay both push bars
through `Stream.append` and compute signals with `signal_from_output`, so both produce the same
signal for the same bars and model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sigbridge.bars import COLUMNS, Bars, BarValidationError, validate_bars
from sigbridge.config import FeatureConfig, SignalConfig, bars_for_first_signal
from sigbridge.models.bundle import ModelBundle
from sigbridge.daemon.buffer import BarBuffer
from sigbridge.models.features import FEATURE_COUNT, FeatureStream


@dataclasses.dataclass(frozen=True)
class StreamKey:
    client: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.client}/{self.symbol}/{self.timeframe}"


@dataclasses.dataclass(frozen=True)
class Signal:
    """A model's reading of one closed bar."""

    bar_time: int
    direction: int  # +1 buy, -1 sell, 0 flat (|score| below the threshold)
    score: float  # model output in (-1, 1); its sign is the direction of the next ZigZag pivot
    distance: float  # expected price distance from the bar's close to that pivot, in price units
    model_version: int


class BarsRejected(ValueError):
    """Raised when appended bars conflict with the bars a stream already holds.

    Attributes:
        row: index of the offending bar in the message.
        column: the offending column.
        out_of_order: True for a time conflict, False for an invalid bar.
    """

    def __init__(self, message: str, *, row: int, column: str, out_of_order: bool) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.out_of_order = out_of_order


@dataclasses.dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int


class Stream:
    """Bars and features of one stream, capped at `max_bars` in memory.

    Features are computed incrementally from the first bar ever received, so dropping old bars
    from the buffer does not change them.
    """

    def __init__(
        self,
        key: StreamKey,
        *,
        point: float,
        digits: int,
        utc_offset: int,
        features: FeatureConfig,
        max_bars: int,
    ) -> None:
        self.key = key
        self.point = point
        self.digits = digits
        self.utc_offset = utc_offset
        self.feature_config = features
        self.bars_seen = 0
        # Time of the first bar ever accepted; bars before it were never received.
        self.first_time: int | None = None
        self._last_time: int | None = None
        self._buffer = BarBuffer(max_bars, FEATURE_COUNT)
        self._feature_stream = FeatureStream(features)

    @property
    def max_bars(self) -> int:
        """Bars kept in memory; setting a lower value drops the oldest bars at once."""
        return self._buffer.max_bars

    @max_bars.setter
    def max_bars(self, max_bars: int) -> None:
        self._buffer.max_bars = max_bars

    @property
    def bars(self) -> Bars:
        """The bars held, oldest first, as read-only arrays that later appends leave unchanged."""
        return self._buffer.bars()

    @property
    def features(self) -> np.ndarray:
        """Raw feature rows (N, F) of the bars held, read-only; NaN during warm-up."""
        return self._buffer.features()

    @property
    def last_time(self) -> int | None:
        return self._last_time

    def bars_needed(self) -> int:
        """Bars still missing before the first full input window."""
        return max(0, bars_for_first_signal(self.feature_config) - self.bars_seen)

    def append(self, bars: Bars) -> AppendResult:
        """Validate `bars` against the buffer and append the new ones, all or nothing.

        Bars at or before the last held time are accepted as duplicates only when they repeat a
        held bar exactly (a client re-sending after a lost reply); any other overlap is rejected.

        Raises:
            BarsRejected: nothing was appended.
        """
        result, _fresh, _rows = self._append(bars)
        return result

    def append_windows(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        """Append `bars` as `append` does and return the windows a per-bar feed would see.

        Calling `append` with one bar at a time and `latest_window` after each gives the same
        windows, value for value, because both paths compute the rows with the same
        `FeatureStream`. Replay uses this to process a whole file at once.

        Returns:
            windows: raw features (B, T, F), a read-only view, one window per fresh bar whose
                window is complete and finite, oldest first.
            times: the bar times of those windows' last bars, int64 (B,).

        Raises:
            BarsRejected: nothing was appended.
        """
        window = self.feature_config.window
        history = self._buffer.last_features(window - 1)
        _result, fresh, rows = self._append(bars)
        if len(fresh) == 0 or self.max_bars < window or len(history) + len(rows) < window:
            return np.empty((0, window, FEATURE_COUNT)), np.empty(0, dtype=np.int64)
        combined = np.concatenate([history, rows])
        # Window i covers combined rows i .. i+window-1, and only those ending at a fresh bar are kept.
        first = max(len(history), window - 1) - window + 1
        windows = np.lib.stride_tricks.sliding_window_view(combined, window, axis=0)[first:].transpose(0, 2, 1)
        finite_rows = np.isfinite(combined).all(axis=1)
        complete = np.lib.stride_tricks.sliding_window_view(finite_rows, window)[first:].all(axis=1)
        ends = np.arange(first, first + len(windows)) + window - 1 - len(history)
        return windows[complete], np.asarray(fresh.time)[ends[complete]]

    def _append(self, bars: Bars) -> tuple[AppendResult, Bars, np.ndarray]:
        try:
            validate_bars(bars)
        except BarValidationError as error:
            raise BarsRejected(
                str(error), row=error.row, column=error.column, out_of_order=error.column == "time"
            ) from None
        duplicates = self._count_duplicates(bars)
        fresh = bars[duplicates:] if duplicates else bars
        if len(fresh) == 1:
            # A live request carries one bar. `update` gives the row `update_many` would, without its array checks.
            rows = self._feature_stream.update(fresh.high[0], fresh.low[0], fresh.close[0])[np.newaxis]
        else:
            rows = self._feature_stream.update_many(fresh.high, fresh.low, fresh.close)
        if len(fresh):
            self._buffer.append(fresh, rows)
            self.bars_seen += len(fresh)
            self._last_time = int(fresh.time[-1])
            if self.first_time is None:
                self.first_time = int(fresh.time[0])
        return AppendResult(accepted=len(fresh), duplicates=duplicates), fresh, rows

    def _count_duplicates(self, bars: Bars) -> int:
        last = self.last_time
        if last is None:
            return 0
        overlap = int(np.searchsorted(bars.time, last, side="right"))
        if overlap == 0:
            return 0
        held = self.bars
        held_first = int(held.time[0])
        for row in range(overlap):
            bar_time = int(bars.time[row])
            if self.first_time <= bar_time < held_first:
                # Received once but already dropped from the buffer: take it as a re-send.
                continue
            position = int(np.searchsorted(held.time, bar_time))
            if position >= len(held) or int(held.time[position]) != bar_time:
                raise BarsRejected(
                    f"bar time={bar_time} at bar {row} is not later than the last bar received "
                    f"(time={last}) and is not a bar already held; send closed bars oldest first",
                    row=row,
                    column="time",
                    out_of_order=True,
                )
            for name in COLUMNS[1:5]:
                held_value = getattr(held, name)[position]
                sent = getattr(bars, name)[row]
                if held_value != sent:
                    raise BarsRejected(
                        f"bar time={bar_time} at bar {row} was already received with {name}={float(held_value)!r}, "
                        f"now {name}={float(sent)!r}; a closed bar cannot change",
                        row=row,
                        column=name,
                        out_of_order=True,
                    )
        return overlap

    def latest_window(self) -> np.ndarray | None:
        """Raw features (T, F) of the window ending at the last bar, or None while warming up."""
        window = self.feature_config.window
        rows = self._buffer.last_features(window)
        if len(rows) < window or not np.isfinite(rows).all():
            return None
        return rows


def signal_from_output(output: np.ndarray, *, bar_time: int, bundle: ModelBundle, config: SignalConfig) -> Signal:
    """Turn one model output row (score, scaled distance) into a signal."""
    score = float(output[0])
    direction = 0
    if abs(score) >= config.threshold:
        direction = 1 if score > 0 else -1
    return Signal(
        bar_time=bar_time,
        direction=direction,
        score=score,
        distance=float(output[1]) * bundle.distance_scale,
        model_version=bundle.version,
    )


def predict_latest(stream: Stream, bundle: ModelBundle, config: SignalConfig) -> Signal | None:
    """Signal for the stream's last bar, or None while the stream is warming up."""
    window = stream.latest_window()
    if window is None:
        return None
    output = bundle.predictor.predict(bundle.scaling.apply(window)[np.newaxis])[0]
    return signal_from_output(output, bar_time=int(stream.last_time), bundle=bundle, config=config)
