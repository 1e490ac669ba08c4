"""Replay runs the daemon's pipeline: same signals for the same bars and model."""

import numpy as np
import pytest

from sigbridge.client import SigBridgeClient
from sigbridge.models.bundle import load_latest_bundle
from sigbridge.replay import replay_signals, summarize

from conftest import TRAIN_BARS

STREAMED = 150


@pytest.fixture(scope="module")
def bundle(trained_models_dir):
    return load_latest_bundle(trained_models_dir, "EURUSD", "H1")


def test_replay_matches_live_daemon(daemon, eurusd, bundle, fast_config):
    bars = eurusd.bars[: TRAIN_BARS + STREAMED]
    live = []
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(client="parity", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
        client.send_bars("EURUSD", "H1", bars[:TRAIN_BARS])
        for index in range(TRAIN_BARS, len(bars)):
            live.append(client.send_bars("EURUSD", "H1", bars[index : index + 1]))

    replayed = replay_signals(bars, backfill=TRAIN_BARS, bundle=bundle, point=eurusd.point, config=fast_config)

    assert [reply["bar_time"] for reply in live] == [signal.bar_time for signal in replayed]
    live_scores = np.array([reply["score"] for reply in live])
    replay_scores = np.array([signal.score for signal in replayed])
    # Batched and single forward passes may differ in the last float32 bits only.
    np.testing.assert_allclose(replay_scores, live_scores, rtol=0, atol=1e-5)
    clear = np.abs(np.abs(live_scores) - fast_config.signal.threshold) > 1e-4
    assert [reply["direction"] for reply, keep in zip(live, clear) if keep] == [
        signal.direction for signal, keep in zip(replayed, clear) if keep
    ]
    np.testing.assert_allclose(
        [signal.distance for signal in replayed], [reply["distance"] for reply in live], rtol=1e-4, atol=1e-9
    )


def test_replay_is_repeatable(eurusd, bundle, fast_config):
    bars = eurusd.bars[: TRAIN_BARS + STREAMED]
    first = replay_signals(bars, backfill=TRAIN_BARS, bundle=bundle, point=eurusd.point, config=fast_config)
    second = replay_signals(bars, backfill=TRAIN_BARS, bundle=bundle, point=eurusd.point, config=fast_config)
    assert first == second


def test_replay_summary_scores_out_of_sample(eurusd, bundle, fast_config):
    bars = eurusd.bars
    signals = replay_signals(bars, backfill=TRAIN_BARS, bundle=bundle, point=eurusd.point, config=fast_config)
    summary = summarize(
        bars, signals, backfill=TRAIN_BARS, point=eurusd.point, config=fast_config, model_version=bundle.version
    )
    assert summary.bars == len(bars) - TRAIN_BARS
    assert summary.signals == len(bars) - TRAIN_BARS
    assert 0 < summary.labelled < summary.signals
    assert 0.0 <= summary.accuracy <= 1.0
    expected_hold = (bars.close[-1] - bars.close[TRAIN_BARS]) / eurusd.point
    assert summary.buy_and_hold_points == pytest.approx(expected_hold)


def test_replay_pnl_follows_signals(eurusd, bundle, fast_config):
    """A hand check of the P&L on three bars: long, flat, short."""
    from sigbridge.daemon.sessions import Signal

    bars = eurusd.bars
    rows = [TRAIN_BARS, TRAIN_BARS + 1, TRAIN_BARS + 2]
    signals = [
        Signal(int(bars.time[row]), direction, 0.5 * direction or 0.01, 0.0, 1)
        for row, direction in zip(rows, (1, 0, -1))
    ]
    summary = summarize(bars, signals, backfill=TRAIN_BARS, point=eurusd.point, config=fast_config, model_version=1)
    point = eurusd.point
    moves = [(bars.close[row + 1] - bars.close[row]) / point for row in rows]
    costs = (bars.spread[rows[0]] + bars.spread[rows[1]] + bars.spread[rows[2]]) / 2.0
    assert summary.pnl_points == pytest.approx(moves[0] - moves[2] - costs)
