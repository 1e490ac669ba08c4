"""The trainer: one background thread that trains each stream's first model and retrains due models.

The thread drives a `TrainingWorker`, a child process that does the fitting, so the server
thread keeps replying with the published model while a model trains. A new model is published
only after it is saved as a bundle, in one step under the registry's lock.

With `lockstep`, there is no thread: `request` and `observe` train in the calling thread at the
bar that makes a stream due, so `serve --lockstep` retrains at the same bars as replay.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.daemon.registry import ModelKey, ModelRegistry
from sigbridge.daemon.retraining import retrain_once
from sigbridge.daemon.schedule import RetrainSchedule
from sigbridge.daemon.worker import TrainingCancelled, TrainingFailed, TrainingWorker
from sigbridge.models.bundle import BundleError, ModelBundle, bundle_versions, save_bundle
from sigbridge.models.jobs import INITIAL, TrainingJob, TrainingOutcome, build_promoted_model
from sigbridge.models.training import NotEnoughDataError

# Re-exported for code that imports ModelRegistry from this module.
__all__ = ["ModelRegistry", "Trainer", "TrainingState"]

logger = logging.getLogger(__name__)

# Seconds the trainer thread sleeps when no stream is due.
POLL_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class TrainingState:
    """The state of initial training of one symbol and timeframe.

    `state` is "queued", "training" or "waiting_for_history"; `retry_at_bars` is the stream size
    at which a failed attempt is tried again.
    """

    state: str
    message: str
    retry_at_bars: int = 0


@dataclasses.dataclass(frozen=True)
class _Source:
    """A snapshot of a stream's bars, taken in the server thread."""

    bars: Bars
    point: float
    # The stream the snapshot was taken from, where the caller named it.
    stream_key: object = None


class Trainer:
    """Trains first models and retrains due ones, in one background thread or in lockstep.

    Outside lockstep, requests never wait for training: `request` and `observe` only record what
    to train, and the thread trains it.
    Streams with a model are retrained oldest model first.

    A reload passes a new config to `apply_config`. Each job takes the config that is current
    when it starts and keeps it until it ends.

    Args:
        config: the daemon's config; `training`, `retraining` and `compute` apply.
        registry: where promoted bundles are saved and published.
        lockstep: train synchronously in the caller of `request` and `observe`.
        worker: the training worker; a new one by default.
    """

    def __init__(
        self,
        config: Config,
        registry: ModelRegistry,
        *,
        lockstep: bool = False,
        worker: TrainingWorker | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self.lockstep = lockstep
        self.worker = worker or TrainingWorker(
            threads=config.training.threads, nice=config.retraining.worker_nice, device=config.compute.device
        )
        self._schedule = RetrainSchedule(config.retraining, count_seconds=not lockstep)
        self._lock = threading.Lock()
        # Set by `apply_config` under `_lock`. The thread that trains moves it to `_config`.
        self._pending_config: Config | None = None
        self._states: dict[ModelKey, TrainingState] = {}
        self._initial: dict[ModelKey, _Source] = {}
        self._sources: dict[ModelKey, dict[object, _Source]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sigbridge-trainer", daemon=True)

    def start(self) -> None:
        if not self.lockstep:
            self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the thread, killing a running job, and stop the worker; True if done within `timeout` s."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.worker.close(max(0.1, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def apply_config(self, config: Config) -> None:
        """Train with `config` from the next job on. A job already running keeps the config it started with.

        Any thread may call this. `training.threads`, `retraining.worker_nice` and `compute.device`
        stay as they were, because the worker process applies them when it starts.
        In lockstep, the next `request` or `observe` picks the config up.
        """
        with self._lock:
            self._pending_config = config
        self._wake.set()

    def _take_config(self) -> Config:
        """Switch to the config of the last `apply_config`, if any, and return the current config.

        Only the thread that trains calls this, so the schedule stays single-threaded.
        """
        with self._lock:
            pending, self._pending_config = self._pending_config, None
        if pending is not None:
            self._config = pending
            self._schedule.apply(pending.retraining)
            logger.info(
                "trainer uses the reloaded config retraining=%s every_bars=%s every_seconds=%s",
                pending.retraining.enabled,
                self._schedule.every_bars,
                self._schedule.every_seconds,
            )
        return self._config

    def state(self, symbol: str, timeframe: str) -> TrainingState | None:
        with self._lock:
            return self._states.get((symbol, timeframe))

    def request(self, symbol: str, timeframe: str, bars: Bars, point: float, stream_key=None) -> bool:
        """Queue initial training on `bars` unless one is pending or waits for more bars.

        In lockstep the model is trained before this returns.
        """
        key = (symbol, timeframe)
        with self._lock:
            current = self._states.get(key)
            if current is not None and current.state in ("queued", "training"):
                return False
            if current is not None and len(bars) < current.retry_at_bars:
                return False
            self._states[key] = TrainingState("queued", f"initial model queued on {len(bars)} bars")
            self._initial[key] = _Source(bars, point, stream_key)
        logger.info("queued initial training symbol=%s timeframe=%s bars=%s", symbol, timeframe, len(bars))
        if self.lockstep:
            self._work_once(only=key)
        else:
            self._wake.set()
        return True

    def forget(self, stream_key, replacement=None) -> None:
        """Drop the bars recorded for a stream, e.g. after a failed bar database commit undid them.

        `replacement`, the stream rebuilt from the database, is recorded in their place. An initial
        training queued on this stream's bars is dropped too, and is queued again once a stream
        contains enough bars. A job already running keeps its bars.
        """
        key = (stream_key.symbol, stream_key.timeframe)
        with self._lock:
            sources = self._sources.get(key, {})
            sources.pop(stream_key, None)
            if not sources:
                self._sources.pop(key, None)
            queued = self._initial.get(key)
            if queued is not None and queued.stream_key == stream_key:
                del self._initial[key]
                self._states.pop(key, None)
        if replacement is not None:
            self.record(replacement)

    def record(self, stream) -> None:
        """Record a snapshot of a stream's bars for retraining, without training."""
        key = (stream.key.symbol, stream.key.timeframe)
        source = _Source(stream.bars, stream.point, stream.key)
        with self._lock:
            self._sources.setdefault(key, {})[stream.key] = source

    def observe(self, stream) -> None:
        """Record a snapshot of a stream's bars after the server thread appended to it.

        In lockstep, a stream that is due is retrained here, before the bar's signal.
        """
        key = (stream.key.symbol, stream.key.timeframe)
        self.record(stream)
        if self.lockstep:
            # NOTE: this trains in the serving thread, which does not see a stop request until the
            # job ends, so a shutdown in lockstep waits for the running job.
            self._work_once(only=key)

    def _run(self) -> None:
        logger.info("trainer thread started retraining=%s", self._config.retraining.enabled)
        while not self._stop.is_set():
            try:
                worked = self._work_once()
            except TrainingCancelled:
                break
            except Exception:  # the thread must outlive any failure and log it
                logger.error("trainer thread failed; it carries on", exc_info=True)
                worked = False
            if not worked:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
        logger.info("trainer thread stopped")

    def _work_once(self, only: ModelKey | None = None) -> bool:
        """Train one initial model or retrain one due model, of `only` if given; False when nothing is to do."""
        config = self._take_config()
        with self._lock:
            initial = next(((key, source) for key, source in self._initial.items() if only in (None, key)), None)
            if initial is not None:
                del self._initial[initial[0]]
        if initial is not None:
            self._train_initial(*initial, config)
            return True
        due = self._next_due(only, config)
        if due is None:
            return False
        key, source, incumbent = due
        outcome = retrain_once(
            self.worker,
            self._schedule,
            config,
            key,
            bars=source.bars,
            point=source.point,
            incumbent=incumbent,
            candidate_version=self._next_version(key),
            stop=self._stop,
        )
        if outcome is not None:
            self._publish(key, outcome, config, previous=incumbent.version)
        return True

    def _next_due(self, only: ModelKey | None, config: Config) -> tuple[ModelKey, _Source, ModelBundle] | None:
        """Return the due stream whose model was trained on the oldest bars, with its largest snapshot."""
        if not config.retraining.enabled:
            return None
        with self._lock:
            sources = {
                key: max(streams.values(), key=lambda source: len(source.bars))
                for key, streams in self._sources.items()
                if only in (None, key)
            }
        due = []
        for key, source in sources.items():
            incumbent = self._registry.get(*key)
            if incumbent is None or self._registry.pinned_version(*key) is not None or not len(source.bars):
                continue
            trained_until = incumbent.metadata.get("trained_until_time")
            if self._schedule.is_due(key, source.bars.time, trained_until):
                due.append((-1 if trained_until is None else trained_until, key, source, incumbent))
        if not due:
            return None
        _, key, source, incumbent = min(due, key=lambda item: item[:2])
        return key, source, incumbent

    def _next_version(self, key: ModelKey) -> int:
        versions = bundle_versions(self._registry.models_dir, *key)
        return versions[-1] + 1 if versions else 1

    def _set_state(self, key: ModelKey, state: TrainingState | None) -> None:
        with self._lock:
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def _train_initial(self, key: ModelKey, source: _Source, config: Config) -> None:
        symbol, timeframe = key
        bars = source.bars
        self._set_state(key, TrainingState("training", f"training the initial model on {len(bars)} bars"))
        job = TrainingJob(INITIAL, symbol, timeframe, bars, source.point, config)
        try:
            outcome = self.worker.run(job, stop=self._stop)
        except NotEnoughDataError as error:
            retry = len(bars) + max(100, len(bars) // 10)
            logger.info("initial training postponed symbol=%s timeframe=%s: %s", symbol, timeframe, error)
            self._set_state(key, TrainingState("waiting_for_history", str(error), retry_at_bars=retry))
            return
        except TrainingFailed as error:
            retry = len(bars) + 100
            logger.error(
                "initial training failed symbol=%s timeframe=%s bars=%s; retrying after %s bars: %s\n%s",
                symbol,
                timeframe,
                len(bars),
                retry,
                error,
                error.details,
            )
            self._set_state(key, TrainingState("waiting_for_history", f"training failed: {error}", retry_at_bars=retry))
            return
        except TrainingCancelled:
            self._set_state(key, None)
            raise
        except Exception:  # a failure outside the worker; the thread must carry on
            retry = len(bars) + 100
            logger.error(
                "initial training failed symbol=%s timeframe=%s bars=%s; retrying after %s bars",
                symbol,
                timeframe,
                len(bars),
                retry,
                exc_info=True,
            )
            self._set_state(key, TrainingState("waiting_for_history", "training failed", retry_at_bars=retry))
            return
        retry = len(bars) + 100
        if not outcome.decision.promote:
            logger.warning(
                "rejected the initial model symbol=%s timeframe=%s; retrying after %s bars: %s",
                symbol,
                timeframe,
                retry,
                outcome.decision.reason,
            )
        if not outcome.decision.promote or self._publish(key, outcome, config, previous=None) is None:
            message = f"no model published: {outcome.decision.reason}"
            self._set_state(key, TrainingState("waiting_for_history", message, retry_at_bars=retry))
            return
        self._set_state(key, None)

    def _publish(
        self, key: ModelKey, outcome: TrainingOutcome, config: Config, *, previous: int | None
    ) -> ModelBundle | None:
        """Save the promoted model as a bundle and publish it; None when that failed or the stream is pinned."""
        symbol, timeframe = key

        def save() -> ModelBundle:
            return save_bundle(
                self._registry.models_dir,
                symbol=symbol,
                timeframe=timeframe,
                model=build_promoted_model(outcome, config),
                scaling=outcome.scaling,
                distance_scale=outcome.distance_scale,
                window=config.features.window,
                config_hash=config.model_hash(),
                metadata=outcome.metadata,
            )

        try:
            bundle = self._registry.promote(symbol, timeframe, save)
        except (OSError, BundleError):
            logger.error(
                "cannot save the promoted model symbol=%s timeframe=%s trigger=%s; model_version=%s keeps serving",
                symbol,
                timeframe,
                outcome.metadata.get("trigger"),
                previous,
                exc_info=True,
            )
            return None
        if bundle is None:
            logger.info(
                "not publishing the promoted model symbol=%s timeframe=%s: the stream is pinned to model_version=%s",
                symbol,
                timeframe,
                self._registry.pinned_version(symbol, timeframe),
            )
            return None
        logger.info(
            "published model symbol=%s timeframe=%s model_version=%s previous_version=%s trigger=%s",
            symbol,
            timeframe,
            bundle.version,
            previous,
            outcome.metadata.get("trigger"),
        )
        return bundle
