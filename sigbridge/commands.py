"""Implementations of the `sigbridge` subcommands; `cli.py` parses arguments and maps errors."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sigbridge.barfile import BarFile, BarFileError, read_bars
from sigbridge.config import Config
from sigbridge.daemon.codes import ExitCode


def _stream_names(args: argparse.Namespace, bar_file: BarFile) -> tuple[str, str]:
    symbol = args.symbol or bar_file.symbol
    timeframe = args.timeframe or bar_file.timeframe
    if not symbol or not timeframe:
        raise BarFileError(
            "cannot tell the symbol and timeframe from the file name; pass --symbol and --timeframe",
            path=str(args.bars),
            line=None,
            column=None,
        )
    return symbol, timeframe.upper()


def run_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon until SIGTERM or SIGINT, then end the process with exit code 0.

    A daemon that stopped cleanly ends with `os._exit`, without interpreter shutdown, so this
    function returns only by raising, for example on an invalid configuration.
    """
    from sigbridge.cli import resolve_config  # noqa: PLC0415
    from sigbridge.daemon.service import run_daemon  # noqa: PLC0415

    # SIGHUP reads the same file with the same command-line overrides.
    run_daemon(config, train=not args.no_train, load_config=lambda: resolve_config(args), lockstep=args.lockstep)
    # NOTE: after a reload had replaced a model, interpreter shutdown aborted the process in about
    # half of the test runs (SIGABRT in TensorFlow 2.21's C++ teardown: "terminate called ...
    # exception not rethrown"), and a trainer thread past its deadline may still be inside
    # TensorFlow. The database is closed and the replies are sent by now, so skip that teardown.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(ExitCode.OK)


def run_keygen(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.daemon.security import read_public_key, write_key_pair  # noqa: PLC0415

    try:
        public_path, secret_path = write_key_pair(args.out, args.name, force=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"sigbridge keygen: {error}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"wrote {public_path} (public) and {secret_path} (secret, mode 0600)")
    print(f"public key: {read_public_key(public_path)}")
    return ExitCode.OK


def run_feed(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.client import SigBridgeClient, describe, feed  # noqa: PLC0415

    bar_file = read_bars(args.bars)
    symbol, timeframe = _stream_names(args, bar_file)
    hello = {
        "client": args.client,
        "symbol": symbol,
        "timeframe": timeframe,
        "digits": bar_file.digits,
        "point": bar_file.point,
        "utc_offset": args.utc_offset,
    }
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(args.out.open("w", newline="")) if args.out else sys.stdout
        client = stack.enter_context(SigBridgeClient(args.endpoint, timeout=args.timeout, curve=_curve_keys(args)))
        summary = feed(
            client, bar_file.bars, hello=hello, backfill=args.backfill, wait_model=args.wait_model, out=out, progress=sys.stderr
        )
    print(describe(summary), file=sys.stderr)
    return ExitCode.OK


def _curve_keys(args: argparse.Namespace) -> tuple[bytes, bytes, bytes] | None:
    """Read the CURVE keys of `feed` from --server-key and --client-key; None when neither is given."""
    from sigbridge.config import ConfigError  # noqa: PLC0415
    from sigbridge.daemon.security import read_key_pair, read_public_key  # noqa: PLC0415

    if args.server_key is None and args.client_key is None:
        return None
    if args.server_key is None or args.client_key is None:
        raise ConfigError("pass both --server-key and --client-key to connect with CURVE, or neither")
    public_key, secret_key = read_key_pair(args.client_key)
    return read_public_key(args.server_key).encode(), public_key, secret_key


def run_train(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.models.device import select_device  # noqa: PLC0415
    from sigbridge.models.evaluation import walk_forward  # noqa: PLC0415
    from sigbridge.models.publish import train_bundle  # noqa: PLC0415

    select_device(config.compute)
    bar_file = read_bars(args.bars)
    symbol, timeframe = _stream_names(args, bar_file)
    metrics = {}
    if not args.no_walk_forward:
        report = walk_forward(bar_file.bars, bar_file.point, config)
        print(f"walk-forward out-of-sample evaluation of {symbol} {timeframe}, {len(bar_file.bars)} bars:")
        print(f"{'fold':>4} {'trained until':>16} {'test bars':>12} {'examples':>8} {'mse':>7} {'model':>6} {'majority':>8} {'momentum':>8}")
        for number, fold in enumerate(report.folds, 1):
            scores = fold.scores
            until = _time_text(bar_file.bars.time[fold.trained_until_bar])
            print(
                f"{number:>4} {until:>16} {fold.test_first_bar:>5}-{fold.test_last_bar:<6} {scores.examples:>8} "
                f"{scores.mse:>7.4f} {scores.accuracy:>6.3f} {scores.majority_accuracy:>8.3f} {scores.momentum_accuracy:>8.3f}"
            )
        overall = report.overall
        print(
            f" all {'':>16} {'':>12} {overall.examples:>8} {overall.mse:>7.4f} {overall.accuracy:>6.3f} "
            f"{overall.majority_accuracy:>8.3f} {overall.momentum_accuracy:>8.3f}"
        )
        print("(model, majority and momentum columns: direction accuracy of the model and the two naive baselines)")
        metrics = {"walk_forward": overall.to_dict(), "walk_forward_folds": [fold.scores.to_dict() for fold in report.folds]}
    bundle = train_bundle(
        bar_file.bars,
        point=bar_file.point,
        symbol=symbol,
        timeframe=timeframe,
        config=config,
        models_dir=config.paths.models_dir,
        extra_metadata={"trigger": "sigbridge train", "source": str(args.bars), **metrics},
    )
    print(f"wrote model bundle model_version={bundle.version} to {bundle.path}")
    return ExitCode.OK


def run_replay(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.daemon.worker import TrainingWorker  # noqa: PLC0415
    from sigbridge.models.bundle import load_bundle  # noqa: PLC0415
    from sigbridge.models.device import select_device  # noqa: PLC0415
    from sigbridge.replay import replay_signals, summarize, train_initial_bundle, write_signals  # noqa: PLC0415

    select_device(config.compute)
    bar_file = read_bars(args.bars)
    symbol, timeframe = _stream_names(args, bar_file)
    bars = bar_file.bars
    backfill = args.train_bars if args.train_bars is not None else len(bars) // 2
    if not 0 < backfill < len(bars):
        raise BarFileError(
            f"--train-bars must be between 1 and {len(bars) - 1} for this file, received --train-bars={backfill}",
            path=str(args.bars),
            line=None,
            column=None,
        )
    if args.no_retrain:
        config = config.replace("retraining", enabled=False)
    # Training runs in the worker process the daemon uses, so replay trains the same weights as
    # `serve --lockstep` does. Models stay in memory.
    worker = TrainingWorker(
        threads=config.training.threads, nice=config.retraining.worker_nice, device=config.compute.device
    )
    try:
        if args.model is not None:
            bundle = load_bundle(args.model)
        else:
            print(f"training the initial model on the first {backfill} bars ...", file=sys.stderr)
            bundle = train_initial_bundle(
                bars[:backfill], point=bar_file.point, symbol=symbol, timeframe=timeframe, config=config, worker=worker
            )
        signals = replay_signals(bars, backfill=backfill, bundle=bundle, point=bar_file.point, config=config, worker=worker)
    finally:
        worker.close()
    if args.out is not None:
        with args.out.open("w", newline="") as out:
            write_signals(signals, out)
    summary = summarize(
        bars, signals, backfill=backfill, point=bar_file.point, config=config, model_version=bundle.version
    )
    print(summary.describe())
    return ExitCode.OK


def run_models(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.model_commands import run_models_command  # noqa: PLC0415

    return run_models_command(args, config)


def run_streams(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.stream_commands import run_streams_command  # noqa: PLC0415

    return run_streams_command(args, config)


def _time_text(seconds) -> str:
    import datetime  # noqa: PLC0415

    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_demo(args: argparse.Namespace, config: Config) -> int:
    """Start `sigbridge serve` as a child process on a free loopback port and feed it the bars."""
    from sigbridge.client import SigBridgeClient, describe, feed  # noqa: PLC0415

    bar_file = read_bars(args.bars)
    symbol, timeframe = _stream_names(args, bar_file)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="sigbridge-demo-"))
    command = [sys.executable, "-m", "sigbridge", "serve", "--bind", endpoint, "--state-dir", str(state_dir), "--log-level", args.log_level]
    if args.config is not None:
        command += ["--config", str(args.config)]
    print(f"starting the daemon: {' '.join(command)}", file=sys.stderr, flush=True)
    daemon = subprocess.Popen(command)
    try:
        with SigBridgeClient(endpoint, timeout=2.0) as client:
            _wait_until_up(client, daemon)
            client.timeout = 30.0
            hello = {
                "client": "sigbridge-demo",
                "symbol": symbol,
                "timeframe": timeframe,
                "digits": bar_file.digits,
                "point": bar_file.point,
                "utc_offset": 0,
            }
            table = io.StringIO()
            summary = feed(client, bar_file.bars, hello=hello, backfill=args.backfill, wait_model=900.0, out=table, progress=sys.stderr)
        _print_signal_table(table.getvalue())
        if args.out is not None:
            args.out.write_text(table.getvalue())
        print(describe(summary))
        print(f"model bundles are in {state_dir / 'models'}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    return ExitCode.OK if summary.signals else ExitCode.FAILURE


def _wait_until_up(client, daemon: subprocess.Popen, timeout: float = 120.0) -> None:
    from sigbridge.client import ReplyTimeout  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise ReplyTimeout(f"the daemon exited with code {daemon.returncode} before replying")
        try:
            client.ping()
            return
        except ReplyTimeout:
            if time.monotonic() > deadline:
                raise


def _print_signal_table(text: str) -> None:
    """Print the signals CSV as an aligned table: time, close, direction, score, distance, version."""
    import csv  # noqa: PLC0415

    rows = list(csv.DictReader(io.StringIO(text)))
    arrows = {"1": "BUY", "-1": "SELL", "0": "flat"}
    print(f"{'bar time (server)':<17} {'close':>9} {'signal':>6} {'score':>7} {'distance':>9} {'model':>5}")
    for row in rows:
        if row["type"] != "signal":
            print(f"{row['time_text']:<17} {row['close']:>9} {row['type']}: {row['state']}")
            continue
        print(
            f"{row['time_text']:<17} {row['close']:>9} {arrows.get(row['direction'], row['direction']):>6} "
            f"{row['score']:>7} {row['distance']:>9} {row['model_version']:>5}"
        )
