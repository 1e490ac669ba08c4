"""Accepting bars into a stream: the correction rule, and storage before the reply, all or nothing.

Rules for bars at or before the stream's last bar time:

- a bar equal to the bar held for its time is a duplicate (a client re-sending after a lost
  reply) and is counted, not stored again;
- a bar at the stream's last time whose values differ is a correction: it replaces the last bar
  in memory and in the database, the stream's features are recomputed, and it counts as accepted;
- a bar older than the last one whose prices differ is rejected (`BarsRejected`, which the
  dispatcher sends as BAR_CONFLICT), and so is a time the stream never held.

`append_bars` either applies and stores a whole `bars` message or changes nothing that a later
request can see.
"""

from __future__ import annotations

import logging

import numpy as np

from sigbridge.bars import COLUMNS, Bars, BarValidationError, validate_bars
from sigbridge.daemon.sessions import AppendResult, BarsRejected, Stream
from sigbridge.daemon.storage import BarStore, StorageError

logger = logging.getLogger(__name__)


class NotStored(Exception):
    """Raised when the database write of accepted bars failed.

    Attributes:
        stream: the stream to keep serving in place of the one passed in. It contains the bars
            from before the request.
    """

    def __init__(self, message: str, stream: Stream) -> None:
        super().__init__(message)
        self.stream = stream


def append_bars(store: BarStore | None, stream: Stream, bars: Bars) -> tuple[Stream, AppendResult]:
    """Append `bars` to `stream` and store the accepted ones before returning.

    Args:
        store: the bar database, or None to keep bars in memory only.
        stream: the stream the bars belong to.
        bars: decoded bars of one `bars` request, oldest first.

    Returns:
        The stream that now holds the bars (a new object after a correction, which the caller
        installs in place of `stream`) and the counts for the reply.

    Raises:
        BarsRejected: the bars conflict with the stream or break an invariant; nothing changed.
        NotStored: the database write failed; the caller installs `error.stream`.
    """
    row = _correction_row(stream, bars)
    if row is not None:
        return _correct_last_bar(store, stream, bars, row)

    result = stream.append(bars)
    fresh = bars[result.duplicates :]
    if store is None or not len(fresh):
        return stream, result
    try:
        store.save_bars(stream.key, fresh)
    except StorageError as error:
        # The stream took the bars before the write failed. A stream without them replaces it,
        # so a re-send is accepted and stored rather than taken for a duplicate.
        held = stream.bars
        previous = _rebuilt(stream, held[: len(held) - len(fresh)], stream.bars_seen - len(fresh))
        raise NotStored(str(error), previous) from None
    return stream, result


def _correction_row(stream: Stream, bars: Bars) -> int | None:
    """Index of the bar in `bars` that corrects the stream's last bar, or None."""
    last = stream.last_time
    if last is None or not len(bars):
        return None
    row = int(np.searchsorted(bars.time, last))
    if row >= len(bars) or int(bars.time[row]) != last:
        return None
    held = stream.bars
    for name in COLUMNS[1:]:
        if getattr(held, name)[-1] != getattr(bars, name)[row]:
            return row
    return None


def _correct_last_bar(store: BarStore | None, stream: Stream, bars: Bars, row: int) -> tuple[Stream, AppendResult]:
    try:
        validate_bars(bars)
    except BarValidationError as error:
        raise BarsRejected(
            str(error), row=error.row, column=error.column, out_of_order=error.column == "time"
        ) from None
    # Bars before the correction are older than the last bar: this checks that each repeats a
    # held bar, and appends nothing.
    if row:
        stream.append(bars[:row])

    held = stream.bars
    incoming = bars[row:]
    corrected = _rebuilt(stream, held[: len(held) - 1].concat(incoming), stream.bars_seen - 1 + len(incoming))
    if store is not None:
        try:
            store.save_bars(stream.key, incoming)
        except StorageError as error:
            raise NotStored(str(error), stream) from None
    logger.info(
        "corrected last bar client=%s symbol=%s timeframe=%s bar_time=%s",
        stream.key.client,
        stream.key.symbol,
        stream.key.timeframe,
        int(incoming.time[0]),
    )
    return corrected, AppendResult(accepted=len(incoming), duplicates=row)


def _rebuilt(stream: Stream, bars: Bars, bars_seen: int) -> Stream:
    """Build a stream with `stream`'s key and properties that contains `bars`, features recomputed."""
    rebuilt = Stream(
        stream.key,
        point=stream.point,
        digits=stream.digits,
        utc_offset=stream.utc_offset,
        features=stream.feature_config,
        max_bars=stream.max_bars,
    )
    if len(bars):
        rebuilt.append(bars)
    rebuilt.bars_seen = bars_seen
    rebuilt.first_time = stream.first_time if bars_seen else None
    return rebuilt
