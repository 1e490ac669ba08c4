"""Streams rebuilt from the bar database at start-up, or after a failed commit."""

from __future__ import annotations

import logging

from sigbridge.config import Config
from sigbridge.daemon.sessions import BarsRejected, Stream
from sigbridge.daemon.storage import BarStore, StorageError, StoredStream

logger = logging.getLogger(__name__)


def load_stream(store: BarStore, stored: StoredStream, config: Config) -> Stream:
    """Rebuild a stream from its stored bars, as if they had just been received.

    Features are recomputed from the newest `server.max_bars_per_stream` bars. Their recursive
    averages forget their seed within a few hundred bars, so the last window matches the stream
    before the restart to within float rounding once the buffer is full.

    Raises:
        StorageError: the bars cannot be read, or the stored bars are invalid.
    """
    stream = Stream(
        stored.key,
        point=stored.point,
        digits=stored.digits,
        utc_offset=stored.utc_offset,
        features=config.features,
        max_bars=config.server.max_bars_per_stream,
    )
    bars = store.load_bars(stored.key, last=config.server.max_bars_per_stream)
    if not len(bars):
        return stream
    try:
        stream.append(bars)
    except BarsRejected as error:
        raise StorageError(
            f"bar database {store.path} contains invalid bars for stream {stored.key}: {error}"
        ) from None
    # Bars older than the buffer count too: re-sends of them are duplicates, and warm-up and
    # training thresholds see every bar received.
    stream.bars_seen = stored.bar_count
    stream.first_time = stored.first_time
    return stream


def load_streams(store: BarStore, config: Config) -> list[Stream]:
    """Rebuild every stored stream; see `load_stream`."""
    streams = []
    for stored in store.streams():
        stream = load_stream(store, stored, config)
        logger.info(
            "restored stream client=%s symbol=%s timeframe=%s bars=%s last_bar_time=%s",
            stored.key.client,
            stored.key.symbol,
            stored.key.timeframe,
            stored.bar_count,
            stream.last_time,
        )
        streams.append(stream)
    return streams
