"""Walk-forward out-of-sample evaluation against naive baselines."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.models.training import Prepared, fit, labelled_ends, predict_ends, prepare, targets

logger = logging.getLogger(__name__)

# Share of the bars before the first walk-forward test fold.
INITIAL_TRAINING_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Scores:
    """Out-of-sample scores over one set of test examples.

    Attributes:
        examples: test examples with a confirmed label.
        mse: mean squared error over both outputs, in the model's scaled target units.
        accuracy: share of examples where the sign of the direction score matches the label.
        majority_accuracy: accuracy of always predicting the training span's majority direction.
        momentum_accuracy: accuracy of predicting the sign of the return over the last window.
    """

    examples: int
    mse: float
    accuracy: float
    majority_accuracy: float
    momentum_accuracy: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Fold:
    trained_until_bar: int
    test_first_bar: int
    test_last_bar: int
    scores: Scores


@dataclasses.dataclass(frozen=True)
class WalkForwardReport:
    folds: list[Fold]
    overall: Scores


def momentum_direction(close: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Sign of the close-to-close return over the `window` bars ending at each end bar; ties are +1."""
    change = close[ends] - close[np.maximum(ends - window, 0)]
    return np.where(change >= 0, 1.0, -1.0)


def score(
    outputs: np.ndarray,
    expected: np.ndarray,
    *,
    majority: float,
    momentum: np.ndarray,
) -> Scores:
    """Score model outputs (B, 2) against targets (B, 2) and the two baselines."""
    direction = expected[:, 0]
    predicted = np.where(outputs[:, 0] >= 0, 1.0, -1.0)
    return Scores(
        examples=len(expected),
        mse=float(np.mean((outputs - expected) ** 2)),
        accuracy=float(np.mean(predicted == direction)),
        majority_accuracy=float(np.mean(direction == majority)),
        momentum_accuracy=float(np.mean(momentum == direction)),
    )


def majority_direction(prepared: Prepared, *, known_by: int) -> float:
    ends = labelled_ends(prepared, known_by=known_by)
    return 1.0 if np.sum(prepared.labels.direction[ends] > 0) * 2 >= len(ends) else -1.0


def fold_boundaries(bars: int, folds: int) -> list[int]:
    """Bar indices T_0 < ... < T_folds: fold i trains up to T_i and tests (T_i, T_i+1]."""
    first = int((bars - 1) * INITIAL_TRAINING_SHARE)
    return [first + (bars - 1 - first) * i // folds for i in range(folds + 1)]


def walk_forward(bars: Bars, point: float, config: Config) -> WalkForwardReport:
    """Train on an expanding span and test on the next span, fold by fold.

    Test labels are the final ones from the whole series (what actually happened); training
    uses only labels confirmed by the end of its span.
    """
    truth = prepare(bars, point, config)
    window = config.features.window
    folds: list[Fold] = []
    all_outputs, all_expected, all_majority, all_momentum = [], [], [], []
    boundaries = fold_boundaries(len(bars), config.training.walk_forward_folds)
    for trained_until, test_last in zip(boundaries[:-1], boundaries[1:]):
        test_ends = labelled_ends(truth, known_by=len(bars) - 1, first=trained_until + 1)
        test_ends = test_ends[test_ends <= test_last]
        if len(test_ends) == 0:
            continue
        trained = fit(truth, config, known_by=trained_until)
        outputs = predict_ends(trained.model, trained.scaling, truth.features, test_ends, window)
        expected = targets(truth.labels, test_ends, trained.distance_scale)
        majority = majority_direction(truth, known_by=trained_until)
        momentum = momentum_direction(bars.close, test_ends, window)
        scores = score(outputs, expected, majority=majority, momentum=momentum)
        logger.info(
            "walk-forward fold trained_until_bar=%s test_bars=%s-%s accuracy=%.3f",
            trained_until,
            test_ends[0],
            test_ends[-1],
            scores.accuracy,
        )
        folds.append(Fold(trained_until, int(test_ends[0]), int(test_ends[-1]), scores))
        all_outputs.append(outputs)
        all_expected.append(expected)
        all_majority.append(np.full(len(test_ends), majority))
        all_momentum.append(momentum)
    if not folds:
        raise ValueError("no walk-forward fold has test examples; the bar file is too short")

    outputs = np.concatenate(all_outputs)
    expected = np.concatenate(all_expected)
    majorities = np.concatenate(all_majority)
    direction = expected[:, 0]
    predicted = np.where(outputs[:, 0] >= 0, 1.0, -1.0)
    overall = Scores(
        examples=len(expected),
        mse=float(np.mean((outputs - expected) ** 2)),
        accuracy=float(np.mean(predicted == direction)),
        majority_accuracy=float(np.mean(majorities == direction)),
        momentum_accuracy=float(np.mean(np.concatenate(all_momentum) == direction)),
    )
    return WalkForwardReport(folds=folds, overall=overall)
