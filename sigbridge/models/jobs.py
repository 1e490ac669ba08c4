"""One training job of a stream: its initial model, or a retrained candidate judged against the incumbent.

A job is plain data (bars, config and the incumbent's weights), so it can be pickled to the
training worker process, where `run_job` runs it. The daemon's trainer, `serve --lockstep` and
replay all send their jobs to such a worker, so the same bars and config give the same weights.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.models.features import FeatureScaling
from sigbridge.models.promotion import Decision, decide, score_holdout, split_for_retraining
from sigbridge.models.training import fit, predict_ends, prepare

logger = logging.getLogger(__name__)

INITIAL = "initial"
RETRAIN = "retrain"


@dataclasses.dataclass(frozen=True)
class IncumbentSnapshot:
    """The serving model's weights, scaling and identity, copied out of its bundle for a job."""

    version: int
    weights: list[np.ndarray]
    scaling: FeatureScaling
    distance_scale: float
    window: int
    config_hash: str
    # Time of the last bar the incumbent's labels were known at; None when the bundle lacks it.
    trained_until_time: int | None = None

    @classmethod
    def of(cls, bundle: Any) -> IncumbentSnapshot:
        """Copy the weights of a `ModelBundle`; reading them leaves the serving model untouched."""
        return cls(
            version=bundle.version,
            weights=[np.array(weight) for weight in bundle.model.get_weights()],
            scaling=bundle.scaling,
            distance_scale=bundle.distance_scale,
            window=bundle.window,
            config_hash=bundle.config_hash,
            trained_until_time=bundle.metadata.get("trained_until_time"),
        )


@dataclasses.dataclass(frozen=True)
class TrainingJob:
    """Train one stream's model on `bars`, with labels as known at the last of them.

    Attributes:
        trigger: INITIAL (fit on every labelled window, no comparison) or RETRAIN (fit a
            candidate before a held-out slice and compare it with `incumbent`).
        incumbent: the serving model, for RETRAIN; None when the stream has none.
    """

    trigger: str
    symbol: str
    timeframe: str
    bars: Bars
    point: float
    config: Config
    incumbent: IncumbentSnapshot | None = None

    def __post_init__(self) -> None:
        if self.trigger not in (INITIAL, RETRAIN):
            raise ValueError(f"`trigger` must be {INITIAL!r} or {RETRAIN!r}, received trigger={self.trigger!r}")


@dataclasses.dataclass(frozen=True)
class TrainingOutcome:
    """The result of a job: the decision, and the candidate's weights when it is promoted.

    Attributes:
        weights: the candidate's weights for `build_model(config.model)`, or None when rejected.
        metadata: bundle.json metadata, including the decision and both held-out scores.
    """

    decision: Decision
    weights: list[np.ndarray] | None
    scaling: FeatureScaling
    distance_scale: float
    metadata: dict[str, Any]


def run_job(job: TrainingJob) -> TrainingOutcome:
    """Run a job in this process; the trainer calls it in the worker process.

    Raises:
        NotEnoughDataError: too few labelled windows in the job's bars.
    """
    if job.trigger == INITIAL:
        return _train_initial(job)
    return _retrain(job)


def _train_initial(job: TrainingJob) -> TrainingOutcome:
    from sigbridge.models.publish import training_metadata  # noqa: PLC0415 - imports TensorFlow

    known_by = len(job.bars) - 1
    prepared = prepare(job.bars, job.point, job.config, known_by=known_by)
    trained = fit(prepared, job.config, known_by=known_by)
    if math.isfinite(trained.validation_loss):
        decision = Decision(True, "initial model")
    else:
        decision = Decision(False, f"initial model validation loss is {trained.validation_loss}")
    metadata = training_metadata(job.bars, trained, point=job.point, config=job.config)
    metadata.update({"trigger": INITIAL, "decision": decision.reason})
    return TrainingOutcome(
        decision=decision,
        weights=trained.model.get_weights() if decision.promote else None,
        scaling=trained.scaling,
        distance_scale=trained.distance_scale,
        metadata=metadata,
    )


def _retrain(job: TrainingJob) -> TrainingOutcome:
    from sigbridge.models.builder import build_model  # noqa: PLC0415 - imports TensorFlow
    from sigbridge.models.publish import training_metadata  # noqa: PLC0415

    config = job.config
    retraining = config.retraining
    window = config.features.window
    known_by = len(job.bars) - 1
    prepared = prepare(job.bars, job.point, config, known_by=known_by)
    split = split_for_retraining(
        prepared,
        known_by=known_by,
        train_examples=retraining.train_examples,
        holdout_examples=retraining.holdout_examples,
        min_examples=config.training.min_examples,
    )

    # An incumbent trained with other features, labels or architecture reads the windows
    # differently, so it is neither a starting point nor a fair comparison.
    incumbent = job.incumbent
    comparable = incumbent is not None and incumbent.config_hash == config.model_hash() and incumbent.window == window
    warm_start = comparable and retraining.warm_start
    trained = fit(
        split.prepared,
        config,
        known_by=known_by,
        first=split.first,
        initial_weights=incumbent.weights if warm_start else None,
    )

    # Both models are scored on the held-out windows with the labels known at the last bar.
    holdout = split.holdout_ends
    candidate_outputs = predict_ends(trained.model, trained.scaling, prepared.features, holdout, window)
    candidate_score = score_holdout(
        candidate_outputs,
        prepared.labels,
        holdout,
        model_distance_scale=trained.distance_scale,
        target_distance_scale=trained.distance_scale,
    )
    incumbent_score = None
    if comparable:
        incumbent_model = build_model(config.model, window=window)
        incumbent_model.set_weights(incumbent.weights)
        incumbent_outputs = predict_ends(incumbent_model, incumbent.scaling, prepared.features, holdout, window)
        incumbent_score = score_holdout(
            incumbent_outputs,
            prepared.labels,
            holdout,
            model_distance_scale=incumbent.distance_scale,
            target_distance_scale=trained.distance_scale,
        )
    decision = decide(
        candidate_score, incumbent_score, training_loss=trained.validation_loss, margin=retraining.promotion_margin
    )

    metadata = training_metadata(job.bars, trained, point=job.point, config=config)
    metadata.update(
        {
            "trigger": RETRAIN,
            "decision": decision.reason,
            "previous_version": None if incumbent is None else incumbent.version,
            "warm_start": warm_start,
            "holdout_first_time": int(job.bars.time[holdout[0]]),
            "holdout_last_time": int(job.bars.time[holdout[-1]]),
            "holdout_examples": len(holdout),
            "holdout_seen_by_incumbent": _seen_by_incumbent(job, prepared.labels.known_at[holdout]),
            "candidate_holdout": candidate_score.to_dict(),
            "incumbent_holdout": None if incumbent_score is None else incumbent_score.to_dict(),
        }
    )
    return TrainingOutcome(
        decision=decision,
        weights=trained.model.get_weights() if decision.promote else None,
        scaling=trained.scaling,
        distance_scale=trained.distance_scale,
        metadata=metadata,
    )


def _seen_by_incumbent(job: TrainingJob, known_at: np.ndarray) -> int:
    """Held-out windows whose label the incumbent could have trained on.

    NOTE: such windows favour the incumbent in the comparison. They occur when
    `retraining.holdout_examples` reaches back before the incumbent's trained-until bar.
    """
    incumbent = job.incumbent
    if incumbent is None or incumbent.trained_until_time is None:
        return 0
    last_known = int(np.searchsorted(job.bars.time, incumbent.trained_until_time, side="right")) - 1
    return int(np.sum(known_at <= last_known))


def build_promoted_model(outcome: TrainingOutcome, config: Config) -> Any:
    """Rebuild the promoted candidate as a Keras model from its weights.

    Raises:
        ValueError: the outcome was rejected and carries no weights.
    """
    from sigbridge.models.builder import build_model  # noqa: PLC0415 - imports TensorFlow

    if outcome.weights is None:
        raise ValueError(f"a rejected candidate has no weights to build a model from: {outcome.decision.reason}")
    model = build_model(config.model, window=config.features.window)
    model.set_weights(outcome.weights)
    return model
