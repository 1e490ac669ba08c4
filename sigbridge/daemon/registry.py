"""The model registry that serving reads: one published bundle per symbol and timeframe.

A bundle is immutable and replaced in one assignment under a lock, so a request gets one model
with its own feature scaling. Slow changes (saving a promoted bundle, loading a rolled-back one,
pruning) run under a second lock, so they never hold up requests for the published bundles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sigbridge.models.bundle import BundleError, ModelBundle, bundle_versions, load_bundle, load_latest_bundle
from sigbridge.models.versions import clear_pin, prune_bundles, read_pin, version_folder, write_pin

logger = logging.getLogger(__name__)

ModelKey = tuple[str, str]  # (symbol, timeframe)


class ModelRegistry:
    """Published bundles by symbol and timeframe, loaded from the models folder on first use.

    A stream serves its pinned version when `models rollback` pinned one, otherwise its newest
    intact bundle.

    Args:
        models_dir: the folder of the bundles, `<state_dir>/models`.
        keep_bundles: bundles kept per stream after a promotion; None keeps all. A reload may
            assign the attribute of that name, and the next promotion prunes to the new value.
    """

    def __init__(self, models_dir: Path, *, keep_bundles: int | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.keep_bundles = keep_bundles
        self._lock = threading.Lock()
        self._changes = threading.Lock()
        self._bundles: dict[ModelKey, ModelBundle] = {}
        self._pinned: dict[ModelKey, int] = {}
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
        with self._changes:
            return self._load(symbol, timeframe)

    def pinned_version(self, symbol: str, timeframe: str) -> int | None:
        with self._lock:
            return self._pinned.get((symbol, timeframe))

    def _load(self, symbol: str, timeframe: str) -> ModelBundle | None:
        key = (symbol, timeframe)
        with self._lock:
            if key in self._bundles:
                return self._bundles[key]
        loaded = None
        try:
            pinned = read_pin(self.models_dir, symbol, timeframe)
        except BundleError as error:
            logger.error("ignoring the pin of symbol=%s timeframe=%s: %s", symbol, timeframe, error)
            pinned = None
        if pinned is not None:
            try:
                loaded = load_bundle(version_folder(self.models_dir, symbol, timeframe, pinned))
            except BundleError as error:
                logger.error(
                    "cannot load the pinned model bundle symbol=%s timeframe=%s model_version=%s; serving the "
                    "newest intact bundle instead: %s",
                    symbol,
                    timeframe,
                    pinned,
                    error,
                )
        if loaded is None:
            loaded = load_latest_bundle(self.models_dir, symbol, timeframe)
        if loaded is None:
            return None
        is_pinned = loaded.version == pinned
        with self._lock:
            self._bundles[key] = loaded
            if is_pinned:
                self._pinned[key] = loaded.version
        logger.info(
            "loaded model bundle symbol=%s timeframe=%s model_version=%s pinned=%s",
            symbol,
            timeframe,
            loaded.version,
            is_pinned,
        )
        return loaded

    def publish(self, bundle: ModelBundle) -> ModelBundle | None:
        """Make `bundle` the one serving its stream, unless the stream is pinned or serves a newer version.

        Returns:
            The bundle serving the stream now: `bundle`, or the one that stayed.
        """
        key = (bundle.symbol, bundle.timeframe)
        with self._lock:
            current = self._bundles.get(key)
            if key in self._pinned or (current is not None and current.version >= bundle.version):
                return current
            self._bundles[key] = bundle
            self._looked_up.add(key)
        return bundle

    def promote(self, symbol: str, timeframe: str, save: Callable[[], ModelBundle]) -> ModelBundle | None:
        """Save a promoted model with `save`, publish it and prune old bundles, in one step.

        Returns:
            The published bundle, or None when the stream was pinned (nothing is saved then).

        Raises:
            OSError, BundleError: from `save`; nothing was published.
        """
        key = (symbol, timeframe)
        with self._changes:
            with self._lock:
                if key in self._pinned:
                    return None
            bundle = save()
            self.publish(bundle)
            self._prune(symbol, timeframe, protect={bundle.version})
        return bundle

    def _prune(self, symbol: str, timeframe: str, *, protect: set[int]) -> None:
        keep = self.keep_bundles  # Read once, because a reload may assign it from another thread.
        if keep is None:
            return
        with self._lock:
            current = self._bundles.get((symbol, timeframe))
            pinned = self._pinned.get((symbol, timeframe))
        protect = protect | {version for version in (pinned, current and current.version) if version}
        try:
            prune_bundles(self.models_dir, symbol, timeframe, keep=keep, protect=protect)
        except OSError:
            logger.error("cannot delete old model bundles symbol=%s timeframe=%s", symbol, timeframe, exc_info=True)

    def rollback(self, symbol: str, timeframe: str, version: int) -> ModelBundle:
        """Serve `version` from now on and pin it on disk, so a restart serves it too.

        Raises:
            BundleError: the version has no intact bundle; nothing changed.
            OSError: the pin file cannot be written; nothing changed.
        """
        key = (symbol, timeframe)
        with self._changes:
            bundle = load_bundle(version_folder(self.models_dir, symbol, timeframe, version))
            write_pin(self.models_dir, symbol, timeframe, version)
            with self._lock:
                previous = self._bundles.get(key)
                self._bundles[key] = bundle
                self._pinned[key] = version
                self._looked_up.add(key)
        logger.info(
            "rolled back symbol=%s timeframe=%s model_version=%s previous_version=%s pinned=True",
            symbol,
            timeframe,
            version,
            None if previous is None else previous.version,
        )
        return bundle

    def unpin(self, symbol: str, timeframe: str) -> ModelBundle | None:
        """Remove the pin and serve the newest intact bundle again.

        Returns:
            The bundle now serving, or None when the stream has no intact bundle.
        """
        key = (symbol, timeframe)
        with self._changes:
            clear_pin(self.models_dir, symbol, timeframe)
            with self._lock:
                current = self._bundles.get(key)
                self._pinned.pop(key, None)
            newest = bundle_versions(self.models_dir, symbol, timeframe)
            bundle = current
            if newest and (current is None or current.version != newest[-1]):
                bundle = load_latest_bundle(self.models_dir, symbol, timeframe)
            with self._lock:
                if bundle is not None:
                    self._bundles[key] = bundle
                self._looked_up.add(key)
        logger.info(
            "unpinned symbol=%s timeframe=%s model_version=%s",
            symbol,
            timeframe,
            None if bundle is None else bundle.version,
        )
        return bundle
