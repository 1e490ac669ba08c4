"""`python -m bench`: sigbridge's latency, throughput, replay and memory, all measured in one run.

Prints a table with the machine and library versions in its header, then the same results as
JSON, which is also written to `--json` so that runs can be compared. Every daemon runs as a
`sigbridge serve` process on a free loopback port with a fresh state folder in a temporary
directory; nothing else is contacted.

Two daemons are measured in full: the defaults as shipped, whose bar database syncs every
acknowledged `bars` message to disk (`storage.synchronous = "full"`), and the same with
`synchronous = "normal"`, which leaves the disk out of the reply path. The other variants
change one more setting over the second.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import EURUSD_FILE, Row, machine_facts, tiled_bars
from bench.report import REPLAY_BARS

# Bars that train the benchmark's model; replay starts after them.
TRAIN_BARS = 3000
# The old per-bar replay loop copies the whole buffer per bar, so it is timed on fewer bars.
BEFORE_REPLAY_BARS = 10_000
# Retraining intervals replayed with retraining on; each retrain fits a model for tens of seconds.
RETRAIN_REPLAY_SCHEDULES = 1

SHIPPED = "as shipped"
NO_DISK_SYNC = "synchronous = normal"
NORMAL_SYNC_TOML = '[storage]\nsynchronous = "normal"\n'
# Daemons with one more setting changed: the table label, a folder name, the config file and
# how the daemon commits bar database writes (see bench/daemon.py).
CONFIG_VARIANTS = (
    ("as shipped + one commit per request (before)", "per-request-commit", "", "per-request"),
    ("normal + micro-batching off (max_batch = 1)", "unbatched", NORMAL_SYNC_TOML + "[server]\nmax_batch = 1\n", "per-batch"),
    ("normal + batch_wait_us = 500", "waiting", NORMAL_SYNC_TOML + "[server]\nbatch_wait_us = 500\n", "per-batch"),
)


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _train_bundle(workdir: Path, bars, point: float, config):
    """Train the benchmark's model (default architecture, 3 epochs) on the first TRAIN_BARS bars."""
    from sigbridge.models.bundle import load_latest_bundle
    from sigbridge.models.publish import train_bundle

    models_dir = workdir / "models"
    short = config.replace("training", epochs=3, patience=1)
    train_bundle(bars[:TRAIN_BARS], point=point, symbol="EURUSD", timeframe="H1", config=short, models_dir=models_dir)
    return models_dir, load_latest_bundle(models_dir, "EURUSD", "H1")


def _one_bar_payload(bars) -> bytes:
    from sigbridge.client import bars_message
    from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode

    return encode({"v": PROTOCOL_VERSION, "id": 123456, **bars_message("EURUSD", "H1", bars[-1:])})


def _retraining_rows() -> tuple[list[Row], dict | None]:
    """Run `bench/retrain_latency.py` (the retraining benchmark) and return its rows and figures, or a note that it is missing."""
    section = "retraining"
    if importlib.util.find_spec("bench.retrain_latency") is None:
        return [Row(section, "latency during a retrain vs idle", None, "", note="skipped: bench/retrain_latency.py is not in this tree")], None
    from bench import retrain_latency

    _progress("running bench/retrain_latency.py")
    if inspect.signature(retrain_latency.main).parameters:
        # Its quick mode measures what sigbridge runs (training in the worker process) with 10
        # epochs, which keeps the whole benchmark under 10 minutes.
        result = retrain_latency.main(["--quick"])
    else:
        result = retrain_latency.main()
    if not isinstance(result, dict):
        return [Row(section, "latency during a retrain vs idle", None, "", note="see the output of bench/retrain_latency.py above")], None
    rows = [
        Row(section, str(key), float(value), "", note="bench/retrain_latency.py --quick")
        for key, value in result.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return rows, result


def _measure(args, config, workdir: Path) -> tuple[list[Row], dict]:
    from bench import forward as forward_bench
    from bench import pipeline, report, serving
    from sigbridge.barfile import read_bars

    plan = serving.Plan.quick() if args.quick else serving.Plan.full()
    bar_file = read_bars(EURUSD_FILE)
    point, digits = bar_file.point, bar_file.digits
    copies = math.ceil((REPLAY_BARS + TRAIN_BARS) / len(bar_file.bars))
    long_bars = tiled_bars(bar_file.bars, copies)[: REPLAY_BARS + TRAIN_BARS]
    _progress(f"training the benchmark model on {TRAIN_BARS} bars")
    models_dir, bundle = _train_bundle(workdir, long_bars, point, config)

    _progress("floor: pyzmq echo and forward passes")
    floor = serving.echo_floor(_one_bar_payload(long_bars), plan=plan)
    forward = forward_bench.forward_modes(bundle.model, bundle.window, quick=args.quick)
    per_window = forward_bench.per_window_cost(bundle.model, bundle.window, (1, 8, 32, 256, 4096), quick=args.quick)

    common = {"point": point, "digits": digits}
    # Every acknowledged bar waits for a disk sync in the shipped config, so its counts are smaller.
    shipped = serving.measure_daemon(models_dir, workdir, long_bars, plan=plan.scaled(0.25), name="shipped", **common)
    fast = serving.measure_daemon(
        models_dir, workdir, long_bars, plan=plan, name="normal-sync", config_toml=NORMAL_SYNC_TOML, memory=True, **common
    )
    most = (max(plan.concurrency),)
    variants = {}
    for label, name, toml, commit in CONFIG_VARIANTS:
        # Without a config file the daemon syncs the disk at every commit, so it runs a quarter of
        # the plan, as the shipped daemon does. The others run half.
        scale = 0.25 if not toml else 0.5
        variants[label] = serving.measure_daemon(
            models_dir, workdir, long_bars, plan=plan.scaled(scale), name=name, config_toml=toml, concurrency=most, commit=commit, **common
        )
    naive = serving.naive_path(models_dir, workdir, long_bars, plan=plan, config_toml=NORMAL_SYNC_TOML, **common)

    _progress("per-bar stages and replay")
    costs = pipeline.per_bar_costs(long_bars, config, quick=args.quick)
    replay_bars = long_bars if not args.quick else long_bars[: TRAIN_BARS + 20_000]
    before_bars = BEFORE_REPLAY_BARS // (5 if args.quick else 1)
    replay = pipeline.replay_rates(replay_bars, bundle, config, point=point, backfill=TRAIN_BARS, before_bars=before_bars)
    _progress("replay with the default retraining schedule")
    replayed = RETRAIN_REPLAY_SCHEDULES * config.retraining.every_bars
    retrain_replay = pipeline.replay_with_retraining(long_bars, bundle, config, point=point, backfill=TRAIN_BARS, replayed=replayed)

    daemons = {SHIPPED: shipped, NO_DISK_SYNC: fast}
    floor_table, floor_ms = report.floor_rows(floor, forward, per_window)
    rows = floor_table
    rows += report.latency_rows(daemons, naive, floor_ms, naive_against=NO_DISK_SYNC)
    rows += report.throughput_rows(daemons, variants, plan.concurrency)
    rows += report.pipeline_rows(replay, retrain_replay, costs)
    rows += report.memory_rows(fast, NO_DISK_SYNC, shipped)
    retraining, retraining_raw = _retraining_rows()
    rows += retraining
    raw = {
        "floor": floor,
        "forward": forward,
        "per_window_us": per_window,
        "daemons": daemons,
        "variants": variants,
        "naive": naive,
        "per_bar_us": costs,
        "replay": replay,
        "replay_with_retraining": retrain_replay,
        "retrain_latency": retraining_raw,
    }
    return rows, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small counts; its figures are not comparable")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="where to write the JSON results (default %(default)s)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started = time.perf_counter()

    from bench.report import format_table
    from sigbridge.config import Config
    from sigbridge.models.device import select_device

    config = Config()
    facts = {
        **machine_facts(),
        "device": select_device(config.compute),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    workdir = Path(tempfile.mkdtemp(prefix="sigbridge-bench-"))
    try:
        rows, raw = _measure(args, config, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    facts["seconds"] = f"{time.perf_counter() - started:.0f}"
    facts["mode"] = "quick" if args.quick else "full"
    facts["load_average_at_end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())

    print(format_table(rows, facts))
    text = json.dumps({"machine": facts, "rows": [row.__dict__ for row in rows], "raw": raw}, indent=2, default=str)
    print(text)
    args.json.write_text(text + "\n")
    _progress(f"wrote {args.json}")
    return 0
