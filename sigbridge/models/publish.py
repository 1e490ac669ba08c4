"""Train a model on a stream's bars and store it as that stream's next bundle."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from sigbridge import __version__
from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.models.bundle import ModelBundle, save_bundle
from sigbridge.models.training import TrainedModel, fit, prepare


def training_metadata(bars: Bars, trained: TrainedModel, *, point: float, config: Config) -> dict[str, Any]:
    """The bundle.json metadata of a model fitted on `bars` with labels known at their last bar."""
    import keras  # noqa: PLC0415 - keep TensorFlow out of the import of this module
    import tensorflow as tf  # noqa: PLC0415

    return {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sigbridge": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "point": point,
        "bars": len(bars),
        "first_bar_time": int(bars.time[0]),
        "last_bar_time": int(bars.time[-1]),
        "trained_until_time": int(bars.time[trained.last_bar]),
        "first_example_time": int(bars.time[trained.first_bar]),
        "examples": trained.examples,
        "validation_examples": trained.validation_examples,
        "epochs": trained.epochs,
        "validation_loss": trained.validation_loss,
        "training_seconds": round(trained.seconds, 2),
        "seed": config.training.seed,
        "config": config.to_dict(),
    }


def train_bundle(
    bars: Bars,
    *,
    point: float,
    symbol: str,
    timeframe: str,
    config: Config,
    models_dir: Path,
    extra_metadata: dict[str, Any] | None = None,
) -> ModelBundle:
    """Fit on every example known at the last bar, then save the bundle atomically.

    Raises:
        NotEnoughDataError: too few labelled examples in `bars`.
        OSError: the bundle cannot be written.
    """
    known_by = len(bars) - 1
    prepared = prepare(bars, point, config, known_by=known_by)
    trained = fit(prepared, config, known_by=known_by)
    metadata = {**training_metadata(bars, trained, point=point, config=config), **(extra_metadata or {})}
    return save_bundle(
        models_dir,
        symbol=symbol,
        timeframe=timeframe,
        model=trained.model,
        scaling=trained.scaling,
        distance_scale=trained.distance_scale,
        window=config.features.window,
        config_hash=config.model_hash(),
        metadata=metadata,
    )
