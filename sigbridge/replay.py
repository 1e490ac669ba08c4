"""Replay: the daemon's signal pipeline run in-process over a bar file, for backtests.

Bars go through the daemon's `Stream` in one bulk append whose windows equal those of appending
one bar at a time, and signals come from `signal_from_output` with the same bundle, so replay
and live agree bar for bar. The model forward passes are batched, which changes float results
only in the last bits.

With retraining, replay trains at the bars where `serve --lockstep` would, with the same training
job run in the same kind of worker process and with fixed seeds, so two replays of a file give
identical signals on a CPU.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from typing import TextIO

import numpy as np

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.daemon.schedule import RetrainSchedule
from sigbridge.daemon.sessions import Signal, Stream, StreamKey, signal_from_output
from sigbridge.daemon.retraining import retrain_once
from sigbridge.daemon.worker import TrainingFailed, TrainingWorker
from sigbridge.models.bundle import ModelBundle
from sigbridge.models.jobs import INITIAL, TrainingJob, TrainingOutcome, build_promoted_model
from sigbridge.models.training import prepare

logger = logging.getLogger(__name__)

PREDICT_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class ReplaySummary:
    """Out-of-sample results of a replay.

    Attributes:
        bars: bars replayed after the backfill.
        signals: bars that got a signal (the rest were warming up).
        labelled: signals whose bar has a confirmed ZigZag label in the whole file.
        accuracy: share of labelled signals whose score sign matches the label.
        active_accuracy: the same over signals with a non-zero direction only.
        pnl_points: follow-the-signal P&L in points, holding each direction from one close to
            the next and paying half the bar's spread per unit of position change.
        buy_and_hold_points: close of the last bar minus close of the first signal bar, in points.
        model_version: the version of the model the replay started with.
        model_versions: the versions that gave signals, in order; more than one after retraining.
    """

    bars: int
    signals: int
    labelled: int
    accuracy: float
    active_accuracy: float
    pnl_points: float
    buy_and_hold_points: float
    model_version: int
    model_versions: tuple[int, ...] = ()

    def describe(self) -> str:
        versions = ", ".join(str(version) for version in self.model_versions or (self.model_version,))
        return (
            f"replayed {self.bars} bars: {self.signals} signals, model versions {versions}\n"
            f"out-of-sample direction accuracy {self.accuracy:.3f} over {self.labelled} labelled bars "
            f"({self.active_accuracy:.3f} when not flat)\n"
            f"follow-the-signal P&L {self.pnl_points:+.0f} points, buy-and-hold {self.buy_and_hold_points:+.0f} points"
        )


def replay_signals(
    bars: Bars,
    *,
    backfill: int,
    bundle: ModelBundle,
    point: float,
    config: Config,
    worker: TrainingWorker | None = None,
) -> list[Signal]:
    """Signals for bars[backfill:], computed as the daemon would for one stream fed these bars.

    With a `worker` and `retraining.enabled`, the model is retrained on the schedule that
    `serve --lockstep` follows for a feed of `backfill` bars in one message, then one bar per
    message. The schedule is checked after the backfill and after each later bar, counting bars
    only, and a promoted candidate gives the signal of the bar it was trained at.
    """
    stream = Stream(
        StreamKey("replay", bundle.symbol, bundle.timeframe),
        point=point,
        digits=0,
        utc_offset=0,
        features=config.features,
        max_bars=config.server.max_bars_per_stream,
    )
    if backfill:
        stream.append(bars[:backfill])
    if worker is None or not config.retraining.enabled or not config.retraining.every_bars:
        # One bulk append yields the same windows as appending bar by bar and reading each latest window.
        windows, times = stream.append_windows(bars[backfill:])
        return _predict(windows, times.tolist(), bundle, config)
    return _replay_with_retraining(
        stream, bars, backfill=backfill, bundle=bundle, point=point, config=config, worker=worker
    )


def _predict(windows, times: list[int], bundle: ModelBundle, config: Config) -> list[Signal]:
    signals = []
    for start in range(0, len(windows), PREDICT_BATCH):
        batch = bundle.scaling.apply(np.stack(windows[start : start + PREDICT_BATCH]))
        outputs = bundle.predictor.predict(batch)
        for output, bar_time in zip(outputs, times[start : start + PREDICT_BATCH]):
            signals.append(signal_from_output(output, bar_time=bar_time, bundle=bundle, config=config.signal))
    return signals


def _replay_with_retraining(
    stream: Stream,
    bars: Bars,
    *,
    backfill: int,
    bundle: ModelBundle,
    point: float,
    config: Config,
    worker: TrainingWorker,
) -> list[Signal]:
    key = (bundle.symbol, bundle.timeframe)
    schedule = RetrainSchedule(config.retraining, count_seconds=False)
    max_bars = config.server.max_bars_per_stream

    def due_at(index: int, model: ModelBundle) -> int | None:
        """Return the first bar index from `index` on at which the daemon's check finds the stream due, or None."""
        trained_until = model.metadata.get("trained_until_time")
        for end in range(index, len(bars)):
            # The bar times the stream's buffer contains after appending bar `end`.
            buffered_times = bars.time[max(0, end + 1 - max_bars) : end + 1]
            if schedule.is_due(key, buffered_times, trained_until):
                return end
        return None

    def retrained(model: ModelBundle) -> ModelBundle:
        version = model.version + 1
        outcome = retrain_once(
            worker, schedule, config, key, bars=stream.bars, point=point, incumbent=model, candidate_version=version
        )
        return model if outcome is None else in_memory_bundle(outcome, config, *key, version=version)

    current = bundle
    # The daemon also checks after the message that carries the backfill.
    if backfill and due_at(backfill - 1, current) == backfill - 1:
        current = retrained(current)
    signals: list[Signal] = []
    index = backfill
    while index < len(bars):
        due = due_at(index, current)
        stop = len(bars) if due is None else due + 1
        windows, times = stream.append_windows(bars[index:stop])
        times = times.tolist()
        if due is None:
            signals += _predict(windows, times, current, config)
            break
        # Bars before the due bar get the old model; the due bar gets the model trained at it.
        before = sum(1 for bar_time in times if bar_time < int(bars.time[due]))
        signals += _predict(windows[:before], times[:before], current, config)
        current = retrained(current)
        signals += _predict(windows[before:], times[before:], current, config)
        index = stop
    return signals


def in_memory_bundle(
    outcome: TrainingOutcome, config: Config, symbol: str, timeframe: str, *, version: int
) -> ModelBundle:
    """Build the bundle of a promoted model that replay keeps in memory instead of writing it."""
    return ModelBundle(
        symbol=symbol,
        timeframe=timeframe,
        version=version,
        model=build_promoted_model(outcome, config),
        scaling=outcome.scaling,
        distance_scale=outcome.distance_scale,
        window=config.features.window,
        config_hash=config.model_hash(),
        metadata=outcome.metadata,
    )


def train_initial_bundle(
    bars: Bars, *, point: float, symbol: str, timeframe: str, config: Config, worker: TrainingWorker
) -> ModelBundle:
    """Train the first model on `bars` with the daemon's initial training job; version 1, in memory.

    Raises:
        NotEnoughDataError: too few labelled windows in `bars`.
        TrainingFailed: the job failed, or its model has a non-finite validation loss.
    """
    outcome = worker.run(TrainingJob(INITIAL, symbol, timeframe, bars, point, config))
    if not outcome.decision.promote:
        raise TrainingFailed(f"the initial model of {symbol} {timeframe} was rejected: {outcome.decision.reason}")
    return in_memory_bundle(outcome, config, symbol, timeframe, version=1)


def summarize(
    bars: Bars, signals: list[Signal], *, backfill: int, point: float, config: Config, model_version: int
) -> ReplaySummary:
    """Score signals against the final ZigZag labels of the whole file and a simple P&L."""
    if not signals:
        return ReplaySummary(len(bars) - backfill, 0, 0, float("nan"), float("nan"), 0.0, 0.0, model_version)
    truth = prepare(bars, point, config).labels
    index_of = {int(t): i for i, t in enumerate(bars.time)}
    rows = np.array([index_of[signal.bar_time] for signal in signals])
    scores = np.array([signal.score for signal in signals])
    directions = np.array([signal.direction for signal in signals], dtype=np.float64)

    labels = truth.direction[rows]
    known = np.isfinite(labels)
    predicted = np.where(scores >= 0, 1.0, -1.0)
    accuracy = float(np.mean(predicted[known] == labels[known])) if known.any() else float("nan")
    active = known & (directions != 0)
    active_accuracy = float(np.mean(directions[active] == labels[active])) if active.any() else float("nan")

    # Hold each bar's direction from its close to the next close; the last signal has no next bar.
    next_rows = np.minimum(rows + 1, len(bars) - 1)
    moves = (bars.close[next_rows] - bars.close[rows]) / point
    changes = np.abs(np.diff(np.concatenate([[0.0], directions])))
    costs = changes * bars.spread[rows] / 2.0
    pnl = float(np.sum(directions * moves) - np.sum(costs))
    buy_and_hold = float((bars.close[rows[-1]] - bars.close[rows[0]]) / point)
    return ReplaySummary(
        bars=len(bars) - backfill,
        signals=len(signals),
        labelled=int(known.sum()),
        accuracy=accuracy,
        active_accuracy=active_accuracy,
        pnl_points=pnl,
        buy_and_hold_points=buy_and_hold,
        model_version=model_version,
        model_versions=tuple(dict.fromkeys(signal.model_version for signal in signals)),
    )


def write_signals(signals: list[Signal], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["bar_time", "direction", "score", "distance", "model_version"])
    for signal in signals:
        writer.writerow(
            [signal.bar_time, signal.direction, f"{signal.score:.6f}", f"{signal.distance:.6f}", signal.model_version]
        )
