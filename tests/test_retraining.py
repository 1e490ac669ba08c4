"""Retraining in a running daemon over loopback sockets: schedule, swap under load, failures, shutdown."""

import logging
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time

import pytest

from sigbridge.client import SigBridgeClient
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.service import TRAINER_STOP_TIMEOUT
from sigbridge.daemon.sessions import Stream, StreamKey
from sigbridge.daemon.trainer import Trainer

from conftest import TRAIN_BARS, start_daemon

# New closed bars after the incumbent's last training bar that make the stream due.
EVERY = 60
WORKER_NAME = "sigbridge-training-worker"


@pytest.fixture
def retrain_config(daemon_state):
    """The daemon state with the EURUSD H1 bundle v1, retraining every EVERY bars, any sane candidate promoted."""
    config = daemon_state.replace("training", epochs=1)
    return config.replace(
        "retraining",
        enabled=True,
        every_bars=EVERY,
        every_seconds=0,
        train_examples=300,
        holdout_examples=60,
        promotion_margin=1000.0,
    )


def hello_for(eurusd, client):
    return {"client": client, "symbol": "EURUSD", "timeframe": "H1", "digits": eurusd.digits, "point": eurusd.point}


def wait_for(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def messages(caplog, text, level=logging.INFO):
    return [record.getMessage() for record in caplog.records if text in record.getMessage() and record.levelno >= level]


def workers():
    return [child for child in multiprocessing.active_children() if child.name == WORKER_NAME]


def serving_version(endpoint, eurusd):
    with SigBridgeClient(endpoint, timeout=30) as client:
        return client.hello(**hello_for(eurusd, "probe"))["model_version"]


class Hammer(threading.Thread):
    """A client that re-sends its last bar in a loop; a duplicate bar still gets a signal."""

    def __init__(self, endpoint, eurusd, name):
        super().__init__(name=name, daemon=True)
        self.client = SigBridgeClient(endpoint, timeout=30)
        self.client.hello(**hello_for(eurusd, name))
        self.client.send_bars("EURUSD", "H1", eurusd.bars[:TRAIN_BARS])
        self.last_bar = eurusd.bars[TRAIN_BARS - 1 : TRAIN_BARS]
        self.replies = []
        self.stop_event = threading.Event()

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.replies.append(self.client.send_bars("EURUSD", "H1", self.last_bar))
                # Hundreds of requests a second, with room left on 2 cores for the training worker.
                time.sleep(0.001)
        finally:
            self.client.close()


def test_retrain_at_scheduled_bar_under_load(retrain_config, eurusd, caplog):
    caplog.set_level(logging.INFO, logger="sigbridge")
    bars = eurusd.bars
    running = start_daemon(retrain_config)
    hammers = []
    try:
        with SigBridgeClient(running.endpoint, timeout=30) as feeder:
            feeder.hello(**hello_for(eurusd, "feeder"))
            feeder.send_bars("EURUSD", "H1", bars[:TRAIN_BARS])
            hammers = [Hammer(running.endpoint, eurusd, f"hammer-{number}") for number in range(2)]
            for hammer in hammers:
                hammer.start()

            # One bar short of the schedule: the trainer thread polls every second and stays idle.
            fed = [feeder.send_bars("EURUSD", "H1", bars[index : index + 1]) for index in range(TRAIN_BARS, TRAIN_BARS + EVERY - 1)]
            time.sleep(2.5)
            assert not messages(caplog, "retraining started")
            fed.append(feeder.send_bars("EURUSD", "H1", bars[TRAIN_BARS + EVERY - 1 : TRAIN_BARS + EVERY]))

            wait_for(lambda: serving_version(running.endpoint, eurusd) == 2, 180, "no model_version=2 within 180 s")
            time.sleep(0.5)
    finally:
        for hammer in hammers:
            hammer.stop_event.set()
            hammer.join(30)
        running.stop()

    assert [reply["model_version"] for reply in fed] == [1] * EVERY
    started = messages(caplog, "retraining started")
    assert len(started) == 1
    assert f"last_bar_time={int(bars.time[TRAIN_BARS + EVERY - 1])}" in started[0]
    decisions = messages(caplog, "retraining decision")
    assert len(decisions) == 1
    assert "promoted=True model_version=1 candidate_version=2" in decisions[0]
    assert "candidate_loss=" in decisions[0]
    assert "incumbent_loss=" in decisions[0]
    for hammer in hammers:
        assert hammer.replies, f"{hammer.name} got no reply"
        assert {reply["type"] for reply in hammer.replies} == {"signal"}
        assert all(math.isfinite(reply["score"]) and -1 < reply["score"] < 1 for reply in hammer.replies)
        versions = [reply["model_version"] for reply in hammer.replies]
        changes = sum(1 for before, after in zip(versions, versions[1:]) if before != after)
        assert (versions[0], versions[-1], changes) == (1, 2, 1)


def test_trainer_uses_reloaded_every_bars(retrain_config, eurusd, caplog):
    """A lockstep trainer given a smaller every_bars retrains at the new due point, before the old one."""
    caplog.set_level(logging.INFO, logger="sigbridge")
    bars = eurusd.bars
    registry = ModelRegistry(retrain_config.paths.models_dir)
    trainer = Trainer(retrain_config.replace("retraining", every_bars=2 * EVERY), registry, lockstep=True)
    stream = Stream(
        StreamKey("ea-1", "EURUSD", "H1"),
        point=eurusd.point,
        digits=eurusd.digits,
        utc_offset=0,
        features=retrain_config.features,
        max_bars=retrain_config.server.max_bars_per_stream,
    )
    try:
        stream.append(bars[: TRAIN_BARS + EVERY])
        trainer.observe(stream)
        assert not messages(caplog, "retraining started")

        trainer.apply_config(retrain_config)
        trainer.observe(stream)
    finally:
        assert trainer.stop(TRAINER_STOP_TIMEOUT)

    assert f"every_bars={EVERY}" in messages(caplog, "trainer uses the reloaded config")[0]
    started = messages(caplog, "retraining started")
    assert len(started) == 1
    assert f"last_bar_time={int(bars.time[TRAIN_BARS + EVERY - 1])}" in started[0]
    assert registry.get("EURUSD", "H1").version == 2


def test_retrain_failures_keep_incumbent(retrain_config, eurusd, caplog):
    """A killed worker and an unwritable models folder leave v1 serving; the next due point retries."""
    caplog.set_level(logging.INFO, logger="sigbridge")
    bars = eurusd.bars
    stream_folder = retrain_config.paths.models_dir / "EURUSD_H1"
    aside = stream_folder.with_name("EURUSD_H1.aside")
    running = start_daemon(retrain_config)
    try:
        with SigBridgeClient(running.endpoint, timeout=30) as feeder:
            feeder.hello(**hello_for(eurusd, "feeder"))
            feeder.send_bars("EURUSD", "H1", bars[:TRAIN_BARS])
            end = TRAIN_BARS

            def feed_to_due_point():
                nonlocal end
                for index in range(end, end + EVERY):
                    assert feeder.send_bars("EURUSD", "H1", bars[index : index + 1])["model_version"] == 1
                end += EVERY

            # 1. The worker process dies while it trains.
            feed_to_due_point()
            wait_for(lambda: workers(), 120, "the training worker did not start")
            worker_pid = workers()[0].pid
            expected_nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + retrain_config.retraining.worker_nice)
            assert os.getpriority(os.PRIO_PROCESS, worker_pid) == expected_nice
            os.kill(worker_pid, signal.SIGKILL)
            wait_for(lambda: messages(caplog, "retraining failed", logging.ERROR), 120, "the failure was not logged")
            assert serving_version(running.endpoint, eurusd) == 1

            # 2. The promoted model cannot be saved: a file replaces the stream folder.
            shutil.move(stream_folder, aside)
            stream_folder.write_text("not a folder")
            feed_to_due_point()
            wait_for(lambda: messages(caplog, "cannot save the promoted model", logging.ERROR), 180, "no save failure")
            assert serving_version(running.endpoint, eurusd) == 1

            # 3. With the folder back, the next due point promotes.
            stream_folder.unlink()
            shutil.move(aside, stream_folder)
            feed_to_due_point()
            wait_for(lambda: serving_version(running.endpoint, eurusd) == 2, 180, "no model_version=2 after the failures")
    finally:
        running.stop()

    assert len(messages(caplog, "retraining started")) == 3
    failure = messages(caplog, "retraining failed", logging.ERROR)[0]
    assert "symbol=EURUSD timeframe=H1 model_version=1" in failure
    assert "keeps serving" in failure


def test_shutdown_stops_training(daemon_state, eurusd):
    """Stopping the daemon kills a long initial training within the trainer's deadline."""
    config = daemon_state.replace("training", epochs=10_000, patience=10_000)
    running = start_daemon(config)
    with SigBridgeClient(running.endpoint, timeout=30) as client:
        client.hello(**{**hello_for(eurusd, "long"), "symbol": "NEWSYM"})
        assert client.send_bars("NEWSYM", "H1", eurusd.bars[:1500])["state"] in ("queued", "training")
    wait_for(lambda: workers(), 120, "the training worker did not start")
    time.sleep(2.0)
    started = time.monotonic()
    running.stop(timeout=TRAINER_STOP_TIMEOUT + 20)
    assert time.monotonic() - started < TRAINER_STOP_TIMEOUT + 5
    assert not workers()


def test_trainer_forget_drops_queued_initial(tmp_path, fast_config, eurusd):
    registry = ModelRegistry(tmp_path / "models")
    # Not started and not in lockstep: requests are only queued.
    trainer = Trainer(fast_config, registry)
    key = StreamKey("ea-1", "EURUSD", "H1")
    other = StreamKey("ea-2", "EURUSD", "H1")
    try:
        assert trainer.request("EURUSD", "H1", eurusd.bars[:500], eurusd.point, stream_key=key)
        assert trainer.state("EURUSD", "H1").state == "queued"
        # Another stream of the symbol and timeframe leaves the queued training alone.
        trainer.forget(other)
        assert trainer.state("EURUSD", "H1").state == "queued"
        trainer.forget(key)
        assert trainer.state("EURUSD", "H1") is None
        # Queued again once a stream sends enough bars.
        assert trainer.request("EURUSD", "H1", eurusd.bars[:500], eurusd.point, stream_key=key)
    finally:
        trainer.stop(5.0)
