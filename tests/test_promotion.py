"""Promotion of a retrained candidate: the held-out split, the scores, the decision and real jobs."""

import math

import numpy as np
import pytest

from sigbridge.models.jobs import INITIAL, RETRAIN, IncumbentSnapshot, TrainingJob, build_promoted_model, run_job
from sigbridge.models.bundle import ModelBundle
from sigbridge.models.promotion import HoldoutScore, decide, score_holdout, split_for_retraining
from sigbridge.models.training import NotEnoughDataError, labelled_ends, prepare

BARS = 1500


@pytest.fixture(scope="module")
def prepared(eurusd, fast_config):
    return prepare(eurusd.bars[:BARS], eurusd.point, fast_config, known_by=BARS - 1)


def test_split_holdout_follows_training(prepared):
    split = split_for_retraining(prepared, known_by=BARS - 1, train_examples=400, holdout_examples=100, min_examples=200)
    assert len(split.holdout_ends) == 100
    assert split.train_ends[-1] < split.holdout_ends[0]
    assert np.all(np.diff(split.holdout_ends) > 0)


def test_split_holdout_is_most_recent_known(prepared):
    split = split_for_retraining(prepared, known_by=BARS - 1, train_examples=400, holdout_examples=100, min_examples=200)
    known = labelled_ends(prepared, known_by=BARS - 1)
    np.testing.assert_array_equal(split.holdout_ends, known[-100:])


def test_split_purges_pivots_in_holdout(prepared):
    split = split_for_retraining(prepared, known_by=BARS - 1, train_examples=400, holdout_examples=100, min_examples=200)
    assert np.all(prepared.labels.pivot_index[split.train_ends] < split.holdout_ends[0])


def test_split_keeps_last_train_examples(prepared):
    split = split_for_retraining(prepared, known_by=BARS - 1, train_examples=300, holdout_examples=100, min_examples=200)
    assert len(split.train_ends) == 300
    assert split.first == split.train_ends[0]


def test_split_masks_all_other_labels(prepared):
    split = split_for_retraining(prepared, known_by=BARS - 1, train_examples=300, holdout_examples=100, min_examples=200)
    visible = labelled_ends(split.prepared, known_by=BARS - 1)
    np.testing.assert_array_equal(visible, split.train_ends)
    assert not np.isfinite(split.prepared.labels.direction[split.holdout_ends]).any()


def test_split_labels_only_known_by_bar(prepared):
    known_by = 1200
    split = split_for_retraining(prepared, known_by=known_by, train_examples=300, holdout_examples=60, min_examples=100)
    assert split.holdout_ends[-1] <= known_by
    assert np.all(prepared.labels.known_at[split.holdout_ends] <= known_by)


def test_split_too_few_examples(prepared):
    with pytest.raises(NotEnoughDataError, match="training.min_examples=5000"):
        split_for_retraining(prepared, known_by=BARS - 1, train_examples=5000, holdout_examples=100, min_examples=5000)


def test_score_converts_distance_scale(prepared):
    """Two models predicting the same price distance score the same, whatever their scale."""
    ends = labelled_ends(prepared, known_by=BARS - 1)[-50:]
    distance = prepared.labels.distance[ends]
    direction = prepared.labels.direction[ends].astype(np.float64)
    small = np.stack([direction * 0.5, np.clip(distance / 0.01, -1, 1)], axis=1)
    large = np.stack([direction * 0.5, np.clip(distance / 0.02, -1, 1)], axis=1)
    first = score_holdout(small, prepared.labels, ends, model_distance_scale=0.01, target_distance_scale=0.01)
    second = score_holdout(large, prepared.labels, ends, model_distance_scale=0.02, target_distance_scale=0.01)
    assert first.loss == pytest.approx(second.loss)
    assert first.accuracy == 1.0


def test_score_not_finite(prepared):
    ends = labelled_ends(prepared, known_by=BARS - 1)[-10:]
    outputs = np.zeros((10, 2))
    outputs[3, 0] = np.nan
    result = score_holdout(outputs, prepared.labels, ends, model_distance_scale=1.0, target_distance_scale=1.0)
    assert not result.finite
    assert math.isnan(result.loss)


def score(loss, spread=0.5, finite=True):
    return HoldoutScore(loss=loss, accuracy=0.5, spread=spread, finite=finite)


@pytest.mark.parametrize(
    "candidate, incumbent, training_loss, promote, words",
    [
        (score(0.50), score(0.60), 0.4, True, "at most the incumbent's"),
        (score(0.61), score(0.60), 0.4, True, "plus the margin of 5%"),
        (score(0.63), score(0.60), 0.4, True, "at most"),
        (score(0.64), score(0.60), 0.4, False, "exceeds the incumbent's"),
        (score(0.50), score(0.60), math.nan, False, "training loss is nan"),
        (score(0.50), score(0.60), math.inf, False, "training loss is inf"),
        (score(math.nan, math.nan, False), score(0.60), 0.4, False, "not finite"),
        (score(0.10, spread=0.0), score(0.60), 0.4, False, "constant"),
        (score(0.50), None, 0.4, True, "no comparable incumbent"),
        (score(0.50), score(math.nan, math.nan, False), 0.4, True, "incumbent outputs are not finite"),
    ],
)
def test_decide(candidate, incumbent, training_loss, promote, words):
    decision = decide(candidate, incumbent, training_loss=training_loss, margin=0.05)
    assert decision.promote is promote
    assert words in decision.reason


def test_decide_margin_zero_rejects_any_worse():
    assert not decide(score(0.6001), score(0.6), training_loss=0.4, margin=0.0).promote


@pytest.fixture(scope="module")
def job_config(fast_config):
    config = fast_config.replace("training", epochs=1)
    return config.replace("retraining", enabled=True, train_examples=300, holdout_examples=60)


@pytest.fixture(scope="module")
def incumbent(eurusd, job_config):
    outcome = run_job(TrainingJob(INITIAL, "EURUSD", "H1", eurusd.bars[:1000], eurusd.point, job_config))
    return ModelBundle(
        "EURUSD", "H1", 1, build_promoted_model(outcome, job_config), outcome.scaling, outcome.distance_scale,
        job_config.features.window, job_config.model_hash(), outcome.metadata,
    )


def retrain_job(eurusd, config, incumbent):
    return TrainingJob(RETRAIN, "EURUSD", "H1", eurusd.bars[:1150], eurusd.point, config, IncumbentSnapshot.of(incumbent))


def test_job_initial_is_reproducible(eurusd, job_config, incumbent):
    again = run_job(TrainingJob(INITIAL, "EURUSD", "H1", eurusd.bars[:1000], eurusd.point, job_config))
    assert again.decision.promote
    assert all(np.array_equal(a, b) for a, b in zip(again.weights, incumbent.model.get_weights()))


def test_job_retrain_scores_both(eurusd, job_config, incumbent):
    outcome = run_job(retrain_job(eurusd, job_config.replace("retraining", promotion_margin=1000.0), incumbent))
    assert outcome.decision.promote
    assert outcome.weights is not None
    assert outcome.decision.incumbent is not None
    assert math.isfinite(outcome.decision.candidate.loss)
    assert outcome.metadata["previous_version"] == 1
    assert outcome.metadata["warm_start"] is True
    assert outcome.metadata["trained_until_time"] == int(eurusd.bars.time[1149])
    assert outcome.metadata["holdout_examples"] == 60


def test_job_rejects_nan_loss(eurusd, job_config, incumbent):
    """A learning rate of 1e30 overflows the weights, and the loss becomes NaN."""
    config = job_config.replace("training", learning_rate=1e30).replace("retraining", promotion_margin=1000.0)
    outcome = run_job(retrain_job(eurusd, config, incumbent))
    assert not outcome.decision.promote
    assert "training loss is nan" in outcome.decision.reason
    assert outcome.weights is None


def test_job_rejects_constant_outputs(eurusd, job_config, incumbent):
    """A learning rate of 10 saturates the tanh output: the same score for every window."""
    config = job_config.replace("training", learning_rate=10.0).replace("retraining", promotion_margin=1000.0)
    outcome = run_job(retrain_job(eurusd, config, incumbent))
    assert not outcome.decision.promote
    assert "constant" in outcome.decision.reason


def test_job_other_config_not_compared(eurusd, job_config, incumbent):
    """An incumbent trained with another model config is neither a start point nor a yardstick."""
    config = job_config.replace("model", heads=4)
    outcome = run_job(retrain_job(eurusd, config, incumbent))
    assert outcome.decision.incumbent is None
    assert outcome.metadata["warm_start"] is False
    assert outcome.decision.reason == "no comparable incumbent"
