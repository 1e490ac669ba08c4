"""Replay: the daemon's signal pipeline run in-process over a bar file, for backtests.

Bars go through `Stream.append` one at a time, exactly as the daemon receives them, and signals
come from `signal_from_output` with the same bundle, so replay and live agree bar for bar. The
model forward passes are batched, which changes float results only in the last bits.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from typing import TextIO

import numpy as np

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.daemon.sessions import Signal, Stream, StreamKey, signal_from_output
from sigbridge.models.bundle import ModelBundle
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
    """

    bars: int
    signals: int
    labelled: int
    accuracy: float
    active_accuracy: float
    pnl_points: float
    buy_and_hold_points: float
    model_version: int

    def describe(self) -> str:
        return (
            f"replayed {self.bars} bars: {self.signals} signals, model_version={self.model_version}\n"
            f"out-of-sample direction accuracy {self.accuracy:.3f} over {self.labelled} labelled bars "
            f"({self.active_accuracy:.3f} when not flat)\n"
            f"follow-the-signal P&L {self.pnl_points:+.0f} points, buy-and-hold {self.buy_and_hold_points:+.0f} points"
        )


def replay_signals(bars: Bars, *, backfill: int, bundle: ModelBundle, point: float, config: Config) -> list[Signal]:
    """Signals for bars[backfill:], computed as the daemon would for one stream fed these bars."""
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
    windows, times = [], []
    for index in range(backfill, len(bars)):
        stream.append(bars[index : index + 1])
        window = stream.latest_window()
        if window is not None:
            windows.append(window)
            times.append(int(bars.time[index]))
    signals = []
    for start in range(0, len(windows), PREDICT_BATCH):
        batch = bundle.scaling.apply(np.stack(windows[start : start + PREDICT_BATCH]))
        outputs = bundle.predictor.predict(batch)
        for output, bar_time in zip(outputs, times[start : start + PREDICT_BATCH]):
            signals.append(signal_from_output(output, bar_time=bar_time, bundle=bundle, config=config.signal))
    return signals


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
    )


def write_signals(signals: list[Signal], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["bar_time", "direction", "score", "distance", "model_version"])
    for signal in signals:
        writer.writerow(
            [signal.bar_time, signal.direction, f"{signal.score:.6f}", f"{signal.distance:.6f}", signal.model_version]
        )
