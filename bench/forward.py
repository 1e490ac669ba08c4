"""Forward passes of one model in each way Keras and TensorFlow offer, timed in this process."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bench.common import percentile, time_calls
from sigbridge.models.inference import Predictor


def forward_modes(model, window: int, *, quick: bool) -> list[dict]:
    """Time batch-1 forward passes from the slowest way to the one sigbridge uses.

    Returns:
        One dict per way: name, p50_ms, p99_ms, calls, and what it is.
    """
    sample = np.random.default_rng(5).normal(size=(1, window, 4)).astype(np.float32)
    traced = tf.function(
        lambda windows: model(windows, training=False),
        input_signature=[tf.TensorSpec(shape=(None, window, 4), dtype=tf.float32)],
    )
    graph = Predictor(model, window, jit_compile=False)
    compiled = Predictor(model, window, jit_compile=True)
    compiled.wait_for_xla()
    scale = 0.2 if quick else 1.0
    ways = [
        ("model.predict", lambda: model.predict(sample, verbose=0), 30, "builds a data pipeline per call"),
        ("eager call", lambda: model(sample, training=False).numpy(), 60, "op by op in Python"),
        (
            "tf.function call",
            lambda: traced(tf.constant(sample)).numpy(),
            1000,
            "traced once; argument binding on every call (sigbridge before this change)",
        ),
        ("concrete graph function", lambda: graph.predict(sample), 2000, "Predictor without XLA"),
        (
            "concrete XLA function",
            lambda: compiled.predict(sample),
            2000,
            "Predictor with XLA at batch 1 (sigbridge's default)",
        ),
    ]
    results = []
    for name, call, calls, what in ways:
        count = max(10, int(calls * scale))
        samples = time_calls(call, count, warm_up=5)
        results.append(
            {"name": name, "p50_ms": percentile(samples, 50) * 1e3, "p99_ms": percentile(samples, 99) * 1e3, "calls": count, "what": what}
        )
    results.append({"name": "xla_in_use", "value": compiled.jit_compiled})
    return results


def per_window_cost(model, window: int, batches: tuple[int, ...], *, quick: bool) -> dict[str, float]:
    """Time one Predictor call at each batch size; return microseconds per window by label.

    The largest batch is also timed in one forward pass, without the Predictor's chunks, as
    replay ran it before (4,096 windows per pass).
    """
    predictor = Predictor(model, window)
    predictor.wait_for_xla()
    unchunked = Predictor(model, window, jit_compile=False, chunk_size=max(batches))
    costs = {}
    for batch in batches:
        windows = np.random.default_rng(batch).normal(size=(batch, window, 4)).astype(np.float32)
        calls = max(5, min(500, (2000 if not quick else 400) // batch))
        samples = time_calls(lambda: predictor.predict(windows), calls, warm_up=3)
        costs[f"batch {batch}"] = percentile(samples, 50) / batch * 1e6
    samples = time_calls(lambda: unchunked.predict(windows), calls, warm_up=3)
    costs[f"batch {max(batches)} in one pass (before)"] = percentile(samples, 50) / max(batches) * 1e6
    return costs
