"""Which bundle version serves a stream: the pin file written by a rollback, and pruning old versions.

Unless pinned, a stream is served by its newest intact bundle. `sigbridge models rollback` pins
an older version by writing `pinned.json` into the stream's folder. The daemon then serves the
pinned version, also after a restart, and does not retrain the stream until it is unpinned.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from sigbridge.models.bundle import BundleError, bundle_versions, stream_folder

logger = logging.getLogger(__name__)

PIN_FILE = "pinned.json"


def version_folder(models_dir: Path, symbol: str, timeframe: str, version: int) -> Path:
    return stream_folder(models_dir, symbol, timeframe) / f"v{version:06d}"


def _fsync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_pin(models_dir: Path, symbol: str, timeframe: str) -> int | None:
    """The pinned version of a stream, or None when it is not pinned.

    Raises:
        BundleError: the pin file exists but cannot be read.
    """
    path = stream_folder(models_dir, symbol, timeframe) / PIN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise BundleError(
            f"pin file {path} cannot be read: {error}; delete it or run `sigbridge models unpin`"
        ) from None
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BundleError(f"pin file {path} has no valid `version`: {data!r}; delete it or pin again")
    return version


def write_pin(models_dir: Path, symbol: str, timeframe: str, version: int) -> Path:
    """Pin `version` atomically: write a temporary file, fsync it, then rename it over the pin file."""
    folder = stream_folder(models_dir, symbol, timeframe)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PIN_FILE
    data = {
        "symbol": symbol,
        "timeframe": timeframe,
        "version": version,
        "pinned_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    descriptor, temporary = tempfile.mkstemp(prefix=f".{PIN_FILE}-", dir=folder)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def clear_pin(models_dir: Path, symbol: str, timeframe: str) -> bool:
    """Remove a stream's pin; True if there was one."""
    folder = stream_folder(models_dir, symbol, timeframe)
    try:
        (folder / PIN_FILE).unlink()
    except FileNotFoundError:
        return False
    _fsync_folder(folder)
    return True


def prune_bundles(models_dir: Path, symbol: str, timeframe: str, *, keep: int, protect: set[int]) -> list[int]:
    """Delete all but the newest `keep` bundles of a stream, never a version in `protect`.

    A bundle folder is first renamed to a hidden name, so a reader sees it whole or not at all.

    Returns:
        The deleted versions, oldest first.
    """
    versions = bundle_versions(models_dir, symbol, timeframe)
    doomed = [version for version in versions[: max(0, len(versions) - keep)] if version not in protect]
    folder = stream_folder(models_dir, symbol, timeframe)
    for version in doomed:
        path = version_folder(models_dir, symbol, timeframe, version)
        hidden = folder / f".deleting-{path.name}"
        os.rename(path, hidden)
        shutil.rmtree(hidden)
        logger.info("deleted old model bundle symbol=%s timeframe=%s model_version=%s", symbol, timeframe, version)
    if doomed:
        _fsync_folder(folder)
    return doomed
