"""Model bundles: an immutable model with its feature scaling and metadata, stored atomically.

A bundle lives in `<models_dir>/<SYMBOL>_<TIMEFRAME>/v<NNNNNN>/` and holds `model.keras` and
`bundle.json`. The folder is written under a temporary name, fsynced, then renamed, so a reader
sees either a complete bundle or none; `bundle.json` records the SHA-256 of `model.keras`, so a
bundle damaged later is detected on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sigbridge.models.features import FeatureScaling
from sigbridge.models.inference import Predictor

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
MANIFEST_FILE = "bundle.json"
FORMAT_VERSION = 1
_VERSION_PATTERN = re.compile(r"^v(\d{6,})$")
_UNSAFE_SYMBOL_CHARACTERS = re.compile(r"[^A-Za-z0-9.#+\-]")


class BundleError(Exception):
    """Raised for a bundle that is missing, incomplete or damaged."""


@dataclasses.dataclass(frozen=True)
class ModelBundle:
    """Everything a signal needs from one trained model, published and swapped as one object.

    Attributes:
        symbol: the instrument the model was trained on.
        timeframe: MetaTrader timeframe name.
        version: monotonic per symbol and timeframe, starting at 1.
        model: the Keras model; never trained further once in a bundle.
        scaling: the feature scaling fitted on the model's training span.
        distance_scale: price distance that the model's second output of 1.0 stands for.
        window: bars per input window.
        config_hash: hash of the feature, label and model config the model was trained with.
        metadata: bar range, metrics and training details, as stored in bundle.json.
        path: the bundle folder, or None for a bundle not yet saved.
    """

    symbol: str
    timeframe: str
    version: int
    model: Any
    scaling: FeatureScaling
    distance_scale: float
    window: int
    config_hash: str
    metadata: dict[str, Any]
    path: Path | None = None
    predictor: Predictor = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictor", Predictor(self.model, self.window))


def stream_folder_name(symbol: str, timeframe: str) -> str:
    """Folder name for a symbol and timeframe; characters unsafe in paths become `_`."""
    safe = _UNSAFE_SYMBOL_CHARACTERS.sub("_", symbol).strip(".")
    if not safe:
        raise BundleError(f"symbol {symbol!r} has no characters usable in a folder name")
    return f"{safe}_{timeframe}"


def stream_folder(models_dir: Path, symbol: str, timeframe: str) -> Path:
    return Path(models_dir) / stream_folder_name(symbol, timeframe)


def bundle_versions(models_dir: Path, symbol: str, timeframe: str) -> list[int]:
    """Versions with a complete folder name, ascending; the bundles may still be damaged."""
    folder = stream_folder(models_dir, symbol, timeframe)
    if not folder.is_dir():
        return []
    versions = []
    for entry in folder.iterdir():
        match = _VERSION_PATTERN.match(entry.name)
        if match and entry.is_dir():
            versions.append(int(match.group(1)))
    return sorted(versions)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_bundle(
    models_dir: Path,
    *,
    symbol: str,
    timeframe: str,
    model: Any,
    scaling: FeatureScaling,
    distance_scale: float,
    window: int,
    config_hash: str,
    metadata: dict[str, Any],
) -> ModelBundle:
    """Write a new bundle with the next version number and return it.

    Raises:
        BundleError: when another writer took the same version at the same moment.
        OSError: when the disk is full or not writable; nothing partial is left behind.
    """
    folder = stream_folder(models_dir, symbol, timeframe)
    folder.mkdir(parents=True, exist_ok=True)
    existing = bundle_versions(models_dir, symbol, timeframe)
    version = (existing[-1] + 1) if existing else 1
    final = folder / f"v{version:06d}"

    # Write everything under a temporary name in the same folder, so the rename is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".v{version:06d}-", dir=folder))
    try:
        model_path = staging / MODEL_FILE
        model.save(model_path)
        _fsync_file(model_path)
        manifest = {
            "format": FORMAT_VERSION,
            "symbol": symbol,
            "timeframe": timeframe,
            "version": version,
            "window": window,
            "config_hash": config_hash,
            "scaling": scaling.to_dict(),
            "distance_scale": distance_scale,
            "model_sha256": _sha256(model_path),
            "metadata": metadata,
        }
        manifest_path = staging / MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_file(manifest_path)
        _fsync_folder(staging)

        # Publish: rename fails if the version appeared meanwhile, so no bundle is overwritten.
        try:
            os.rename(staging, final)
        except OSError as error:
            raise BundleError(f"bundle {final} already exists; another trainer wrote it first") from error
        _fsync_folder(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "saved model bundle symbol=%s timeframe=%s model_version=%s path=%s", symbol, timeframe, version, final
    )
    return ModelBundle(
        symbol=symbol,
        timeframe=timeframe,
        version=version,
        model=model,
        scaling=scaling,
        distance_scale=distance_scale,
        window=window,
        config_hash=config_hash,
        metadata=metadata,
        path=final,
    )


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check a bundle's bundle.json without loading the model."""
    manifest_path = Path(path) / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle {path} has no {MANIFEST_FILE}; it is incomplete") from None
    except (OSError, ValueError) as error:
        raise BundleError(f"bundle {path} has an unreadable {MANIFEST_FILE}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise BundleError(f"bundle {path} has an unknown format; expected format {FORMAT_VERSION}")
    return manifest


def load_bundle(path: Path) -> ModelBundle:
    """Load one bundle folder, checking the model file against its recorded SHA-256.

    Raises:
        BundleError: for a missing, incomplete or damaged bundle.
    """
    # Imported here so that reading manifests does not need the Keras custom layer registered.
    from sigbridge.models.builder import load_model

    path = Path(path)
    manifest = read_manifest(path)
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise BundleError(f"bundle {path} has no {MODEL_FILE}")
    digest = _sha256(model_path)
    if digest != manifest.get("model_sha256"):
        raise BundleError(
            f"bundle {path}: {MODEL_FILE} is damaged (SHA-256 {digest[:12]}... does not match the "
            f"recorded {str(manifest.get('model_sha256'))[:12]}...)"
        )
    try:
        model = load_model(model_path)
        scaling = FeatureScaling.from_dict(manifest["scaling"])
        return ModelBundle(
            symbol=manifest["symbol"],
            timeframe=manifest["timeframe"],
            version=int(manifest["version"]),
            model=model,
            scaling=scaling,
            distance_scale=float(manifest["distance_scale"]),
            window=int(manifest["window"]),
            config_hash=manifest["config_hash"],
            metadata=manifest.get("metadata", {}),
            path=path,
        )
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise BundleError(f"bundle {path} cannot be loaded: {type(error).__name__}: {error}") from error


def load_latest_bundle(models_dir: Path, symbol: str, timeframe: str) -> ModelBundle | None:
    """Load the newest bundle that is intact, skipping damaged ones with an ERROR log."""
    for version in reversed(bundle_versions(models_dir, symbol, timeframe)):
        path = stream_folder(models_dir, symbol, timeframe) / f"v{version:06d}"
        try:
            return load_bundle(path)
        except BundleError as error:
            logger.error(
                "skipping damaged model bundle symbol=%s timeframe=%s model_version=%s: %s",
                symbol,
                timeframe,
                version,
                error,
            )
    return None


def list_bundles(models_dir: Path) -> list[dict[str, Any]]:
    """Manifests of every bundle under `models_dir`, for `sigbridge models list`."""
    rows = []
    root = Path(models_dir)
    if not root.is_dir():
        return rows
    for folder in sorted(root.iterdir()):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if not _VERSION_PATTERN.match(entry.name):
                continue
            try:
                manifest = read_manifest(entry)
                manifest["path"] = str(entry)
                manifest["intact"] = True
            except BundleError as error:
                manifest = {"path": str(entry), "intact": False, "error": str(error)}
            rows.append(manifest)
    return rows
