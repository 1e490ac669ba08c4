"""The daemon's life cycle: sd_notify, SIGTERM, SIGHUP, restarts, kill -9, bundles and the unit file.

Tests named `test_serve_*` run `sigbridge serve` as a child process on a loopback port, with a
notification socket of their own in place of systemd's.
"""

import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sigbridge.bars import COLUMNS
from sigbridge.client import SigBridgeClient, bars_message
from sigbridge.config import Config, ConfigError
from sigbridge.daemon.codes import ExitCode
from sigbridge.daemon.notify import Notifier
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode
from sigbridge.daemon.reload import merge_reloaded
from sigbridge.daemon.service import _Daemon
from sigbridge.daemon.sessions import Stream, StreamKey
from sigbridge.daemon.storage import BarStore

from conftest import TRAIN_BARS, start_daemon

REPOSITORY = Path(__file__).resolve().parent.parent
UNIT_FILE = REPOSITORY / "config" / "sigbridge.service"


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects every message."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self._socket.settimeout(0.2)
        self._closed = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                self.messages.append(self._socket.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def wait_for(self, line: str, count: int = 1, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(line) < count:
            assert time.monotonic() < deadline, f"no {line!r} (#{count}) within {timeout} s; received {self.lines()}"
            time.sleep(0.02)

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._socket.close()


# Notifier against a real datagram socket


def test_notifier_sends_to_path_socket(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    notifier = Notifier(listener.address)
    try:
        notifier.status("restoring streams")
        notifier.ready("serving streams=2")
        notifier.stopping()
        deadline = time.monotonic() + 5
        while len(listener.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        notifier.close()
        listener.close()
    assert listener.messages[0] == "STATUS=restoring streams"
    assert listener.messages[1] == f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving streams=2"
    assert listener.messages[2] == "STOPPING=1\nSTATUS=stopping"


def test_notifier_sends_to_abstract_socket():
    listener = NotifyListener(f"@sigbridge-test-{uuid.uuid4().hex}")
    notifier = Notifier(listener.address)
    try:
        notifier.reloading()
        listener.wait_for("RELOADING=1", timeout=5)
    finally:
        notifier.close()
        listener.close()
    assert any(line.startswith("MONOTONIC_USEC=") for line in listener.lines())


def test_notifier_status_only_on_change(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    notifier = Notifier(listener.address)
    try:
        for _ in range(3):
            notifier.status("serving streams=1")
        notifier.status("serving streams=2")
        listener.wait_for("STATUS=serving streams=2", timeout=5)
    finally:
        notifier.close()
        listener.close()
    assert listener.count("STATUS=serving streams=1") == 1


def test_notifier_watchdog_every_half_timeout(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    notifier = Notifier(listener.address, watchdog_usec=2_000_000)
    try:
        for now in (100.0, 100.5, 100.9, 101.0, 101.5, 102.0):
            notifier.watchdog(now)
        listener.wait_for("WATCHDOG=1", count=3, timeout=5)
        time.sleep(0.1)
    finally:
        notifier.close()
        listener.close()
    assert listener.count("WATCHDOG=1") == 3


def test_notifier_from_environment():
    pid = str(os.getpid())
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@bus", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid})
    assert notifier.address == "@bus"
    assert notifier.watchdog_interval == 15.0
    other = Notifier.from_environment({"NOTIFY_SOCKET": "@bus", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    assert not Notifier.from_environment({}).enabled


def test_notifier_missing_socket_warns_once(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING, logger="sigbridge.daemon.notify"):
        notifier.ready()
        notifier.status("x")
    notifier.close()
    assert len(caplog.records) == 1
    assert "cannot notify systemd" in caplog.records[0].getMessage()


# What a reload may change


def test_merge_reloaded_applies_live_keys():
    loaded = Config().replace("signal", threshold=0.5).replace("server", max_bars_per_message=1000)
    merged, waiting = merge_reloaded(Config(), loaded)
    assert merged.signal.threshold == 0.5
    assert merged.server.max_bars_per_message == 1000
    assert waiting == []


def test_merge_reloaded_keeps_restart_keys():
    loaded = Config().replace("features", window=30).replace("server", bind="tcp://127.0.0.1:6000")
    loaded = loaded.replace("signal", threshold=0.3)
    merged, waiting = merge_reloaded(Config(), loaded)
    assert merged.features.window == Config().features.window
    assert merged.server.bind == Config().server.bind
    assert merged.signal.threshold == 0.3
    assert waiting == ["server.bind", "features.window"]


# A changed value for every live `training` and `retraining` key, valid together.
TRAINING_CHANGES = {
    "epochs": 7,
    "batch_size": 32,
    "learning_rate": 0.01,
    "validation_fraction": 0.2,
    "patience": 2,
    "seed": 7,
    "min_examples": 600,
    "walk_forward_folds": 3,
}
RETRAINING_CHANGES = {
    "enabled": False,
    "every_bars": 60,
    "every_seconds": 3600,
    "train_examples": 700,
    "holdout_examples": 50,
    "warm_start": False,
    "promotion_margin": 0.5,
    "keep_bundles": 2,
}


def test_merge_reloaded_applies_training_keys():
    loaded = Config().replace("training", **TRAINING_CHANGES).replace("retraining", **RETRAINING_CHANGES)
    merged, waiting = merge_reloaded(Config(), loaded)
    for key, value in TRAINING_CHANGES.items():
        assert getattr(merged.training, key) == value, f"training.{key} was not applied"
    for key, value in RETRAINING_CHANGES.items():
        assert getattr(merged.retraining, key) == value, f"retraining.{key} was not applied"
    assert waiting == []


def test_merge_reloaded_keeps_worker_settings():
    loaded = Config().replace("training", threads=2, epochs=7).replace("retraining", worker_nice=3, every_bars=60)
    merged, waiting = merge_reloaded(Config(), loaded)
    assert merged.training.threads == Config().training.threads
    assert merged.retraining.worker_nice == Config().retraining.worker_nice
    assert merged.training.epochs == 7
    assert merged.retraining.every_bars == 60
    assert waiting == ["training.threads", "retraining.worker_nice"]


def test_merge_reloaded_rejects_invalid_result():
    # Valid on its own, but the live buffer size no longer fits the window that stays until a
    # restart: the buffer must hold warm-up, one window and the minimum examples.
    loaded = Config().replace("features", window=10).replace("server", max_bars_per_stream=670)
    with pytest.raises(ConfigError, match="max_bars_per_stream"):
        merge_reloaded(Config(), loaded)


# In-process daemons


def test_daemon_restart_resumes_streams(daemon_state, eurusd):
    """A stopped daemon resumes its streams; test_ingest checks that the signals match."""
    hello = {"client": "ea-1", "symbol": "EURUSD", "timeframe": "H1", "digits": eurusd.digits, "point": eurusd.point}
    first = start_daemon(daemon_state, train=False)
    try:
        with SigBridgeClient(first.endpoint) as client:
            client.hello(**hello)
            client.send_bars("EURUSD", "H1", eurusd.bars[:300])
    finally:
        first.stop()

    second = start_daemon(daemon_state, train=False)
    try:
        with SigBridgeClient(second.endpoint) as client:
            welcome = client.hello(**hello)
            reply = client.send_bars("EURUSD", "H1", eurusd.bars[300:301])
    finally:
        second.stop()
    assert welcome["bars_held"] == 300
    assert welcome["last_bar_time"] == int(eurusd.bars.time[299])
    assert welcome["model_version"] == 1
    assert reply["type"] == "signal"
    assert (reply["accepted"], reply["duplicates"]) == (1, 0)


@pytest.mark.parametrize("train", [True, False], ids=["trainer", "no-train"])
def test_daemon_reload_applies_retraining(daemon_state, eurusd, caplog, train):
    """A reload changes the schedule, the training settings and keep_bundles without a restart.

    The trainer runs in lockstep, so a due stream would retrain inside `observe`.
    """
    current = daemon_state.replace("retraining", enabled=True, every_bars=60, every_seconds=0, keep_bundles=5)
    reloaded = current.replace("retraining", every_bars=120, keep_bundles=2, promotion_margin=0.5)
    reloaded = reloaded.replace("training", epochs=2, seed=7)
    store = BarStore(current.paths.bars_database, synchronous=current.storage.synchronous)
    caplog.set_level(logging.INFO, logger="sigbridge")
    daemon = _Daemon(current, store, train, Notifier(None), threading.Event(), lambda: reloaded, lockstep=True)
    try:
        daemon.reload()
        assert daemon.config.retraining == reloaded.retraining
        assert daemon.config.training == reloaded.training
        assert daemon.registry.keep_bundles == 2
        assert not [record for record in caplog.records if "after a restart" in record.getMessage()]
        assert "reloaded configuration and model bundles" in caplog.text
        outcome = "applied" if train else "training is off in this daemon (--no-train)"
        assert f"config key retraining.every_bars changed to 120; {outcome}" in caplog.text
        assert f"config key training.seed changed to 7; {outcome}" in caplog.text

        if train:
            # 60 bars after the bundle's last training bar: due under the old every_bars only.
            stream = Stream(
                StreamKey("ea-1", "EURUSD", "H1"),
                point=eurusd.point,
                digits=eurusd.digits,
                utc_offset=0,
                features=current.features,
                max_bars=current.server.max_bars_per_stream,
            )
            stream.append(eurusd.bars[: TRAIN_BARS + 60])
            daemon.trainer.observe(stream)
            assert "trainer uses the reloaded config retraining=True every_bars=120 every_seconds=0" in caplog.text
            assert "retraining started" not in caplog.text
    finally:
        if daemon.trainer is not None:
            assert daemon.trainer.stop(30)
        store.close()


def copy_bundle(models_dir: Path, version: int) -> Path:
    """Copy v000001 of EURUSD H1 as `version`, with the manifest's version changed to match."""
    source = models_dir / "EURUSD_H1" / "v000001"
    target = source.with_name(f"v{version:06d}")
    shutil.copytree(source, target)
    manifest = json.loads((target / "bundle.json").read_text())
    manifest["version"] = version
    (target / "bundle.json").write_text(json.dumps(manifest))
    return target


def test_damaged_bundles_fall_back_to_previous(daemon_state, eurusd, caplog):
    import hashlib

    import keras

    models_dir = daemon_state.paths.models_dir
    # v2: model.keras damaged after it was written (the SHA-256 no longer matches).
    damaged = copy_bundle(models_dir, 2)
    with (damaged / "model.keras").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 64)
    # v3: a complete bundle whose model needs unsafe deserialization (a Lambda layer).
    unsafe = copy_bundle(models_dir, 3)
    inputs = keras.Input(shape=(40, 4))
    outputs = keras.layers.Lambda(lambda values: values[:, -1, :2] * 2.0)(inputs)
    keras.Model(inputs, outputs).save(unsafe / "model.keras")
    manifest = json.loads((unsafe / "bundle.json").read_text())
    manifest["model_sha256"] = hashlib.sha256((unsafe / "model.keras").read_bytes()).hexdigest()
    (unsafe / "bundle.json").write_text(json.dumps(manifest))
    # v4: a torn bundle, as a crash while saving leaves it: no manifest yet.
    torn = copy_bundle(models_dir, 4)
    (torn / "bundle.json").unlink()
    # A staging folder of a save that never finished is not a bundle at all.
    shutil.copytree(models_dir / "EURUSD_H1" / "v000001", models_dir / "EURUSD_H1" / ".v000005-partial")

    with caplog.at_level(logging.ERROR):
        running = start_daemon(daemon_state, train=False)
        try:
            with SigBridgeClient(running.endpoint) as client:
                welcome = client.hello(client="ea-1", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
                reply = client.send_bars("EURUSD", "H1", eurusd.bars[:300])
        finally:
            running.stop()
    assert welcome["model_version"] == 1
    assert reply["model_version"] == 1
    skipped = [record.getMessage() for record in caplog.records if "skipping damaged model bundle" in record.getMessage()]
    assert [re.search(r"model_version=(\d+)", message).group(1) for message in skipped] == ["4", "3", "2"]
    assert all(record.levelno == logging.ERROR for record in caplog.records if "skipping damaged" in record.getMessage())


# `sigbridge serve` as a child process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServeProcess:
    """`sigbridge serve --no-train` on a free loopback port with its own state folder and log file."""

    def __init__(self, tmp_path: Path, models_dir: Path, notify: NotifyListener, *, extra_toml: str = "", args=()):
        self.state_dir = tmp_path / "state"
        if not self.state_dir.exists():
            shutil.copytree(models_dir, self.state_dir / "models")
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.config_path = tmp_path / "sigbridge.toml"
        self.write_config(extra_toml)
        self.log_path = tmp_path / f"serve-{uuid.uuid4().hex[:8]}.log"
        env = dict(os.environ, NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="1000000", TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("WATCHDOG_PID", None)
        command = [
            sys.executable, "-m", "sigbridge", "serve", "--config", str(self.config_path),
            "--state-dir", str(self.state_dir), "--no-train", *args,
        ]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def write_config(self, extra_toml: str) -> None:
        self.config_path.write_text(f'[server]\nbind = "{self.endpoint}"\n{extra_toml}')

    def log(self) -> str:
        return self.log_path.read_text()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def stored_bars(state_dir: Path, client: str) -> dict[int, tuple]:
    """Bars stored for a client's EURUSD H1 stream, by bar time, read with a plain SQLite connection."""
    with sqlite3.connect(state_dir / "bars.sqlite3") as connection:
        rows = connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM bars JOIN streams ON streams.id = bars.stream_id "
            "WHERE streams.client = ? AND streams.symbol = 'EURUSD' AND streams.timeframe = 'H1'",
            (client,),
        ).fetchall()
    return {row[0]: row for row in rows}


def bar_row(bars, index: int) -> tuple:
    return tuple(getattr(bars, name)[index].item() for name in COLUMNS)


def hello_for(eurusd, client="ea-1"):
    return {"client": client, "symbol": "EURUSD", "timeframe": "H1", "digits": eurusd.digits, "point": eurusd.point}


def test_serve_sighup_reloads_without_dropping_connections(tmp_path, trained_models_dir, eurusd):
    listener = NotifyListener(str(tmp_path / "notify"))
    daemon = ServeProcess(tmp_path, trained_models_dir, listener, extra_toml="[signal]\nthreshold = 0.1\n")
    try:
        listener.wait_for("READY=1")
        with SigBridgeClient(daemon.endpoint, timeout=20) as client:
            client.hello(**hello_for(eurusd))
            first = client.send_bars("EURUSD", "H1", eurusd.bars[:300])

            # Live keys and a key that needs a restart.
            daemon.write_config(
                "[signal]\nthreshold = 0.9999\n[features]\nwindow = 30\n[retraining]\nevery_bars = 60\n"
            )
            daemon.signal(signal.SIGHUP)
            listener.wait_for("READY=1", count=2)
            stricter = client.send_bars("EURUSD", "H1", eurusd.bars[300:301])

            # An invalid config is rejected and the running one stays.
            daemon.write_config("[signal]\nthreshold = 5.0\n")
            daemon.signal(signal.SIGHUP)
            listener.wait_for("READY=1", count=3)
            after_rejection = client.send_bars("EURUSD", "H1", eurusd.bars[301:302])

            # A newer bundle on disk is published.
            daemon.write_config("[signal]\nthreshold = 0.9999\n")
            copy_bundle(daemon.state_dir / "models", 2)
            daemon.signal(signal.SIGHUP)
            listener.wait_for("READY=1", count=4)
            upgraded = client.send_bars("EURUSD", "H1", eurusd.bars[302:303])
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == ExitCode.OK
    finally:
        daemon.kill()
        listener.close()

    log = daemon.log()
    assert first["type"] == "signal"
    # The same connection kept its route: no new hello was needed after any reload.
    assert stricter["type"] == "signal"
    assert stricter["direction"] == 0
    assert "config key features.window changed; the new value takes effect after a restart" in log
    assert "config key retraining.every_bars changed; the new value takes effect after a restart" not in log
    assert "config key retraining.every_bars changed to 60; training is off in this daemon (--no-train)" in log
    assert "rejected the reloaded configuration; keeping the current one" in log
    assert "`signal.threshold` must be in [0, 1)" in log
    assert after_rejection["type"] == "signal"
    assert after_rejection["direction"] == 0
    assert upgraded["model_version"] == 2
    assert "loaded model bundle on reload symbol=EURUSD timeframe=H1 model_version=2" in log
    assert listener.count("RELOADING=1") == 3


def test_serve_kill_9_restart_then_sigterm(tmp_path, trained_models_dir, eurusd):
    """SIGKILL loses no acknowledged bar. The restarted daemon resumes, notifies systemd, and on
    SIGTERM replies to every queued request and exits 0."""
    kill_after = random.Random(os.getpid()).randint(3, 15)
    listener = NotifyListener(f"@sigbridge-test-{uuid.uuid4().hex}")
    daemon = ServeProcess(tmp_path, trained_models_dir, listener)
    acknowledged = 0
    try:
        listener.wait_for("READY=1")
        with SigBridgeClient(daemon.endpoint, timeout=20) as client:
            client.hello(**hello_for(eurusd))
            for message in range(kill_after):
                start = 10 * message
                assert client.send_bars("EURUSD", "H1", eurusd.bars[start : start + 10])["accepted"] == 10
                acknowledged = start + 10
            # One more request, killed while the daemon handles it.
            body = bars_message("EURUSD", "H1", eurusd.bars[acknowledged : acknowledged + 10])
            client.send_raw([encode({"v": PROTOCOL_VERSION, "id": 99, **body})])
            daemon.process.send_signal(signal.SIGKILL)
        assert daemon.wait() == -signal.SIGKILL
    finally:
        daemon.kill()
        listener.close()

    # Every acknowledged bar is on disk, value for value.
    stored = stored_bars(daemon.state_dir, "ea-1")
    assert len(stored) in (acknowledged, acknowledged + 10)
    for index in range(acknowledged):
        assert stored[int(eurusd.bars.time[index])] == bar_row(eurusd.bars, index)

    # A crash while saving a bundle leaves a staging folder behind; the restart ignores it.
    models = daemon.state_dir / "models" / "EURUSD_H1"
    shutil.copytree(models / "v000001", models / ".v000002-torn")
    (models / ".v000002-torn" / "bundle.json").unlink()

    listener = NotifyListener(f"@sigbridge-test-{uuid.uuid4().hex}")
    restarted = ServeProcess(tmp_path, trained_models_dir, listener, args=["--log-format", "json"])
    try:
        listener.wait_for("READY=1")
        with SigBridgeClient(restarted.endpoint, timeout=20) as client:
            # READY=1 comes after the bind, so the first request gets its reply.
            assert client.ping()["type"] == "pong"
            welcome = client.hello(**hello_for(eurusd))
            resumed = welcome["bars_held"]
            backfill = client.send_bars("EURUSD", "H1", eurusd.bars[: resumed + 300])
            listener.wait_for("WATCHDOG=1", count=2, timeout=10)

            # Pipeline 100 requests, then SIGTERM once the first reply arrives.
            socket_ = client._connect()
            first = resumed + 300
            for index in range(100):
                body = bars_message("EURUSD", "H1", eurusd.bars[first + index : first + index + 1])
                socket_.send(encode({"v": PROTOCOL_VERSION, "id": 1000 + index, **body}))
            replies = [client.receive()]
            restarted.signal(signal.SIGTERM)
            replies += [client.receive() for _ in range(99)]
        assert restarted.wait() == ExitCode.OK
    finally:
        restarted.kill()
        listener.close()

    # The restart resumed the stream from the database and the newest intact bundle.
    assert resumed == len(stored)
    assert welcome["last_bar_time"] == int(eurusd.bars.time[resumed - 1])
    assert welcome["model_version"] == 1
    assert backfill["type"] == "signal"
    assert (backfill["accepted"], backfill["duplicates"]) == (300, resumed)

    # Every request that reached the daemon was answered.
    assert sorted(reply["id"] for reply in replies) == list(range(1000, 1100))
    assert {reply["type"] for reply in replies} == {"signal"}

    lines = listener.lines()
    ready = lines.index("READY=1")
    stopping = lines.index("STOPPING=1")
    assert any(line.startswith("STATUS=starting") for line in lines[:ready])
    assert any(line.startswith("STATUS=serving streams=1") for line in lines[ready:stopping])
    assert lines[:stopping].count("WATCHDOG=1") >= 2
    assert ready < stopping

    # The database was flushed: every acknowledged bar is stored and the WAL is checkpointed.
    assert len(stored_bars(restarted.state_dir, "ea-1")) == first + 100
    wal = restarted.state_dir / "bars.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0

    # JSON log lines, with the ids as fields.
    entries = [json.loads(line) for line in restarted.log().splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in entries]
    assert any(entry.get("endpoint") == restarted.endpoint for entry in entries if entry["message"].startswith("listening"))
    assert any(message.startswith("restored stream client=ea-1 symbol=EURUSD") for message in messages)
    assert any(message.startswith("client connected peer=127.0.0.1:") for message in messages)
    assert any(message.startswith("replied to requests queued at shutdown") for message in messages)
    assert messages[-1] == "sigbridge daemon stopped"


# The unit file and the documented exit codes


def test_unit_file_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names /opt/sigbridge, where the README installs sigbridge; verify checks that the
    # command exists, so point it at this checkout's virtual environment.
    executable = Path(sys.executable).with_name("sigbridge")
    unit = tmp_path / "sigbridge.service"
    unit.write_text(UNIT_FILE.read_text().replace("/opt/sigbridge/.venv/bin/sigbridge", str(executable)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sigbridge.service" not in result.stderr, result.stderr


def test_unit_file_declares_service_contract():
    text = UNIT_FILE.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "StateDirectory=sigbridge",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"RestartPreventExitStatus={ExitCode.USAGE} {ExitCode.CONFIG} {ExitCode.STORAGE}",
    ):
        assert f"\n{line}\n" in text, line


def test_readme_documents_exit_codes():
    readme = (REPOSITORY / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", readme, flags=re.MULTILINE)}
    assert {int(code) for code in ExitCode} <= documented


def test_daemon_loads_every_bundle_before_ready(daemon_state, caplog):
    # The state folder has a EURUSD H1 bundle and no stored stream.
    caplog.set_level(logging.INFO, logger="sigbridge")
    running = start_daemon(daemon_state, train=False)
    running.stop()
    messages = [record.getMessage() for record in caplog.records]
    loaded = [index for index, text in enumerate(messages) if text.startswith("loaded model bundle symbol=EURUSD timeframe=H1")]
    ready = [index for index, text in enumerate(messages) if text.startswith("ready endpoint=")]
    assert loaded and ready
    assert loaded[0] < ready[0]


def test_daemon_starts_past_bad_bundle_folders(daemon_state, caplog):
    from sigbridge.models.bundle import FORMAT_VERSION, MANIFEST_FILE

    models_dir = daemon_state.paths.models_dir
    manifests = {
        "JUNK_H1": {"format": FORMAT_VERSION},
        "LIST_H1": {"format": FORMAT_VERSION, "symbol": ["GBPUSD"], "timeframe": "H1"},
        "GBPUSD_M5": {"format": FORMAT_VERSION, "symbol": "GBPUSD", "timeframe": "M5", "version": 1},
    }
    for folder, manifest in manifests.items():
        (models_dir / folder / "v000001").mkdir(parents=True)
        (models_dir / folder / "v000001" / MANIFEST_FILE).write_text(json.dumps(manifest))
    caplog.set_level(logging.INFO, logger="sigbridge")
    running = start_daemon(daemon_state, train=False)
    running.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert any(text.startswith("loaded model bundle symbol=EURUSD timeframe=H1") for text in messages)
    assert any(text.startswith("ready endpoint=") for text in messages)
