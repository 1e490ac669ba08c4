"""The bar and feature buffer of one stream: append in amortised O(1), views that never change."""

from __future__ import annotations

import numpy as np

from sigbridge.bars import COLUMNS, Bars

# Rows allocated for a new stream; the buffer doubles from here up to its maximum capacity.
INITIAL_CAPACITY = 1024


class BarBuffer:
    """The last `max_bars` bars with their feature rows, in preallocated columns.

    Rows are written only past the current end. When the columns are full, the rows still held
    move to new arrays instead of being shifted in place. So every array returned by `bars`,
    `features` or `last_features` keeps its values for as long as the caller holds it, as
    copies would, and the trainer can keep a `bars` snapshot while the stream moves on.

    A full buffer of M bars has room for M + M/4 rows (at least M + 256), so it copies its M rows
    once every M/4 appended bars: about 4 row copies per bar, where concatenating on every
    append copied all M rows each time.

    Args:
        max_bars: bars kept; older bars are dropped.
        feature_count: feature columns F per bar.
    """

    def __init__(self, max_bars: int, feature_count: int) -> None:
        self._feature_count = feature_count
        self._start = 0
        self._end = 0
        self.max_bars = max_bars
        self._allocate(min(INITIAL_CAPACITY, self._max_capacity))

    @property
    def max_bars(self) -> int:
        return self._max_bars

    @max_bars.setter
    def max_bars(self, max_bars: int) -> None:
        """Change the bars kept (a config reload); a lower limit drops the oldest bars at once."""
        if isinstance(max_bars, bool) or not isinstance(max_bars, int) or max_bars < 1:
            raise ValueError(f"`max_bars` must be a positive int, received max_bars={max_bars!r}")
        self._max_bars = max_bars
        self._max_capacity = max_bars + max(256, max_bars // 4)
        self._start = max(self._start, self._end - max_bars)

    def _allocate(self, capacity: int) -> None:
        self._columns = {
            name: np.empty(capacity, dtype=np.int64 if name in ("time", "tick_volume", "spread", "volume") else np.float64)
            for name in COLUMNS
        }
        self._features = np.empty((capacity, self._feature_count), dtype=np.float64)
        self._capacity = capacity

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def time(self) -> np.ndarray:
        """Bar times held, oldest first (a read-only view)."""
        return self._view(self._columns["time"])

    def _view(self, column: np.ndarray) -> np.ndarray:
        view = column[self._start : self._end]
        view.flags.writeable = False
        return view

    def bars(self) -> Bars:
        """Return the bars held, oldest first, as read-only views."""
        return Bars(**{name: self._view(self._columns[name]) for name in COLUMNS})

    def features(self) -> np.ndarray:
        """Return the feature rows (N, F) of the bars held, as a read-only view."""
        return self._view(self._features)

    def last_features(self, count: int) -> np.ndarray:
        """Return the last `count` feature rows (count, F) as a read-only view, or all when fewer are held."""
        start = max(self._start, self._end - count)
        view = self._features[start : self._end]
        view.flags.writeable = False
        return view

    def append(self, bars: Bars, rows: np.ndarray) -> None:
        """Append bars with their feature rows (n, F), dropping the oldest beyond `max_bars`."""
        count = len(bars)
        if len(rows) != count:
            raise ValueError(f"`rows` must have one row per bar: {count} bars, received {len(rows)} rows")
        if count > self.max_bars:
            bars = bars[-self.max_bars :]
            rows = rows[-self.max_bars :]
            count = self.max_bars
        if self._end + count > self._capacity:
            self._move_to_new_arrays(count)
        end = self._end + count
        for name in COLUMNS:
            self._columns[name][self._end : end] = getattr(bars, name)
        self._features[self._end : end] = rows
        self._end = end
        self._start = max(self._start, end - self.max_bars)

    def _move_to_new_arrays(self, incoming: int) -> None:
        # Keep the rows that survive the append; arrays handed out earlier keep the old copies.
        keep = min(len(self), self.max_bars - incoming)
        needed = keep + incoming
        capacity = max(needed, min(2 * self._capacity, self._max_capacity))
        old_columns, old_features, old_end = self._columns, self._features, self._end
        self._allocate(capacity)
        for name in COLUMNS:
            self._columns[name][:keep] = old_columns[name][old_end - keep : old_end]
        self._features[:keep] = old_features[old_end - keep : old_end]
        self._start = 0
        self._end = keep
