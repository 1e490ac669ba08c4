"""The daemon measured over loopback TCP: latency, throughput, memory and start-up time."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import percentile
from bench.daemon import DaemonProcess
from bench.load import ClientPool

# Bars each client sends in one message before it streams, as an EA sends history on start-up.
BACKFILL = 500
# Bars between the slices of two clients in the long series, so their streams differ.
CLIENT_OFFSET = 2000


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much to measure; `quick` runs shrink every count for a smoke test.

    Attributes:
        latency_signals: bars per trial of the one-client latency.
        trials: trials per figure; the table shows the median over trials.
        concurrency: client counts of the throughput sweep.
        throughput_signals: signals per trial for each client count.
        memory_signals: signals driven through the daemon before its memory is read again.
        naive_signals: bars sent to the `model.predict` daemon, whose calls take about 0.1 s.
        bars_per_client: bars in each client's slice of the long series.
    """

    latency_signals: int
    trials: int
    concurrency: tuple[int, ...]
    throughput_signals: dict[int, int]
    memory_signals: int
    naive_signals: int
    bars_per_client: int

    @classmethod
    def full(cls) -> Plan:
        return cls(1000, 3, (1, 8, 32), {1: 1000, 8: 3000, 32: 6000}, 100_000, 100, 14_000)

    @classmethod
    def quick(cls) -> Plan:
        return cls(200, 2, (1, 8, 32), {1: 200, 8: 800, 32: 1600}, 10_000, 30, 4000)

    def scaled(self, factor: float) -> Plan:
        """Return the same plan with the latency and throughput counts multiplied by `factor`."""
        return dataclasses.replace(
            self,
            latency_signals=max(50, int(self.latency_signals * factor)),
            throughput_signals={count: max(50, int(signals * factor)) for count, signals in self.throughput_signals.items()},
        )


def client_slices(long_bars, clients: int, plan: Plan) -> list:
    slices = []
    for number in range(clients):
        first = number * CLIENT_OFFSET
        if first + plan.bars_per_client > len(long_bars):
            raise ValueError(f"the long series has {len(long_bars)} bars, too few for {clients} clients")
        slices.append(long_bars[first : first + plan.bars_per_client])
    return slices


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def measure_daemon(
    models_dir: Path,
    workdir: Path,
    long_bars,
    *,
    point: float,
    digits: int,
    plan: Plan,
    name: str,
    config_toml: str = "",
    concurrency: tuple[int, ...] | None = None,
    memory: bool = False,
    commit: str = "per-batch",
) -> dict:
    """Start a daemon with `config_toml` over the defaults and measure it.

    Args:
        concurrency: client counts to sweep; `plan.concurrency` when None.
        commit: how the daemon commits bar database writes; see `DaemonProcess`.
        memory: after the sweep, drive the daemon to `plan.memory_signals` signals and read its
            resident memory halfway and at the end. It is also read after the streams opened
            and after the one-client trials, once the background XLA compilation (about 60 MiB
            of compiler memory) and the first forward passes have run.

    Returns:
        Start-up times, one-client latency p50/p99, and per client count signals/s and p50/p99,
        all medians over `plan.trials` trials; with `memory`, the resident memory in MiB.
    """
    concurrency = concurrency or plan.concurrency
    clients = max(concurrency)
    daemon = DaemonProcess(models_dir, workdir, name, config_toml=config_toml, commit=commit)
    results: dict = {"config": config_toml.strip() or "defaults", "streams": clients}
    _progress(f"starting a daemon ({name}: {' '.join(config_toml.split()) or 'defaults'})")
    results["start_to_listening_s"] = daemon.start()
    pool = ClientPool(daemon.endpoint, client_slices(long_bars, clients, plan), point=point, digits=digits)
    try:
        pool.open(BACKFILL, range(1))
        results["start_to_first_signal_s"] = time.perf_counter() - daemon.started_at
        pool.open(BACKFILL, range(1, clients))
        results["rss_start_mib"] = daemon.resident_memory_mib()

        _progress(f"{name}: one client, {plan.trials} x {plan.latency_signals} bars")
        trials = [pool.sequential_latency(plan.latency_signals) for _ in range(plan.trials)]
        results["latency_p50_ms"] = statistics.median(percentile(samples, 50) for samples in trials) * 1e3
        results["latency_p99_ms"] = statistics.median(percentile(samples, 99) for samples in trials) * 1e3
        results["rss_warm_mib"] = daemon.resident_memory_mib()
        results["signals_at_warm"] = pool.signals

        for count in concurrency:
            signals = plan.throughput_signals[count]
            _progress(f"{name}: {count} concurrent clients, {plan.trials} x {signals} signals")
            runs = [pool.closed_loop(count, signals) for _ in range(plan.trials)]
            results[f"throughput_{count}_per_s"] = statistics.median(rate for rate, _samples in runs)
            results[f"throughput_{count}_p50_ms"] = statistics.median(percentile(samples, 50) for _rate, samples in runs) * 1e3
            results[f"throughput_{count}_p99_ms"] = statistics.median(percentile(samples, 99) for _rate, samples in runs) * 1e3

        if memory:
            _progress(f"{name}: driving the daemon to {plan.memory_signals} signals with {clients} clients")
            halfway = None
            while pool.signals < plan.memory_signals:
                pool.closed_loop(clients, min(10_000, plan.memory_signals - pool.signals))
                if halfway is None and pool.signals >= plan.memory_signals / 2:
                    halfway = daemon.resident_memory_mib()
            results["rss_half_mib"] = halfway
            results["rss_end_mib"] = daemon.resident_memory_mib()
        results["signals_driven"] = pool.signals
    finally:
        pool.close()
        daemon.stop()
    return results


def naive_path(models_dir: Path, workdir: Path, long_bars, *, point: float, digits: int, plan: Plan, config_toml: str) -> dict:
    """Time one client against a daemon whose forward passes call `model.predict`."""
    daemon = DaemonProcess(models_dir, workdir, "naive", forward="model-predict", config_toml=config_toml)
    _progress(f"starting a daemon that calls model.predict; {plan.naive_signals} bars")
    daemon.start()
    pool = ClientPool(daemon.endpoint, client_slices(long_bars, 1, plan), point=point, digits=digits)
    try:
        pool.open(BACKFILL, range(1))
        samples = pool.sequential_latency(plan.naive_signals)
    finally:
        pool.close()
        daemon.stop()
    return {"latency_p50_ms": percentile(samples, 50) * 1e3, "latency_p99_ms": percentile(samples, 99) * 1e3, "signals": len(samples)}


def echo_floor(payload: bytes, *, plan: Plan) -> dict:
    """Time round trips of `payload` through a bare ROUTER echo process."""
    from bench import echo
    from bench.daemon import free_endpoint

    endpoint = free_endpoint()
    process = echo.start(endpoint)
    try:
        trials = [echo.round_trips(endpoint, payload, plan.latency_signals * 2) for _ in range(plan.trials)]
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "p50_ms": statistics.median(percentile(samples, 50) for samples in trials) * 1e3,
        "p99_ms": statistics.median(percentile(samples, 99) for samples in trials) * 1e3,
        "bytes": len(payload),
        "round_trips": int(sum(len(samples) for samples in trials)),
        "all_p50_ms": float(np.median(np.concatenate(trials))) * 1e3,
    }
