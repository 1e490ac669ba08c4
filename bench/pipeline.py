"""The stream and replay stages timed in this process: features, buffer appends and replay."""

from __future__ import annotations

import time

import numpy as np

from bench import before
from bench.common import percentile, time_calls
from sigbridge.bars import validate_bars
from sigbridge.config import Config
from sigbridge.daemon.buffer import BarBuffer
from sigbridge.daemon.sessions import Stream, StreamKey
from sigbridge.models.features import FeatureStream, compute_features
from sigbridge.replay import replay_signals

# Bars held when a per-bar cost is measured: the default `server.max_bars_per_stream`.
HELD_BARS = 20_000


def _stream(config: Config) -> Stream:
    return Stream(
        StreamKey("bench", "EURUSD", "H1"),
        point=1e-5,
        digits=5,
        utc_offset=0,
        features=config.features,
        max_bars=config.server.max_bars_per_stream,
    )


def per_bar_costs(bars, config: Config, *, quick: bool) -> dict[str, float]:
    """Time each per-request stage of one closed bar with HELD_BARS bars held; return microseconds.

    Args:
        bars: at least HELD_BARS + 2,000 bars.
    """
    count = 500 if quick else 2000
    history, fresh = bars[:HELD_BARS], bars[HELD_BARS : HELD_BARS + count]
    single_bars = [fresh[index : index + 1] for index in range(count)]
    costs = {}

    # Features: recomputing the whole history with pandas, against one incremental update.
    recompute = time_calls(lambda: compute_features(history.high, history.low, history.close, config.features), 10 if quick else 30, warm_up=2)
    costs["features_recompute_us"] = percentile(recompute, 50) * 1e6
    feature_stream = FeatureStream(config.features)
    feature_stream.update_many(history.high, history.low, history.close)
    prices = iter(zip(fresh.high.tolist(), fresh.low.tolist(), fresh.close.tolist()))
    incremental = time_calls(lambda: feature_stream.update(*next(prices)), count - 10, warm_up=10)
    costs["features_incremental_us"] = percentile(incremental, 50) * 1e6

    # The bar buffer: concatenating on every append (before) against the preallocated buffer.
    rows = np.zeros((1, 4))
    concatenating = before.ConcatenatingBuffer(HELD_BARS)
    concatenating.append(history, np.zeros((len(history), 4)))
    pending = iter(single_bars)
    costs["append_concatenate_us"] = percentile(time_calls(lambda: concatenating.append(next(pending), rows), count - 10), 50) * 1e6
    preallocated = BarBuffer(HELD_BARS, 4)
    preallocated.append(history, np.zeros((len(history), 4)))
    pending = iter(single_bars)
    costs["append_buffer_us"] = percentile(time_calls(lambda: preallocated.append(next(pending), rows), count - 10), 50) * 1e6

    # Validation of one bar: the scalar shortcut, against the array checks it skips. The array
    # checks are timed on two bars, since one bar now takes the shortcut; NumPy's per-call cost,
    # not the bar count, dominates both.
    bar, pair = fresh[:1], fresh[:2]
    costs["validate_one_bar_us"] = percentile(time_calls(lambda: validate_bars(bar), count), 50) * 1e6
    costs["validate_arrays_us"] = percentile(time_calls(lambda: validate_bars(pair), count), 50) * 1e6

    # Everything the daemon does with one bar besides decoding and the model.
    stream = _stream(config)
    stream.append(history)
    pending = iter(single_bars)

    def append_and_read() -> None:
        stream.append(next(pending))
        stream.latest_window()

    costs["stream_append_window_us"] = percentile(time_calls(append_and_read, count - 10), 50) * 1e6
    return costs


def replay_rates(bars, bundle, config: Config, *, point: float, backfill: int, before_bars: int) -> dict[str, float]:
    """Time replay over `bars`, its stream stage, and the per-bar loop it replaced.

    Returns:
        replay_bars_per_s: `replay_signals` end to end (bulk features and batched inference).
        features_bars_per_s: the bulk stream stage alone.
        before_features_bars_per_s: the old per-bar stream stage, measured on `before_bars` bars.
    """
    replayed = len(bars) - backfill
    started = time.perf_counter()
    signals = replay_signals(bars, backfill=backfill, bundle=bundle, point=point, config=config)
    replay_seconds = time.perf_counter() - started

    stream = _stream(config)
    stream.append(bars[:backfill])
    started = time.perf_counter()
    windows, _times = stream.append_windows(bars[backfill:])
    features_seconds = time.perf_counter() - started

    started = time.perf_counter()
    old_windows = before.per_bar_windows(bars[: backfill + before_bars], config.features, config.server.max_bars_per_stream, backfill)
    before_seconds = time.perf_counter() - started
    if not np.array_equal(np.stack(old_windows), windows[: len(old_windows)]):
        raise RuntimeError("the per-bar path and the bulk path gave different windows")
    return {
        "replayed_bars": replayed,
        "signals": len(signals),
        "replay_seconds": replay_seconds,
        "replay_bars_per_s": replayed / replay_seconds,
        "features_bars_per_s": replayed / features_seconds,
        "before_features_bars_per_s": before_bars / before_seconds,
        "before_bars": before_bars,
    }


def replay_with_retraining(bars, bundle, config: Config, *, point: float, backfill: int, replayed: int) -> dict[str, float]:
    """Replay `replayed` bars with the default retraining schedule and the daemon's training worker.

    The time includes starting the worker process, and training dominates it: each retrain fits
    a model with the default `training` settings.
    """
    from sigbridge.daemon.worker import TrainingWorker

    worker = TrainingWorker(threads=config.training.threads, nice=config.retraining.worker_nice, device=config.compute.device)
    try:
        started = time.perf_counter()
        signals = replay_signals(bars[: backfill + replayed], backfill=backfill, bundle=bundle, point=point, config=config, worker=worker)
        seconds = time.perf_counter() - started
    finally:
        worker.close()
    return {
        "bars": replayed,
        "seconds": seconds,
        "bars_per_s": replayed / seconds,
        "retrain_attempts": replayed // config.retraining.every_bars,
        "model_versions": len({signal.model_version for signal in signals}),
    }
