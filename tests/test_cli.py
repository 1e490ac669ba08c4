"""The `sigbridge` command as a user runs it: real processes, files and sockets."""

import os
import subprocess
import sys

import pytest

from conftest import EURUSD_FILE

FAST_TOML = """
[training]
epochs = 2
patience = 1
min_examples = 200
walk_forward_folds = 2
"""


def run(*args, timeout=600):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "sigbridge", *args], capture_output=True, text=True, timeout=timeout, env=environment
    )


@pytest.fixture
def fast_toml(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_TOML)
    return path


def test_cli_train_prints_walk_forward_and_writes_bundle(tmp_path, fast_toml):
    result = run("train", "--bars", str(EURUSD_FILE), "--config", str(fast_toml), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    assert "walk-forward out-of-sample evaluation of EURUSD H1" in result.stdout
    assert "majority" in result.stdout
    assert "wrote model bundle model_version=1" in result.stdout
    assert (tmp_path / "state" / "models" / "EURUSD_H1" / "v000001" / "model.keras").is_file()

    listing = run("models", "list", "--state-dir", str(tmp_path / "state"))
    assert listing.returncode == 0, listing.stderr
    assert "EURUSD" in listing.stdout


def test_cli_replay_prints_summary(tmp_path, fast_toml):
    out = tmp_path / "signals.csv"
    result = run(
        "replay", "--bars", str(EURUSD_FILE), "--config", str(fast_toml), "--state-dir", str(tmp_path / "state"),
        "--train-bars", "2500", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "replayed 1108 bars" in result.stdout
    assert "out-of-sample direction accuracy" in result.stdout
    assert "buy-and-hold" in result.stdout
    assert len(out.read_text().splitlines()) == 1108 + 1


def test_cli_demo_prints_signals(tmp_path, fast_toml):
    result = run("demo", "--config", str(fast_toml), "--state-dir", str(tmp_path / "state"), "--backfill", "3400")
    assert result.returncode == 0, result.stderr
    assert "208 signals" in result.stdout
    assert "BUY" in result.stdout or "SELL" in result.stdout or "flat" in result.stdout


def test_cli_invalid_config_exit_code(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\nheads = 0\n")
    result = run("serve", "--config", str(path))
    assert result.returncode == 3
    assert "`model.heads` must be a positive integer" in result.stderr


def test_cli_bad_bar_file_exit_code(tmp_path):
    path = tmp_path / "EURUSD_H1.csv"
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\n2025.01.02\t00:00\t1.1\tx\t1.0\t1.05\n")
    result = run("train", "--bars", str(path), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 4
    assert "line 2" in result.stderr


def test_cli_feed_without_daemon_exit_code(tmp_path):
    result = run("feed", "--bars", str(EURUSD_FILE), "--endpoint", "tcp://127.0.0.1:9", "--timeout", "1")
    assert result.returncode == 5
    assert "no reply" in result.stderr


def test_cli_serve_bind_in_use_exit_code(daemon, tmp_path):
    # A state folder of its own: the running daemon's folder is locked, which gives exit code 6.
    result = run("serve", "--bind", daemon.endpoint, "--no-train", "--state-dir", str(tmp_path / "second-state"))
    assert result.returncode == 5
    assert "cannot bind" in result.stderr
