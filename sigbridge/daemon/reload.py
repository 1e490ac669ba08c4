"""What a SIGHUP reload may change while the daemon serves, and the bundle rescan it triggers.

A reload must not drop connections. Settings that the bound socket, the bar database, the
feature state of held streams or the running training worker process depend on therefore keep
their current values until a restart, and `merge_reloaded` names each one that changed so the
daemon can log it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

from sigbridge.config import Config, validate
from sigbridge.models.bundle import bundle_versions, load_latest_bundle

logger = logging.getLogger(__name__)

# Keys that take effect on reload, by section. Every other key, including those of sections
# added later, waits for a restart. The serving loop and the dispatcher read the `server`,
# `signal` and `security.control_from` keys from the current config on every request. The trainer takes the `training` and
# `retraining` keys at the start of its next job, and the model registry prunes to the new
# `keep_bundles` at the next promotion. `training.threads` and `retraining.worker_nice` are not
# live, because the training worker process applies them when it starts.
LIVE_KEYS: dict[str, frozenset[str]] = {
    "server": frozenset(
        {
            "linger_ms",
            "max_bars_per_stream",
            "max_bars_per_message",
            "max_streams_per_client",
            "max_streams",
            "max_future_seconds",
            "max_batch",
            "batch_wait_us",
        }
    ),
    "signal": frozenset({"threshold"}),
    "security": frozenset({"control_from"}),
    "training": frozenset(
        {
            "epochs",
            "batch_size",
            "learning_rate",
            "validation_fraction",
            "patience",
            "seed",
            "min_examples",
            "walk_forward_folds",
        }
    ),
    "retraining": frozenset(
        {
            "enabled",
            "every_bars",
            "every_seconds",
            "train_examples",
            "holdout_examples",
            "warm_start",
            "promotion_margin",
            "keep_bundles",
        }
    ),
}


def merge_reloaded(current: Config, loaded: Config) -> tuple[Config, list[str]]:
    """Merge a reloaded config: `loaded` for the live keys, `current` for the rest.

    Returns:
        The merged config and the `section.key` names whose new value waits for a restart.

    Raises:
        ConfigError: the merged config is invalid, e.g. a live limit or `training.min_examples`
            that no longer fits a kept feature setting.
    """
    sections = {}
    waiting = []
    for section in dataclasses.fields(Config):
        old = getattr(current, section.name)
        new = getattr(loaded, section.name)
        live = LIVE_KEYS.get(section.name, frozenset())
        kept = {}
        for key in dataclasses.fields(old):
            if key.name in live:
                continue
            if getattr(old, key.name) != getattr(new, key.name):
                waiting.append(f"{section.name}.{key.name}")
            kept[key.name] = getattr(old, key.name)
        sections[section.name] = dataclasses.replace(new, **kept)
    merged = dataclasses.replace(loaded, **sections)
    validate(merged)
    return merged, waiting


def changed_keys(current: Config, merged: Config) -> list[tuple[str, object]]:
    """Return (`section.key`, new value) for each key whose value differs between two configs."""
    changed = []
    for section in dataclasses.fields(Config):
        old = getattr(current, section.name)
        new = getattr(merged, section.name)
        for key in dataclasses.fields(old):
            if getattr(old, key.name) != getattr(new, key.name):
                changed.append((f"{section.name}.{key.name}", getattr(new, key.name)))
    return changed


def reload_bundles(
    registry, keys: Iterable[tuple[str, str]], on_progress: Callable[[], None] | None = None
) -> list[tuple[str, str, int]]:
    """Publish bundles newer than the ones serving, for each (symbol, timeframe) in `keys`.

    A damaged newer bundle is skipped with an ERROR log by `load_latest_bundle`, and the one
    serving stays. `on_progress` runs after each bundle load, e.g. to ping the systemd watchdog.

    Returns:
        (symbol, timeframe, model_version) of each bundle published.
    """
    published = []
    for symbol, timeframe in sorted(set(keys)):
        versions = bundle_versions(registry.models_dir, symbol, timeframe)
        current = registry.get(symbol, timeframe)
        if not versions or (current is not None and versions[-1] <= current.version):
            continue
        bundle = load_latest_bundle(registry.models_dir, symbol, timeframe)
        if on_progress is not None:
            on_progress()
        if bundle is None or (current is not None and bundle.version <= current.version):
            continue
        if registry.publish(bundle) is bundle:
            logger.info(
                "loaded model bundle on reload symbol=%s timeframe=%s model_version=%s", symbol, timeframe, bundle.version
            )
            published.append((symbol, timeframe, bundle.version))
    return published
