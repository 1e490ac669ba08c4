"""Training without look-ahead: examples, time-ordered fitting and walk-forward evaluation.

An example is the window of features ending at bar t with the label of the next ZigZag pivot
after t. Training at bar T uses only examples whose pivot was confirmed by the close of bar T,
feature scaling fitted on bars up to T, and a validation tail that comes after the training
examples in time with the examples whose pivots fall in it purged.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.models.features import FeatureScaling, compute_features, make_windows, window_end_indices
from sigbridge.models.labels import Labels, make_labels, zigzag

logger = logging.getLogger(__name__)

# Share of |distance| targets below the distance scale; larger distances are clipped to +-1.
DISTANCE_QUANTILE = 0.95


class NotEnoughDataError(ValueError):
    """Raised when the bars do not yield enough labelled examples to train."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Features and labels of a bar series, computed once and shared by folds and replay."""

    features: np.ndarray  # (N, 4) raw features, NaN during warm-up
    labels: Labels  # labels as known at the last bar of the series
    valid_ends: np.ndarray  # bar indices whose window is fully valid


def prepare(bars: Bars, point: float, config: Config, *, known_by: int | None = None) -> Prepared:
    """Compute features and ZigZag labels over all bars, with labels as known at `known_by`."""
    features = compute_features(bars.high, bars.low, bars.close, config.features)
    pivots = zigzag(bars.high, bars.low, point, config.labels)
    last = len(bars) - 1 if known_by is None else known_by
    labels = make_labels(bars.close, pivots, known_by=last)
    return Prepared(features=features, labels=labels, valid_ends=window_end_indices(len(bars), config.features))


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    model: Any
    scaling: FeatureScaling
    distance_scale: float
    examples: int
    validation_examples: int
    epochs: int
    validation_loss: float
    first_bar: int
    last_bar: int
    seconds: float


def labelled_ends(prepared: Prepared, *, known_by: int, first: int = 0) -> np.ndarray:
    """Window end bars in [first, known_by] whose label was confirmed by bar `known_by`."""
    ends = prepared.valid_ends
    ends = ends[(ends >= first) & (ends <= known_by)]
    known = prepared.labels.known_at[ends]
    return ends[(known >= 0) & (known <= known_by)]


def targets(labels: Labels, ends: np.ndarray, distance_scale: float) -> np.ndarray:
    """(B, 2) float32 targets: direction +-1 and distance scaled into [-1, 1]."""
    direction = labels.direction[ends].astype(np.float32)
    distance = np.clip(labels.distance[ends] / distance_scale, -1.0, 1.0).astype(np.float32)
    return np.stack([direction, distance], axis=1)


def fit(
    prepared: Prepared,
    config: Config,
    *,
    known_by: int,
    first: int = 0,
    initial_weights: list | None = None,
) -> TrainedModel:
    """Train a fresh model on the examples known at bar `known_by`.

    Args:
        prepared: features and labels of the series (labels may extend past `known_by`; only
            those confirmed by `known_by` are used).
        config: the full config; `training`, `model` and `features` are used.
        known_by: the last bar whose close the trainer may know.
        first: the first window end bar to use.
        initial_weights: weights to start from instead of a fresh initialisation.

    Raises:
        NotEnoughDataError: fewer than `training.min_examples` labelled examples.
    """
    from sigbridge.models.builder import build_model, compile_model, set_seed  # noqa: PLC0415 - TF import is slow

    import keras  # noqa: PLC0415

    started = time.monotonic()
    training = config.training
    ends = labelled_ends(prepared, known_by=known_by, first=first)
    if len(ends) < training.min_examples:
        raise NotEnoughDataError(
            f"{len(ends)} labelled examples are known by bar {known_by}, but training.min_examples="
            f"{training.min_examples}; send more history"
        )

    # Time-ordered split: the validation tail follows the training examples. Training examples
    # whose pivot lies inside the validation tail are purged, since their labels see it.
    validation_size = max(1, int(len(ends) * training.validation_fraction))
    validation_ends = ends[-validation_size:]
    train_ends = ends[:-validation_size]
    train_ends = train_ends[prepared.labels.pivot_index[train_ends] < validation_ends[0]]

    # Scaling is fitted on bars up to the last training window only, never on the validation tail.
    scaling = FeatureScaling.fit(prepared.features[: train_ends[-1] + 1])
    magnitudes = np.abs(prepared.labels.distance[train_ends])
    distance_scale = float(max(np.quantile(magnitudes, DISTANCE_QUANTILE), 1e-12))

    window = config.features.window
    x_train = scaling.apply(make_windows(prepared.features, train_ends, window))
    y_train = targets(prepared.labels, train_ends, distance_scale)
    x_validation = scaling.apply(make_windows(prepared.features, validation_ends, window))
    y_validation = targets(prepared.labels, validation_ends, distance_scale)

    set_seed(training.seed)
    model = build_model(config.model, window=window)
    compile_model(model, training.learning_rate)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=training.patience, restore_best_weights=True
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_validation, y_validation),
        epochs=training.epochs,
        batch_size=training.batch_size,
        shuffle=True,
        callbacks=[stopper],
        verbose=0,
    )
    losses = history.history["val_loss"]
    seconds = time.monotonic() - started
    logger.info(
        "trained model examples=%s validation=%s epochs=%s val_loss=%.5f seconds=%.1f",
        len(train_ends),
        len(validation_ends),
        len(losses),
        min(losses),
        seconds,
    )
    return TrainedModel(
        model=model,
        scaling=scaling,
        distance_scale=distance_scale,
        examples=len(train_ends),
        validation_examples=len(validation_ends),
        epochs=len(losses),
        validation_loss=float(min(losses)),
        first_bar=int(ends[0]),
        last_bar=int(known_by),
        seconds=seconds,
    )


def predict_ends(trained_model: Any, scaling: FeatureScaling, features: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Model outputs (B, 2) for the windows ending at `ends`, in batches through the Predictor."""
    from sigbridge.models.inference import Predictor  # noqa: PLC0415

    # Batches only: an XLA program compiled for batch 1 would never run here.
    predictor = Predictor(trained_model, window, jit_compile=False)
    outputs = [
        predictor.predict(scaling.apply(make_windows(features, ends[start : start + 4096], window)))
        for start in range(0, len(ends), 4096)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 2), dtype=np.float32)
