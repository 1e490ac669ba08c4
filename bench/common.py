"""Helpers shared by the benchmark sections: statistics, machine facts, memory and test data."""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
EURUSD_FILE = REPOSITORY_ROOT / "examples" / "data" / "EURUSD_H1.csv"


@dataclasses.dataclass
class Row:
    """One line of the results table.

    Attributes:
        section: table section, e.g. "floor" or "end to end".
        name: what was measured.
        value: the figure, in `unit`; None when the row was skipped.
        unit: e.g. "ms", "signals/s", "x".
        target: the target as text, or "" when there is none.
        met: whether the target is met, or None when there is none.
        note: how it was measured or why it was skipped.
    """

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


def percentile(samples: list[float] | np.ndarray, q: float) -> float:
    """Return the q-th percentile (0-100) with linear interpolation, or NaN for no samples."""
    if len(samples) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def median_of_trials(trial: Callable[[], float], trials: int) -> tuple[float, list[float]]:
    """Run `trial` several times and return the median of its results with all of them."""
    results = [trial() for _ in range(trials)]
    return statistics.median(results), results


def time_calls(function: Callable[[], object], calls: int, warm_up: int = 10) -> np.ndarray:
    """Time each of `calls` calls of `function`, after `warm_up` untimed ones; return the seconds per call."""
    for _ in range(warm_up):
        function()
    samples = np.empty(calls)
    for index in range(calls):
        started = time.perf_counter()
        function()
        samples[index] = time.perf_counter() - started
    return samples


def resident_memory_mib(pid: int) -> float:
    """Return the resident set size of a process in MiB, read from /proc (Linux only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line; is the process alive?")


def machine_facts() -> dict[str, str]:
    """Collect the CPU, memory, OS and library versions for the table header and the JSON."""
    import keras
    import msgpack
    import tensorflow as tf
    import zmq

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
        )
        memory = f"{memory_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "gpu": ", ".join(gpu.name for gpu in gpus) or "none",
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(str(part) for part in msgpack.version),
        "commit": _git_commit(),
        "load_average_at_start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' with uncommitted changes' if dirty else ''}"


def tiled_bars(bars, copies: int):
    """Repeat real bars `copies` times as one longer series with increasing times.

    Copy k is shifted in time to start one bar period after copy k-1 ends, and the last copy
    keeps the real times, so no bar lies in the future (the daemon rejects those). Each copy's
    prices are scaled so that it opens at the previous copy's last close. The bar-to-bar moves,
    spreads and volumes are the real ones; only the junctions between copies are synthetic.
    """
    from sigbridge.bars import Bars

    period = int(np.median(np.diff(bars.time)))
    span = int(bars.time[-1] - bars.time[0]) + period
    times, opens, highs, lows, closes, volumes, spreads = [], [], [], [], [], [], []
    scale = 1.0
    for copy in range(copies):
        times.append(bars.time - (copies - 1 - copy) * span)
        opens.append(bars.open * scale)
        highs.append(bars.high * scale)
        lows.append(bars.low * scale)
        closes.append(bars.close * scale)
        volumes.append(bars.tick_volume)
        spreads.append(bars.spread)
        # The next copy opens at this copy's last close.
        scale *= float(bars.close[-1]) / float(bars.open[0])
    return Bars.from_columns(
        np.concatenate(times),
        np.concatenate(opens),
        np.concatenate(highs),
        np.concatenate(lows),
        np.concatenate(closes),
        np.concatenate(volumes),
        np.concatenate(spreads),
    )
