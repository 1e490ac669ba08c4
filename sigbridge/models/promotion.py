"""Whether a retrained candidate replaces the serving model: held-out split, scores and decision.

At the moment of retraining, bar T, only labels confirmed by T are known. The labelled windows
are split in time: the most recent `retraining.holdout_examples` form the held-out slice, and the
candidate trains on the `retraining.train_examples` windows before it. A training window whose
ZigZag pivot lies at or after the first held-out bar is purged, because its label looks into the
slice. Candidate and incumbent are then scored on the same held-out windows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sigbridge.models.labels import Labels
from sigbridge.models.training import NotEnoughDataError, Prepared, labelled_ends

# A direction score whose spread (max - min) over the held-out windows is at most this is
# constant: the model outputs the same score whatever the bars.
CONSTANT_SPREAD = 1e-6


@dataclasses.dataclass(frozen=True)
class RetrainingSplit:
    """The examples of one retraining, as `training.fit` takes them.

    Attributes:
        prepared: the series with every label outside the training windows marked unknown, so
            `fit` uses neither the held-out windows nor the purged ones.
        first: the first training window end bar, for `fit(first=...)`.
        train_ends: window end bars the candidate may train on (before `fit` takes its own
            early-stopping tail from their end).
        holdout_ends: window end bars of the held-out slice, oldest first.
    """

    prepared: Prepared
    first: int
    train_ends: np.ndarray
    holdout_ends: np.ndarray


def split_for_retraining(
    prepared: Prepared, *, known_by: int, train_examples: int, holdout_examples: int, min_examples: int
) -> RetrainingSplit:
    """Split the windows labelled by bar `known_by` into training windows and a later held-out slice.

    Raises:
        NotEnoughDataError: fewer than `min_examples` training windows remain before the slice.
    """
    ends = labelled_ends(prepared, known_by=known_by)
    if len(ends) <= holdout_examples:
        raise NotEnoughDataError(
            f"{len(ends)} labelled windows are known by bar {known_by}, but retraining needs more than "
            f"retraining.holdout_examples={holdout_examples} for the held-out slice and at least "
            f"training.min_examples={min_examples} before it; wait for more bars"
        )
    holdout_ends = ends[-holdout_examples:]
    holdout_start = int(holdout_ends[0])
    labels = prepared.labels
    before = ends[:-holdout_examples]
    train_ends = before[labels.pivot_index[before] < holdout_start][-train_examples:]
    if len(train_ends) < min_examples:
        raise NotEnoughDataError(
            f"{len(train_ends)} labelled windows precede the held-out slice at bar {holdout_start}, but "
            f"training.min_examples={min_examples}; wait for more bars"
        )

    # Only the training windows keep their labels; `fit` skips windows whose label is unknown.
    keep = np.zeros(len(labels.known_at), dtype=bool)
    keep[train_ends] = True
    masked = Labels(
        direction=np.where(keep, labels.direction, np.float32(np.nan)).astype(np.float32),
        distance=np.where(keep, labels.distance, np.nan),
        pivot_index=np.where(keep, labels.pivot_index, -1),
        known_at=np.where(keep, labels.known_at, -1),
    )
    return RetrainingSplit(
        prepared=dataclasses.replace(prepared, labels=masked),
        first=int(train_ends[0]),
        train_ends=train_ends,
        holdout_ends=holdout_ends,
    )


@dataclasses.dataclass(frozen=True)
class HoldoutScore:
    """One model's score on the held-out windows.

    Attributes:
        loss: mean squared error over both outputs, in the candidate's target units (direction
            +-1, distance divided by the candidate's distance scale and clipped to [-1, 1]); NaN
            when an output is not finite.
        accuracy: share of windows whose direction score has the sign of the label.
        spread: max - min of the direction score over the windows.
        finite: every output is a finite number.
    """

    loss: float
    accuracy: float
    spread: float
    finite: bool

    @property
    def constant(self) -> bool:
        return self.spread <= CONSTANT_SPREAD

    def to_dict(self) -> dict[str, float | bool]:
        return {"loss": self.loss, "accuracy": self.accuracy, "spread": self.spread, "finite": self.finite}


def score_holdout(
    outputs: np.ndarray,
    labels: Labels,
    ends: np.ndarray,
    *,
    model_distance_scale: float,
    target_distance_scale: float,
) -> HoldoutScore:
    """Score model outputs (B, 2) for the windows ending at `ends` against their labels.

    Two models fitted on different spans scale distances differently, so the distance output is
    first converted to price units with `model_distance_scale`, then into the common target units
    of `target_distance_scale`.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    direction = labels.direction[ends].astype(np.float64)
    distance = np.clip(labels.distance[ends] / target_distance_scale, -1.0, 1.0)
    finite = bool(np.isfinite(outputs).all())
    if not finite:
        return HoldoutScore(loss=math.nan, accuracy=math.nan, spread=math.nan, finite=False)
    predicted_distance = np.clip(outputs[:, 1] * model_distance_scale / target_distance_scale, -1.0, 1.0)
    errors = np.concatenate([(outputs[:, 0] - direction) ** 2, (predicted_distance - distance) ** 2])
    return HoldoutScore(
        loss=float(np.mean(errors)),
        accuracy=float(np.mean(np.where(outputs[:, 0] >= 0, 1.0, -1.0) == direction)),
        spread=float(np.ptp(outputs[:, 0])) if len(outputs) else 0.0,
        finite=True,
    )


@dataclasses.dataclass(frozen=True)
class Decision:
    """The verdict on one candidate, with the reason logged and stored in the bundle metadata."""

    promote: bool
    reason: str
    candidate: HoldoutScore | None = None
    incumbent: HoldoutScore | None = None


def decide(
    candidate: HoldoutScore,
    incumbent: HoldoutScore | None,
    *,
    training_loss: float,
    margin: float,
) -> Decision:
    """Promote the candidate unless it is broken or worse than the incumbent by more than `margin`.

    Args:
        candidate: the candidate's held-out score.
        incumbent: the serving model's score on the same windows, or None when it cannot be
            scored (no serving model, or one trained with another feature, label or model config).
        training_loss: the candidate's best early-stopping validation loss.
        margin: relative tolerance; the candidate may have a loss up to incumbent * (1 + margin).
    """
    if not math.isfinite(training_loss):
        return Decision(False, f"candidate training loss is {training_loss}", candidate, incumbent)
    if not candidate.finite or not math.isfinite(candidate.loss):
        return Decision(False, "candidate outputs are not finite on the held-out windows", candidate, incumbent)
    if candidate.constant:
        return Decision(
            False,
            f"candidate outputs are constant: direction scores vary by {candidate.spread:.2g} "
            "over the held-out windows",
            candidate,
            incumbent,
        )
    if incumbent is None:
        return Decision(True, "no comparable incumbent", candidate, incumbent)
    if not incumbent.finite or not math.isfinite(incumbent.loss):
        return Decision(True, "incumbent outputs are not finite on the held-out windows", candidate, incumbent)
    limit = incumbent.loss * (1.0 + margin)
    if candidate.loss > limit:
        return Decision(
            False,
            f"candidate held-out loss {candidate.loss:.5f} exceeds the incumbent's {incumbent.loss:.5f} "
            f"by more than the margin of {margin:.0%}",
            candidate,
            incumbent,
        )
    return Decision(
        True,
        f"candidate held-out loss {candidate.loss:.5f} is at most the incumbent's {incumbent.loss:.5f} "
        f"plus the margin of {margin:.0%}",
        candidate,
        incumbent,
    )
