"""Replay with retraining: two replays are identical, and `serve --lockstep` emits the same signals."""

import numpy as np
import pytest

from sigbridge.client import SigBridgeClient
from sigbridge.daemon.worker import TrainingWorker
from sigbridge.replay import replay_signals, summarize, train_initial_bundle

from conftest import start_daemon

BACKFILL = 800
EVERY = 150
# Bars after the backfill; retraining is due after EVERY of them.
STREAMED = EVERY + 20


@pytest.fixture(scope="module")
def replay_config(fast_config, tmp_path_factory):
    config = fast_config.replace("training", epochs=1)
    # Any sane candidate is promoted, so the version changes at the due bar.
    config = config.replace(
        "retraining", enabled=True, every_bars=EVERY, train_examples=300, holdout_examples=60, promotion_margin=1000.0
    )
    return config.replace("paths", state_dir=tmp_path_factory.mktemp("replay-state"))


def run_replay(eurusd, config):
    """A replay as `sigbridge replay` runs it, in its own training worker."""
    bars = eurusd.bars[: BACKFILL + STREAMED]
    worker = TrainingWorker(threads=config.training.threads, nice=0, device=config.compute.device)
    try:
        bundle = train_initial_bundle(
            bars[:BACKFILL], point=eurusd.point, symbol="EURUSD", timeframe="H1", config=config, worker=worker
        )
        return replay_signals(bars, backfill=BACKFILL, bundle=bundle, point=eurusd.point, config=config, worker=worker)
    finally:
        worker.close()


@pytest.fixture(scope="module")
def replayed(eurusd, replay_config):
    return run_replay(eurusd, replay_config)


def test_replay_retrains_on_schedule(replayed, eurusd):
    versions = [signal.model_version for signal in replayed]
    switches = [signal.bar_time for before, signal in zip(replayed, replayed[1:]) if signal.model_version != before.model_version]
    assert len(replayed) == STREAMED
    assert (versions[0], versions[-1]) == (1, 2)
    # The promoted model gives the signal of the bar it was trained at, EVERY bars after the backfill.
    assert switches == [int(eurusd.bars.time[BACKFILL - 1 + EVERY])]


def test_replay_twice_identical(replayed, eurusd, replay_config):
    assert run_replay(eurusd, replay_config) == replayed


def test_replay_summary_lists_versions(replayed, eurusd, replay_config):
    bars = eurusd.bars[: BACKFILL + STREAMED]
    summary = summarize(bars, replayed, backfill=BACKFILL, point=eurusd.point, config=replay_config, model_version=1)
    assert summary.model_versions == tuple(dict.fromkeys(signal.model_version for signal in replayed))


def test_lockstep_daemon_matches_replay(replayed, eurusd, replay_config, tmp_path):
    config = replay_config.replace("paths", state_dir=tmp_path / "state")
    running = start_daemon(config, lockstep=True)
    live = []
    try:
        # Lockstep trains inside the request, so replies can take as long as a training run.
        with SigBridgeClient(running.endpoint, timeout=300) as client:
            client.hello(client="tester", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
            client.send_bars("EURUSD", "H1", eurusd.bars[:BACKFILL])
            for index in range(BACKFILL, BACKFILL + STREAMED):
                live.append(client.send_bars("EURUSD", "H1", eurusd.bars[index : index + 1]))
    finally:
        running.stop()

    assert [reply["type"] for reply in live] == ["signal"] * STREAMED
    assert [reply["bar_time"] for reply in live] == [signal.bar_time for signal in replayed]
    assert [reply["model_version"] for reply in live] == [signal.model_version for signal in replayed]
    # The daemon runs one window per forward pass, replay batches them: the last float32 bits may differ.
    np.testing.assert_allclose([reply["score"] for reply in live], [signal.score for signal in replayed], rtol=0, atol=1e-5)
