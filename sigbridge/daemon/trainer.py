"""The model registry that serving reads, and the background thread that trains new models.

The registry maps a symbol and timeframe to the published `ModelBundle`. A bundle is immutable
and replaced in one assignment under a lock, so a request sees one model with its own scaling.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from pathlib import Path

from sigbridge.bars import Bars
from sigbridge.config import Config
from sigbridge.models.bundle import ModelBundle, bundle_versions, load_latest_bundle
from sigbridge.models.training import NotEnoughDataError

logger = logging.getLogger(__name__)

ModelKey = tuple[str, str]  # (symbol, timeframe)


class ModelRegistry:
    """Published bundles by symbol and timeframe, loaded from the models folder on first use."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self._lock = threading.Lock()
        self._bundles: dict[ModelKey, ModelBundle] = {}
        self._looked_up: set[ModelKey] = set()

    def get(self, symbol: str, timeframe: str) -> ModelBundle | None:
        key = (symbol, timeframe)
        with self._lock:
            bundle = self._bundles.get(key)
            if bundle is not None or key in self._looked_up:
                return bundle
            self._looked_up.add(key)
        # Load outside the lock: a slow disk must not stall requests for other streams.
        if not bundle_versions(self.models_dir, symbol, timeframe):
            return None
        loaded = load_latest_bundle(self.models_dir, symbol, timeframe)
        if loaded is None:
            return None
        logger.info(
            "loaded model bundle symbol=%s timeframe=%s model_version=%s", symbol, timeframe, loaded.version
        )
        return self.publish(loaded)

    def publish(self, bundle: ModelBundle) -> ModelBundle:
        """Make `bundle` the one serving its stream unless a newer version is already published."""
        key = (bundle.symbol, bundle.timeframe)
        with self._lock:
            current = self._bundles.get(key)
            if current is not None and current.version >= bundle.version:
                return current
            self._bundles[key] = bundle
            self._looked_up.add(key)
        return bundle


@dataclasses.dataclass(frozen=True)
class TrainingState:
    """Where initial training of one symbol and timeframe stands.

    `state` is "queued", "training" or "waiting_for_history"; `retry_at_bars` is the stream size
    at which a failed attempt is tried again.
    """

    state: str
    message: str
    retry_at_bars: int = 0


@dataclasses.dataclass(frozen=True)
class _Job:
    symbol: str
    timeframe: str
    bars: Bars
    point: float


class InitialTrainer:
    """One background thread that trains the first model of a stream from its backfill.

    Requests never wait for it: `request` only enqueues, and the server keeps answering
    other streams while a model trains.
    """

    def __init__(self, config: Config, registry: ModelRegistry, *, train_function=None) -> None:
        from sigbridge.models.publish import train_bundle  # noqa: PLC0415 - imports TensorFlow

        self._config = config
        self._registry = registry
        self._train = train_function or train_bundle
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._states: dict[ModelKey, TrainingState] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sigbridge-trainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the thread to finish after its current job; True if it ended within `timeout` s."""
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def state(self, symbol: str, timeframe: str) -> TrainingState | None:
        with self._lock:
            return self._states.get((symbol, timeframe))

    def request(self, symbol: str, timeframe: str, bars: Bars, point: float) -> bool:
        """Queue training on a copy of `bars` unless one is pending or waits for more bars."""
        key = (symbol, timeframe)
        with self._lock:
            current = self._states.get(key)
            if current is not None and current.state in ("queued", "training"):
                return False
            if current is not None and len(bars) < current.retry_at_bars:
                return False
            self._states[key] = TrainingState("queued", f"initial model queued on {len(bars)} bars")
        self._jobs.put(_Job(symbol, timeframe, bars, point))
        logger.info("queued initial training symbol=%s timeframe=%s bars=%s", symbol, timeframe, len(bars))
        return True

    def _set_state(self, key: ModelKey, state: TrainingState | None) -> None:
        with self._lock:
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key = (job.symbol, job.timeframe)
            self._set_state(key, TrainingState("training", f"training the initial model on {len(job.bars)} bars"))
            try:
                bundle = self._train(
                    job.bars,
                    point=job.point,
                    symbol=job.symbol,
                    timeframe=job.timeframe,
                    config=self._config,
                    models_dir=self._registry.models_dir,
                    extra_metadata={"trigger": "initial"},
                )
            except NotEnoughDataError as error:
                retry = len(job.bars) + max(100, len(job.bars) // 10)
                logger.info(
                    "initial training postponed symbol=%s timeframe=%s: %s", job.symbol, job.timeframe, error
                )
                self._set_state(key, TrainingState("waiting_for_history", str(error), retry_at_bars=retry))
                continue
            except Exception as error:  # the thread must outlive any training failure
                retry = len(job.bars) + 100
                logger.error(
                    "initial training failed symbol=%s timeframe=%s bars=%s; retrying after %s bars",
                    job.symbol,
                    job.timeframe,
                    len(job.bars),
                    retry,
                    exc_info=True,
                )
                self._set_state(
                    key,
                    TrainingState("waiting_for_history", f"training failed: {error}", retry_at_bars=retry),
                )
                continue
            self._registry.publish(bundle)
            self._set_state(key, None)
            logger.info(
                "promoted initial model symbol=%s timeframe=%s model_version=%s",
                job.symbol,
                job.timeframe,
                bundle.version,
            )
