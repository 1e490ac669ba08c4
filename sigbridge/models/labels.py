"""MetaTrader's ZigZag pivots, the bar at which each became final, and the labels built from them.

The pivots follow MetaQuotes' standard indicator `Indicators/Examples/ZigZag.mq5` (MetaTrader 5,
2009-2020 version) on a full recalculation. A first pass marks candidate lows and highs in two map
buffers. A second pass, a state machine, then picks the alternating pivots from the maps.

Confirmation: the first pass writes the map entry of bar j at shift j, and only shifts
j+1..j+backstep can clear it, so the entry is final once bar j+backstep has closed. The second
pass at shift u reads the entries of bar u only, and it never changes pivot k again after it
appends pivot k+1 at shift u. Pivot k is therefore final at the close of bar u + backstep, which is
its `confirmed_at`. The last pivot, and any pivot whose confirmation bar is not in the data yet,
is unconfirmed. `tests/test_labels.py` checks this rule against truncated series.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from sigbridge.config import LabelConfig

PEAK = 1
TROUGH = -1

# States of the second pass, as ZigZag.mq5 names them: the first pivot of either kind, the next
# peak (the last pivot is a trough), or the next bottom (the last pivot is a peak).
_SEARCH_FIRST = 0
_SEARCH_PEAK = PEAK
_SEARCH_BOTTOM = TROUGH


@dataclasses.dataclass(frozen=True)
class Pivot:
    """One ZigZag pivot.

    Attributes:
        index: bar index of the extremum.
        price: the bar's high for a peak, its low for a trough.
        kind: `PEAK` (+1) or `TROUGH` (-1).
        confirmed_at: index of the bar at whose close the pivot became final, or None while it
            can still move or vanish.
    """

    index: int
    price: float
    kind: int
    confirmed_at: int | None


@dataclasses.dataclass(frozen=True)
class Labels:
    """Per-bar targets taken from the next pivot after each bar.

    All arrays have shape (N,) for N bars. A bar's label is unknown when the next pivot after it
    is unconfirmed, or not confirmed by the `known_by` bar given to `make_labels`.

    Attributes:
        direction: float32, +1 if the next pivot is a peak, -1 if a trough, NaN if unknown.
        distance: float64, next pivot price minus the bar's close in price units, NaN if unknown.
        pivot_index: int64, bar index of the next pivot, -1 if unknown.
        known_at: int64, bar index from which the label is known (the pivot's `confirmed_at`),
            -1 if unknown.
    """

    direction: np.ndarray
    distance: np.ndarray
    pivot_index: np.ndarray
    known_at: np.ndarray


def _check_config(point: float, config: LabelConfig) -> float:
    """Validate the ZigZag inputs and return the deviation threshold in price units."""
    if not np.isfinite(point) or point <= 0.0:
        raise ValueError(f"`point` must be a finite positive price step such as 1e-5, received point={point!r}")
    for name in ("depth", "backstep"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`labels.{name}` must be a positive integer, received {name}={value!r}")
    if config.deviation < 0:
        raise ValueError(f"`labels.deviation` must be >= 0 points, received deviation={config.deviation!r}")
    # ZigZag.mq5 multiplies the integer input by _Point in the same way.
    return config.deviation * point


def _as_prices(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of prices, received shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array) | (array <= 0.0))
    if bad.size:
        row = int(bad[0])
        # ZigZag.mq5 uses 0.0 as the empty map value, so prices must be positive.
        raise ValueError(f"`{name}` must hold finite positive prices, received {name}[{row}]={array[row]!r}")
    return array


def _low_map(low: np.ndarray, depth: int, backstep: int, threshold: float) -> list[float]:
    """Build the low map buffer of ZigZag.mq5's first pass, where 0.0 marks an empty entry.

    The high map is the low map of the negated highs. IEEE rounding is symmetric in sign, so every
    comparison of the high branch gives the same result on negated prices.
    """
    size = len(low)
    entries = [0.0] * size
    if size <= depth:
        return entries

    # Lowest low of bars [shift-depth+1, shift]. Only the value is read, so the tie rule of the
    # MQL Lowest() search, which returns the latest bar, does not matter here.
    window_low = np.lib.stride_tricks.sliding_window_view(low, depth).min(axis=1).tolist()
    prices = low.tolist()
    last_low = 0.0
    # Bars within `backstep` of the current shift whose entry is nonzero, oldest first.
    recent: list[int] = []
    for shift in range(depth, size):
        value = window_low[shift - depth + 1]
        if value == last_low:
            value = 0.0
        else:
            last_low = value
            if prices[shift] - value > threshold:
                value = 0.0
            else:
                # Backstep: clear entries of the previous `backstep` bars that are above the new low.
                recent = [bar for bar in recent if bar >= shift - backstep]
                for bar in recent:
                    if entries[bar] > value:
                        entries[bar] = 0.0
                recent = [bar for bar in recent if entries[bar] != 0.0]
        if prices[shift] == value:
            entries[shift] = value
            recent.append(shift)
    return entries


class _PivotSelector:
    """Second pass of ZigZag.mq5, fed one shift at a time with final map entries."""

    def __init__(self) -> None:
        self.search = _SEARCH_FIRST
        # The last pivot as (index, price, kind); None before the first one.
        self.last: tuple[int, float, int] | None = None

    def step(self, shift: int, high_entry: float, low_entry: float) -> tuple[int, float, int] | None:
        """Apply the entries of one shift; return the previous pivot when a new one is appended."""
        if self.search == _SEARCH_FIRST:
            # When both entries are set, ZigZag.mq5 writes the high first and then overwrites it
            # with the low, so the low wins.
            if low_entry != 0.0:
                self.last = (shift, low_entry, TROUGH)
                self.search = _SEARCH_PEAK
            elif high_entry != 0.0:
                self.last = (shift, high_entry, PEAK)
                self.search = _SEARCH_BOTTOM
            return None

        # A bar with both entries set is ignored once the first pivot exists.
        if self.search == _SEARCH_PEAK:
            if low_entry != 0.0 and high_entry == 0.0 and low_entry < self.last[1]:
                self.last = (shift, low_entry, TROUGH)
            elif high_entry != 0.0 and low_entry == 0.0:
                return self._append(shift, high_entry, PEAK, _SEARCH_BOTTOM)
        else:
            if high_entry != 0.0 and low_entry == 0.0 and high_entry > self.last[1]:
                self.last = (shift, high_entry, PEAK)
            elif low_entry != 0.0 and high_entry == 0.0:
                return self._append(shift, low_entry, TROUGH, _SEARCH_PEAK)
        return None

    def _append(self, shift: int, price: float, kind: int, search: int) -> tuple[int, float, int]:
        fixed = self.last
        self.last = (shift, price, kind)
        self.search = search
        return fixed


def zigzag(high, low, point: float, config: LabelConfig) -> list[Pivot]:
    """Compute ZigZag pivots over a whole series, as ZigZag.mq5 does on a full recalculation.

    The indicator draws nothing on charts shorter than 100 bars, but this function returns the
    pivots of any series. A series of `depth` bars or fewer has none.

    Args:
        high: bar highs, shape (N,), oldest first.
        low: bar lows, shape (N,).
        point: the symbol's price step (MQL5 `_Point`), e.g. 1e-5 for EURUSD with 5 digits.
        config: `depth`, `deviation` (in points) and `backstep`, as the indicator inputs.

    Returns:
        The pivots, oldest first, alternating between peaks and troughs. Every pivot except the
        last few has `confirmed_at` set (see the module docstring).

    Raises:
        ValueError: for arrays of different lengths, non-positive prices or invalid inputs.
    """
    threshold = _check_config(point, config)
    high = _as_prices("high", high)
    low = _as_prices("low", low)
    if high.shape != low.shape:
        raise ValueError(f"`high` and `low` must have the same length, received {len(high)} and {len(low)}")
    size = len(low)

    # First pass: candidate extremes.
    low_entries = _low_map(low, config.depth, config.backstep, threshold)
    high_entries = [-value for value in _low_map(-high, config.depth, config.backstep, threshold)]

    # Second pass: pivot selection. Pivot k is fixed at the shift that appends pivot k+1.
    selector = _PivotSelector()
    pivots = []
    for shift in range(config.depth, size):
        fixed = selector.step(shift, high_entries[shift], low_entries[shift])
        if fixed is not None:
            confirmed_at = shift + config.backstep
            pivots.append(Pivot(*fixed, confirmed_at=confirmed_at if confirmed_at < size else None))
    if selector.last is not None:
        pivots.append(Pivot(*selector.last, confirmed_at=None))
    return pivots


class _StreamingLowMap:
    """First pass of ZigZag.mq5 for lows, one bar at a time.

    Work per bar is bounded by `backstep` (the pending entries it may clear), whatever the length
    of the history.
    """

    def __init__(self, depth: int, backstep: int, threshold: float) -> None:
        self._depth = depth
        self._backstep = backstep
        self._threshold = threshold
        self._shift = -1
        self._last_low = 0.0
        # (bar, low) pairs with increasing lows: the front is the lowest low of the depth window.
        self._window: collections.deque[tuple[int, float]] = collections.deque()
        # Nonzero entries of bars that later shifts can still clear.
        self._pending: dict[int, float] = {}

    def push(self, price: float) -> float | None:
        """Process the next bar and return the entry of bar shift-backstep, which is now final.

        Returns 0.0 for an empty entry, and None while shift-backstep is negative.
        """
        self._shift += 1
        shift = self._shift
        window = self._window
        while window and window[-1][1] >= price:
            window.pop()
        window.append((shift, price))
        if window[0][0] <= shift - self._depth:
            window.popleft()

        if shift >= self._depth:
            self._apply(shift, price, window[0][1])

        final_bar = shift - self._backstep
        if final_bar < 0:
            return None
        return self._pending.pop(final_bar, 0.0)

    def _apply(self, shift: int, price: float, value: float) -> None:
        if value == self._last_low:
            return
        self._last_low = value
        if price - value > self._threshold:
            return
        # Only bars shift-backstep..shift-1 are still pending here.
        for bar in [bar for bar, entry in self._pending.items() if entry > value]:
            del self._pending[bar]
        if price == value:
            self._pending[shift] = value


class ZigZagStream:
    """ZigZag pivots computed bar by bar, emitted at the bar whose close confirms them.

    The stream emits the same pivots with the same `confirmed_at` as `zigzag` over the same bars,
    except the unconfirmed ones. Memory stays bounded by `depth` and `backstep`.

    Attributes:
        bars_seen: number of bars passed to `update`.
    """

    def __init__(self, point: float, config: LabelConfig) -> None:
        threshold = _check_config(point, config)
        self._depth = config.depth
        self._backstep = config.backstep
        self._lows = _StreamingLowMap(config.depth, config.backstep, threshold)
        self._highs = _StreamingLowMap(config.depth, config.backstep, threshold)
        self._selector = _PivotSelector()
        self.bars_seen = 0

    def update(self, high: float, low: float) -> list[Pivot]:
        """Add one closed bar and return the pivots confirmed at its close, usually none.

        Raises:
            ValueError: for a non-finite or non-positive price.
        """
        for name, value in (("high", high), ("low", low)):
            if not math.isfinite(value) or value <= 0.0:
                raise ValueError(f"`{name}` must be a finite positive price, received {name}={value!r}")
        bar = self.bars_seen
        self.bars_seen += 1
        low_entry = self._lows.push(float(low))
        high_entry = self._highs.push(-float(high))

        # The second pass runs `backstep` bars behind, on the entries that just became final.
        shift = bar - self._backstep
        if shift < self._depth:
            return []
        fixed = self._selector.step(shift, -high_entry, low_entry)
        if fixed is None:
            return []
        return [Pivot(*fixed, confirmed_at=bar)]


def make_labels(close, pivots: list[Pivot], *, known_by: int | None = None) -> Labels:
    """Label each bar with the next pivot after it.

    The next pivot of bar t is the first pivot with index > t. The label is known only if that
    pivot is confirmed and, when `known_by` is given, confirmed at or before bar `known_by`. A
    later confirmed pivot is never used in its place.

    Args:
        close: bar closes, shape (N,).
        pivots: pivots of the same bars, oldest first, as `zigzag` returns them.
        known_by: bar index; pivots confirmed after this bar are treated as unknown.

    Returns:
        The labels, each array of shape (N,).

    Raises:
        ValueError: when pivots are out of order or outside the bars.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1:
        raise ValueError(f"`close` must be a 1-D array of prices, received shape {close.shape}")
    size = len(close)
    indices = np.array([pivot.index for pivot in pivots], dtype=np.int64)
    if indices.size and (indices[0] < 0 or indices[-1] >= size or np.any(np.diff(indices) <= 0)):
        raise ValueError(
            f"`pivots` must have strictly increasing indices within [0, {size}), received indices "
            f"from {int(indices.min())} to {int(indices.max())}; pass pivots of the same bars as `close`"
        )
    direction = np.full(size, np.nan, dtype=np.float32)
    distance = np.full(size, np.nan, dtype=np.float64)
    pivot_index = np.full(size, -1, dtype=np.int64)
    known_at = np.full(size, -1, dtype=np.int64)
    if not pivots:
        return Labels(direction, distance, pivot_index, known_at)

    kinds = np.array([pivot.kind for pivot in pivots], dtype=np.float32)
    prices = np.array([pivot.price for pivot in pivots], dtype=np.float64)
    confirmed_at = np.array(
        [-1 if pivot.confirmed_at is None else pivot.confirmed_at for pivot in pivots], dtype=np.int64
    )
    usable = confirmed_at >= 0
    if known_by is not None:
        usable &= confirmed_at <= known_by

    # Position in `pivots` of the first pivot with index > t, for every bar t.
    bars = np.arange(size)
    following = np.searchsorted(indices, bars, side="right")
    has_following = following < len(pivots)
    following = np.minimum(following, len(pivots) - 1)
    known = has_following & usable[following]

    direction[known] = kinds[following[known]]
    distance[known] = prices[following[known]] - close[known]
    pivot_index[known] = indices[following[known]]
    known_at[known] = confirmed_at[following[known]]
    return Labels(direction, distance, pivot_index, known_at)
