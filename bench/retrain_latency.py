"""Signal latency of a client while the daemon retrains a model, against its latency while idle.

Starts `sigbridge serve` as a child process on a free loopback port, with a fresh state folder
holding a EURUSD H1 bundle trained on the first TRAIN_BARS bundled bars. One client sends those
bars as a backfill, then one closed bar every `--interval-ms`, and times each round trip:

- idle: the bars before the stream is due; no training runs;
- retrain: from the bar that makes the stream due (RETRAIN_EVERY bars after the backfill) until
  a reply carries the new model version, i.e. the retrain and the swap.

It prints p50 and p99 of both phases and their ratios, for each mode:

- process: what sigbridge does, fitting in the training worker process;
- thread: fitting in the trainer thread of the daemon process itself, the design that was
  measured and rejected (the daemon is started with `TrainingWorker.run` patched to call
  `run_job` in the calling thread).

Run: `python bench/retrain_latency.py [--quick] [--modes process thread] [--trials N]`. `main()`
returns the figures as a dict, for `python -m bench`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
EURUSD_FILE = REPOSITORY_ROOT / "examples" / "data" / "EURUSD_H1.csv"
# Bars the served model is trained on, and new bars after which the stream is due.
TRAIN_BARS = 1500
RETRAIN_EVERY = 500
MODES = ("process", "thread")


def _progress(text: str) -> None:
    print(f"retrain_latency: {text}", file=sys.stderr, flush=True)


def _free_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _config_toml(epochs: int, threads: int) -> str:
    # Defaults, except a bar trigger the bundled file can reach, no clock trigger, and a margin
    # that promotes any sane candidate, so every run ends with a swap.
    return (
        f"[training]\nepochs = {epochs}\nthreads = {threads}\n\n"
        f"[retraining]\nevery_bars = {RETRAIN_EVERY}\nevery_seconds = 0\npromotion_margin = 1000.0\n"
    )


def _percentile(samples: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(samples), q)) if samples else float("nan")


def _train_bundle(workdir: Path, epochs: int) -> Path:
    from sigbridge.barfile import read_bars
    from sigbridge.config import Config
    from sigbridge.models.publish import train_bundle

    bar_file = read_bars(EURUSD_FILE)
    models_dir = workdir / "models"
    config = Config().replace("training", epochs=epochs)
    train_bundle(
        bar_file.bars[:TRAIN_BARS], point=bar_file.point, symbol="EURUSD", timeframe="H1", config=config, models_dir=models_dir
    )
    return models_dir


def _start_daemon(mode: str, models_dir: Path, workdir: Path, epochs: int, threads: int) -> tuple[subprocess.Popen, str]:
    from sigbridge.client import ReplyTimeout, SigBridgeClient

    state_dir = workdir / f"state-{mode}-{time.monotonic_ns()}"
    shutil.copytree(models_dir, state_dir / "models")
    config_path = state_dir / "sigbridge.toml"
    config_path.write_text(_config_toml(epochs, threads))
    endpoint = _free_endpoint()
    command = [sys.executable, str(Path(__file__).resolve()), "--as-daemon", mode, "--"]
    command += ["serve", "--bind", endpoint, "--state-dir", str(state_dir), "--config", str(config_path)]
    command += ["--log-level", "WARNING"]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), environment.get("PYTHONPATH")]))
    process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment)
    deadline = time.monotonic() + 180
    with SigBridgeClient(endpoint, timeout=0.5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the daemon exited with code {process.returncode}: {' '.join(command)}")
            try:
                client.ping()
                return process, endpoint
            except ReplyTimeout:
                if time.monotonic() > deadline:
                    process.kill()
                    raise


def _stop_daemon(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_trial(mode: str, models_dir: Path, workdir: Path, *, epochs: int, threads: int, interval: float) -> dict[str, float]:
    """Run one daemon and one client; return the latencies of the idle and the retrain phase, in ms."""
    from sigbridge.barfile import read_bars
    from sigbridge.client import SigBridgeClient

    bar_file = read_bars(EURUSD_FILE)
    bars = bar_file.bars
    process, endpoint = _start_daemon(mode, models_dir, workdir, epochs, threads)
    idle: list[float] = []
    during: list[float] = []
    try:
        with SigBridgeClient(endpoint, timeout=60.0) as client:
            client.hello(client="bench", symbol="EURUSD", timeframe="H1", digits=bar_file.digits, point=bar_file.point)
            client.send_bars("EURUSD", "H1", bars[:TRAIN_BARS])
            due_index = TRAIN_BARS - 1 + RETRAIN_EVERY
            index = TRAIN_BARS
            started = None
            while True:
                # After the last bar of the file, the last bar is re-sent: a duplicate still gets a signal.
                sent = bars[min(index, len(bars) - 1) : min(index, len(bars) - 1) + 1]
                tick = time.perf_counter()
                reply = client.send_bars("EURUSD", "H1", sent)
                elapsed = (time.perf_counter() - tick) * 1000.0
                if reply["type"] != "signal":
                    raise RuntimeError(f"expected a signal reply, received {reply}")
                if index < due_index:
                    idle.append(elapsed)
                else:
                    started = started or tick
                    during.append(elapsed)
                    if reply["model_version"] != 1:
                        break
                    if time.perf_counter() - started > 900:
                        raise RuntimeError("no new model version after 900 s of retraining")
                index += 1
                time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
            retrain_seconds = time.perf_counter() - started
    finally:
        _stop_daemon(process)
    return {
        "idle_replies": len(idle),
        "idle_p50_ms": _percentile(idle, 50),
        "idle_p99_ms": _percentile(idle, 99),
        "retrain_replies": len(during),
        "retrain_p50_ms": _percentile(during, 50),
        "retrain_p99_ms": _percentile(during, 99),
        "retrain_seconds": retrain_seconds,
    }


def _print_table(results: dict[str, list[dict[str, float]]]) -> None:
    print(f"{'mode':<8} {'trial':>5} {'idle n':>7} {'idle p50':>9} {'idle p99':>9} {'retrain n':>9} "
          f"{'p50':>7} {'p99':>7} {'p50 ratio':>9} {'p99 ratio':>9} {'retrain s':>9}")
    for mode, trials in results.items():
        for number, trial in enumerate(trials, 1):
            print(
                f"{mode:<8} {number:>5} {trial['idle_replies']:>7} {trial['idle_p50_ms']:>9.2f} {trial['idle_p99_ms']:>9.2f} "
                f"{trial['retrain_replies']:>9} {trial['retrain_p50_ms']:>7.2f} {trial['retrain_p99_ms']:>7.2f} "
                f"{trial['retrain_p50_ms'] / trial['idle_p50_ms']:>9.2f} {trial['retrain_p99_ms'] / trial['idle_p99_ms']:>9.2f} "
                f"{trial['retrain_seconds']:>9.1f}"
            )
    print("(latencies in ms, round trip of one closed bar; ratio = during the retrain / idle)")


def _summary(results: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Median over trials of each figure, keyed `<mode>_<figure>`, with the p50 and p99 ratios."""
    summary: dict[str, float] = {}
    for mode, trials in results.items():
        for name in ("idle_p50_ms", "idle_p99_ms", "retrain_p50_ms", "retrain_p99_ms", "retrain_seconds"):
            summary[f"{mode}_{name}"] = statistics.median(trial[name] for trial in trials)
        summary[f"{mode}_p50_ratio"] = statistics.median(trial["retrain_p50_ms"] / trial["idle_p50_ms"] for trial in trials)
        summary[f"{mode}_p99_ratio"] = statistics.median(trial["retrain_p99_ms"] / trial["idle_p99_ms"] for trial in trials)
    return summary


def _fit_in_thread() -> None:
    """Make the daemon fit in the trainer thread instead of the worker process (the rejected design)."""
    from sigbridge.daemon import worker
    from sigbridge.models.jobs import run_job

    def run(self, job, *, stop=None):
        return run_job(job)

    worker.TrainingWorker.run = run


def _run_daemon(mode: str, sigbridge_args: list[str]) -> int:
    if mode == "thread":
        _fit_in_thread()
    from sigbridge.cli import main as sigbridge_main

    return sigbridge_main(sigbridge_args[1:] if sigbridge_args[:1] == ["--"] else sigbridge_args)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print the table, and return the medians over trials."""
    parser = argparse.ArgumentParser(prog="python bench/retrain_latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to measure (default: both)")
    parser.add_argument("--trials", type=int, default=1, help="daemons per mode (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=40, help="training.epochs of the retrain (default %(default)s)")
    parser.add_argument(
        "--threads", type=int, default=0, help="training.threads of the daemon; 0 lets TensorFlow choose (default %(default)s)"
    )
    parser.add_argument("--interval-ms", type=float, default=20.0, help="ms between closed bars (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="process mode only, one trial, 10 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.modes, args.trials, args.epochs = ["process"], 1, 10
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bench.common import machine_facts

    facts = machine_facts()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory']}; load average at start {facts['load_average_at_start']}")
    print(f"tensorflow {facts['tensorflow']}, keras {facts['keras']}, python {facts['python']}, commit {facts['commit']}")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes}
    with tempfile.TemporaryDirectory(prefix="sigbridge-retrain-bench-") as temporary:
        workdir = Path(temporary)
        _progress(f"training the served model on {TRAIN_BARS} bars")
        models_dir = _train_bundle(workdir, epochs=3)
        for trial in range(args.trials):
            for mode in args.modes:
                _progress(f"mode={mode} trial {trial + 1}/{args.trials}")
                results[mode].append(
                    _run_trial(
                        mode, models_dir, workdir, epochs=args.epochs, threads=args.threads, interval=args.interval_ms / 1000.0
                    )
                )
    _print_table(results)
    summary = _summary(results)
    for mode in args.modes:
        print(f"{mode}: p50 ratio {summary[f'{mode}_p50_ratio']:.2f}, p99 ratio {summary[f'{mode}_p99_ratio']:.2f}")
    return summary


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--as-daemon":
        sys.path.insert(0, str(REPOSITORY_ROOT))
        sys.exit(_run_daemon(sys.argv[2], sys.argv[3:]))
    sys.path.insert(0, str(REPOSITORY_ROOT))
    main()
