"""The state a stream reports in `welcome` and `status`, and the bars it needs before its next step."""

from __future__ import annotations

from sigbridge.config import Config, bars_for_first_signal
from sigbridge.daemon.sessions import Stream


def bars_to_train(config: Config) -> int:
    """Bars a stream needs before initial training is tried: a first window, the minimum
    examples plus the validation tail, and about three ZigZag depths whose labels are unconfirmed.
    """
    examples = config.training.min_examples / (1.0 - config.training.validation_fraction)
    unconfirmed = 2 * config.labels.depth + config.labels.backstep
    return bars_for_first_signal(config.features) + int(examples) + unconfirmed


def stream_state(stream: Stream, bundle, trainer, config: Config) -> tuple[str, str]:
    """Return the stream's state name and a human-readable message, as sent in welcome and status.

    States: "ready" (signals flow), "warming_up" (too few bars for a window or for initial
    training), "queued" and "training" (initial training pending), "waiting_for_history"
    (training needs more bars or failed and waits to retry), "no_model" (training is off).
    """
    if bundle is not None:
        needed = stream.bars_needed()
        if needed:
            return "warming_up", f"{needed} more bars needed for the first input window"
        return "ready", f"serving model_version={bundle.version}"
    key = stream.key
    state = trainer.state(key.symbol, key.timeframe) if trainer else None
    if state is not None:
        return state.state, state.message
    if trainer is None:
        return "no_model", "no model bundle for this symbol and timeframe, and training is off"
    needed = bars_needed(stream, False, trainer, config)
    return "warming_up", f"collecting history: initial training starts after {needed} more bars"


def bars_needed(stream: Stream, has_model: bool, trainer, config: Config) -> int:
    """Bars the stream needs before its first signal (with a model) or its initial training."""
    if has_model:
        return stream.bars_needed()
    state = trainer.state(stream.key.symbol, stream.key.timeframe) if trainer else None
    target = bars_to_train(config)
    if state is not None and state.state == "waiting_for_history":
        target = state.retry_at_bars
    return max(stream.bars_needed(), target - stream.bars_seen)
