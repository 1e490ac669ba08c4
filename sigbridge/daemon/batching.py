"""Micro-batching: the signals of requests handled together, one forward pass per model."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sigbridge.config import SignalConfig
from sigbridge.daemon.sessions import Signal, signal_from_output
from sigbridge.models.bundle import ModelBundle

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PendingSignal:
    """A bars request whose stream has a full window and waits for the forward pass.

    Attributes:
        bundle: the model bundle published when the bars were applied. The window is scaled and
            run with this bundle even if a newer one is published meanwhile.
        window: raw features (T, F) of the window ending at `bar_time`. The stream's buffer
            never rewrites rows, so later bars of the same stream leave it unchanged.
        bar_time: time of the bar the signal is for.
        request_id: the request's `id`, echoed in the reply.
        received_at: `time.perf_counter()` when the frame was received.
        fields: reply fields known before the forward pass (symbol, timeframe, counts).
    """

    bundle: ModelBundle
    window: np.ndarray
    bar_time: int
    request_id: int
    received_at: float
    fields: dict[str, Any]


def run_signals(pending: Sequence[PendingSignal], config: SignalConfig) -> Iterator[tuple[int, Signal | None]]:
    """Compute the signals of `pending` with one forward pass per bundle.

    Yields:
        The index of each pending request in `pending` with its signal. The signal is None when
        the forward pass of its bundle failed, which is logged at ERROR with the traceback.
    """
    groups: dict[int, list[int]] = {}
    for index, item in enumerate(pending):
        groups.setdefault(id(item.bundle), []).append(index)
    for indices in groups.values():
        bundle = pending[indices[0]].bundle
        try:
            windows = bundle.scaling.apply(np.stack([pending[index].window for index in indices]))
            outputs = bundle.predictor.predict(windows)
        except Exception:  # one model's failure must not take the other models' replies with it
            logger.error(
                "forward pass failed symbol=%s timeframe=%s model_version=%s windows=%s",
                bundle.symbol,
                bundle.timeframe,
                bundle.version,
                len(indices),
                exc_info=True,
            )
            for index in indices:
                yield index, None
            continue
        logger.debug(
            "forward pass symbol=%s timeframe=%s model_version=%s windows=%s",
            bundle.symbol,
            bundle.timeframe,
            bundle.version,
            len(indices),
        )
        for index, output in zip(indices, outputs):
            yield index, signal_from_output(output, bar_time=pending[index].bar_time, bundle=bundle, config=config)
