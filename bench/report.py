"""The benchmark's results table: rows with targets, from the measurements of one run."""

from __future__ import annotations

import math

from bench.common import Row

# Bars of the replay target.
REPLAY_BARS = 100_000


def _met(value: float | None, limit: float, *, below: bool) -> bool | None:
    if value is None or math.isnan(value):
        return None
    return value <= limit if below else value >= limit


def floor_rows(floor: dict, forward: list[dict], per_window: dict[str, float]) -> tuple[list[Row], float]:
    """Build the floor rows and return them with the floor in ms: echo p50 plus the fastest forward p50."""
    fastest = min(way["p50_ms"] for way in forward if "p50_ms" in way)
    floor_ms = floor["p50_ms"] + fastest
    rows = [
        Row("floor", f"pyzmq DEALER/ROUTER echo, {floor['bytes']} B, p50", floor["p50_ms"], "ms"),
        Row("floor", "pyzmq echo p99", floor["p99_ms"], "ms"),
    ]
    for way in forward:
        if "p50_ms" in way:
            rows.append(Row("forward, batch 1", way["name"], way["p50_ms"], "ms", note=way["what"]))
    rows.append(Row("floor", "floor = echo p50 + fastest forward p50", floor_ms, "ms"))
    for label, cost in per_window.items():
        rows.append(Row("forward per window", label, cost, "us/window"))
    return rows, floor_ms


def latency_rows(daemons: dict[str, dict], naive: dict, floor_ms: float, *, naive_against: str) -> list[Row]:
    """Build the rows of each daemon's one-client latency against the targets, and the `model.predict` ratio."""
    section = "end to end, 1 client"
    rows = []
    for label, result in daemons.items():
        p50, p99 = result["latency_p50_ms"], result["latency_p99_ms"]
        ratio = p50 / floor_ms
        rows += [
            Row(section, f"{label}: p50", p50, "ms"),
            Row(section, f"{label}: p99", p99, "ms", "< 5 ms", _met(p99, 5.0, below=True)),
            Row(section, f"{label}: p50 / floor", ratio, "x", "<= 3x", _met(ratio, 3.0, below=True)),
        ]
    speedup = naive["latency_p50_ms"] / daemons[naive_against]["latency_p50_ms"]
    rows += [
        Row(section, f"model.predict daemon ({naive_against}): p50", naive["latency_p50_ms"], "ms", note=f"{naive['signals']} bars"),
        Row(section, f"model.predict p50 / sigbridge p50 ({naive_against})", speedup, "x", ">= 50x", _met(speedup, 50.0, below=False)),
    ]
    return rows


def throughput_rows(daemons: dict[str, dict], variants: dict[str, dict], concurrency: tuple[int, ...]) -> list[Row]:
    rows = []
    most = max(concurrency)
    for label, result in daemons.items():
        for count in concurrency:
            target, met = ("", None)
            if count == most:
                target, met = ">= 2000/s", _met(result[f"throughput_{count}_per_s"], 2000.0, below=False)
            rate, p99 = result[f"throughput_{count}_per_s"], result[f"throughput_{count}_p99_ms"]
            rows.append(Row("throughput", f"{label}: {count} clients", rate, "signals/s", target, met, note=f"p99 {p99:.2f} ms"))
    for label, result in variants.items():
        rate, p99 = result[f"throughput_{most}_per_s"], result[f"throughput_{most}_p99_ms"]
        note = f"p99 {p99:.2f} ms; 1 client p50 {result['latency_p50_ms']:.3f} ms"
        rows.append(Row("throughput", f"{label}: {most} clients", rate, "signals/s", note=note))
    return rows


def pipeline_rows(replay: dict, retrain_replay: dict, costs: dict) -> list[Row]:
    scaled_seconds = replay["replay_seconds"] * REPLAY_BARS / replay["replayed_bars"]
    retrain_note = f"{retrain_replay['bars']} bars, {retrain_replay['retrain_attempts']} retrains due, {retrain_replay['seconds']:.0f} s"
    return [
        Row("replay", f"{replay['replayed_bars']} bars, features + inference", replay["replay_bars_per_s"], "bars/s"),
        Row("replay", f"{REPLAY_BARS} bars without retraining", scaled_seconds, "s", "< 30 s", _met(scaled_seconds, 30.0, below=True)),
        Row("replay", "stream stage, bulk append (after)", replay["features_bars_per_s"], "bars/s"),
        Row(
            "replay",
            "stream stage, per-bar append (before)",
            replay["before_features_bars_per_s"],
            "bars/s",
            note=f"measured on {replay['before_bars']} bars",
        ),
        Row("replay", "with the default retraining schedule", retrain_replay["bars_per_s"], "bars/s", note=retrain_note),
        Row("per bar, 20,000 held", "features: pandas recompute of the history (before)", costs["features_recompute_us"], "us"),
        Row("per bar, 20,000 held", "features: incremental update (after)", costs["features_incremental_us"], "us"),
        Row("per bar, 20,000 held", "buffer: concatenate (before)", costs["append_concatenate_us"], "us"),
        Row("per bar, 20,000 held", "buffer: preallocated (after)", costs["append_buffer_us"], "us"),
        Row("per bar, 20,000 held", "validation: array checks (before, timed on 2 bars)", costs["validate_arrays_us"], "us"),
        Row("per bar, 20,000 held", "validation: one-bar scalar checks (after)", costs["validate_one_bar_us"], "us"),
        Row("per bar, 20,000 held", "Stream.append + latest_window", costs["stream_append_window_us"], "us"),
    ]


def memory_rows(measured: dict, label: str, started: dict) -> list[Row]:
    """Build the memory rows of the daemon `measured` (labelled `label`) and the start-up rows of `started`.

    Growth is measured from the end of the warm-up, the one-client trials: before it, the
    background XLA compilation and the first forward passes allocate once.
    """
    warm = measured["rss_warm_mib"]
    growth = (measured["rss_end_mib"] / warm - 1.0) * 100.0
    second_half = (measured["rss_end_mib"] / measured["rss_half_mib"] - 1.0) * 100.0
    return [
        Row("memory", f"{label}: resident after the streams opened", measured["rss_start_mib"], "MiB", note=f"{measured['streams']} streams"),
        Row("memory", f"{label}: resident after {measured['signals_at_warm']} signals (warm)", warm, "MiB"),
        Row("memory", f"{label}: resident after {measured['signals_driven']} signals", measured["rss_end_mib"], "MiB"),
        Row("memory", f"{label}: growth from warm", growth, "%", "< 5%", _met(growth, 5.0, below=True)),
        Row("memory", f"{label}: growth over the second half", second_half, "%"),
        Row("start-up", "start to listening (ping answered)", started["start_to_listening_s"], "s"),
        Row("start-up", "start to first signal (model loaded and traced)", started["start_to_first_signal_s"], "s"),
    ]


def format_table(rows: list[Row], facts: dict) -> str:
    lines = ["sigbridge benchmark", *(f"  {key}: {value}" for key, value in facts.items()), ""]
    header = f"{'section':<22} {'measurement':<58} {'value':>12} {'unit':<10} {'target':<10} {'met':<4} note"
    lines += [header, "-" * len(header)]
    for row in rows:
        if row.value is None:
            value = "skipped"
        else:
            value = f"{row.value:,.3f}" if abs(row.value) < 100 else f"{row.value:,.0f}"
        met = ""
        if row.met is not None:
            met = "yes" if row.met else "NO"
        lines.append(f"{row.section:<22} {row.name:<58} {value:>12} {row.unit:<10} {row.target:<10} {met:<4} {row.note}")
    return "\n".join(lines)
