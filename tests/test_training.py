"""Training examples without look-ahead, time-ordered fitting and walk-forward evaluation."""

import numpy as np
import pytest

from sigbridge.models.evaluation import fold_boundaries, momentum_direction, score, walk_forward
from sigbridge.models.training import NotEnoughDataError, fit, labelled_ends, prepare, targets

CUT = 1500


@pytest.fixture(scope="module")
def prepared(eurusd, fast_config):
    return prepare(eurusd.bars, eurusd.point, fast_config)


def test_labelled_ends_only_confirmed_by_cut(prepared):
    ends = labelled_ends(prepared, known_by=CUT)
    assert ends.max() <= CUT
    assert (prepared.labels.known_at[ends] <= CUT).all()
    assert (prepared.labels.known_at[ends] >= 0).all()


def test_labelled_ends_match_truncated_series(eurusd, fast_config, prepared):
    """Examples usable at bar CUT are the same whether later bars exist or not."""
    truncated = prepare(eurusd.bars[: CUT + 1], eurusd.point, fast_config)
    full_ends = labelled_ends(prepared, known_by=CUT)
    cut_ends = labelled_ends(truncated, known_by=CUT)
    np.testing.assert_array_equal(full_ends, cut_ends)
    np.testing.assert_array_equal(prepared.labels.direction[full_ends], truncated.labels.direction[cut_ends])
    np.testing.assert_array_equal(prepared.labels.distance[full_ends], truncated.labels.distance[cut_ends])
    np.testing.assert_array_equal(prepared.features[: CUT + 1], truncated.features)


def test_labelled_ends_skip_unconfirmed_tail(prepared):
    ends = labelled_ends(prepared, known_by=CUT)
    # The last pivots before the cut are not confirmed yet, so the newest bars have no label.
    assert ends.max() < CUT - 47


def test_targets_scale_and_clip(prepared):
    ends = labelled_ends(prepared, known_by=CUT)
    result = targets(prepared.labels, ends, distance_scale=0.001)
    assert result.shape == (len(ends), 2)
    assert set(np.unique(result[:, 0])) <= {-1.0, 1.0}
    assert np.abs(result[:, 1]).max() <= 1.0
    expected = np.clip(prepared.labels.distance[ends[0]] / 0.001, -1, 1)
    assert result[0, 1] == pytest.approx(expected)


def test_fit_uses_only_known_examples(prepared, fast_config):
    trained = fit(prepared, fast_config, known_by=CUT)
    assert trained.last_bar == CUT
    assert trained.examples + trained.validation_examples <= len(labelled_ends(prepared, known_by=CUT))
    assert np.isfinite(trained.validation_loss)


def test_fit_scaling_ignores_later_bars(eurusd, prepared, fast_config):
    """Feature scaling fitted at bar CUT is the same as when later bars are absent."""
    truncated = prepare(eurusd.bars[: CUT + 1], eurusd.point, fast_config)
    full = fit(prepared, fast_config, known_by=CUT)
    cut = fit(truncated, fast_config, known_by=CUT)
    assert full.scaling == cut.scaling
    assert full.distance_scale == cut.distance_scale


def test_fit_is_deterministic(prepared, fast_config):
    first = fit(prepared, fast_config, known_by=CUT)
    second = fit(prepared, fast_config, known_by=CUT)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_rejects_too_little_history(prepared, fast_config):
    with pytest.raises(NotEnoughDataError, match="training.min_examples"):
        fit(prepared, fast_config, known_by=300)


def test_fold_boundaries_expand_over_second_half():
    assert fold_boundaries(101, 2) == [50, 75, 100]


def test_momentum_direction_signs():
    close = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    np.testing.assert_array_equal(momentum_direction(close, np.array([2, 4]), 2), [1.0, -1.0])


def test_score_counts_baselines():
    outputs = np.array([[0.5, 0.0], [-0.5, 0.0], [0.5, 0.0], [0.5, 0.0]])
    expected = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    momentum = np.array([1.0, 1.0, 1.0, -1.0])
    result = score(outputs, expected, majority=1.0, momentum=momentum)
    assert result.accuracy == 0.5
    assert result.majority_accuracy == 0.75
    assert result.momentum_accuracy == 0.5
    assert result.examples == 4


def test_walk_forward_reports_folds(eurusd, fast_config):
    report = walk_forward(eurusd.bars, eurusd.point, fast_config)
    assert len(report.folds) == fast_config.training.walk_forward_folds
    for fold in report.folds:
        assert fold.test_first_bar > fold.trained_until_bar
        assert 0.0 <= fold.scores.accuracy <= 1.0
    assert report.overall.examples == sum(fold.scores.examples for fold in report.folds)
