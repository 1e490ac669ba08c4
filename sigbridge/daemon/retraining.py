"""One retraining attempt: a candidate trained in the worker, judged, and the decision logged.

The trainer thread, `serve --lockstep` and replay all call `retrain_once`, so they train the same
candidates at the same bars and log the same decisions.
"""

from __future__ import annotations

import logging
import threading

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.daemon.schedule import ModelKey, RetrainSchedule
from sigbridge.daemon.worker import TrainingCancelled, TrainingFailed, TrainingWorker
from sigbridge.models.bundle import ModelBundle
from sigbridge.models.jobs import RETRAIN, IncumbentSnapshot, TrainingJob, TrainingOutcome
from sigbridge.models.training import NotEnoughDataError

logger = logging.getLogger(__name__)


def log_decision(
    key: ModelKey, outcome: TrainingOutcome, *, incumbent_version: int | None, candidate_version: int
) -> None:
    """Log a retraining decision at INFO with the stream, both versions and both held-out scores."""
    decision = outcome.decision
    logger.info(
        "retraining decision symbol=%s timeframe=%s promoted=%s model_version=%s candidate_version=%s "
        "candidate_loss=%s incumbent_loss=%s: %s",
        key[0],
        key[1],
        decision.promote,
        incumbent_version,
        candidate_version,
        "none" if decision.candidate is None else f"{decision.candidate.loss:.5f}",
        "none" if decision.incumbent is None else f"{decision.incumbent.loss:.5f}",
        decision.reason,
    )


def retrain_once(
    worker: TrainingWorker,
    schedule: RetrainSchedule,
    config: Config,
    key: ModelKey,
    *,
    bars: Bars,
    point: float,
    incumbent: ModelBundle,
    candidate_version: int,
    stop: threading.Event | None = None,
) -> TrainingOutcome | None:
    """Train a candidate on `bars` against `incumbent` and log the decision; the daemon and replay share it.

    Failures are logged with their context and return None; the next attempt waits for the
    next due point, because the attempt is recorded first.

    Returns:
        The outcome when the candidate is promoted, else None.

    Raises:
        TrainingCancelled: `stop` was set while the job ran.
    """
    symbol, timeframe = key
    schedule.record_attempt(key, int(bars.time[-1]))
    logger.info(
        "retraining started symbol=%s timeframe=%s model_version=%s bars=%s last_bar_time=%s",
        symbol,
        timeframe,
        incumbent.version,
        len(bars),
        int(bars.time[-1]),
    )
    job = TrainingJob(RETRAIN, symbol, timeframe, bars, point, config, IncumbentSnapshot.of(incumbent))
    try:
        outcome = worker.run(job, stop=stop)
    except NotEnoughDataError as error:
        logger.info("retraining postponed symbol=%s timeframe=%s: %s", symbol, timeframe, error)
        return None
    except TrainingCancelled:
        raise
    except TrainingFailed as error:
        logger.error(
            "retraining failed symbol=%s timeframe=%s model_version=%s bars=%s; model_version=%s keeps serving "
            "and the next due point retries: %s\n%s",
            symbol,
            timeframe,
            incumbent.version,
            len(bars),
            incumbent.version,
            error,
            error.details,
        )
        return None
    except Exception:  # a failure outside the worker, e.g. copying the incumbent's weights
        logger.error(
            "retraining failed symbol=%s timeframe=%s model_version=%s bars=%s; model_version=%s keeps serving "
            "and the next due point retries",
            symbol,
            timeframe,
            incumbent.version,
            len(bars),
            incumbent.version,
            exc_info=True,
        )
        return None
    log_decision(key, outcome, incumbent_version=incumbent.version, candidate_version=candidate_version)
    return outcome if outcome.decision.promote else None
