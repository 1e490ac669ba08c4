"""Model bundles: atomic save, versioning, integrity checks and fallback."""

import json
import logging
import shutil

import numpy as np
import pytest

from sigbridge.models.bundle import (
    BundleError,
    bundle_versions,
    list_bundles,
    load_bundle,
    load_latest_bundle,
    save_bundle,
    stream_folder,
    stream_folder_name,
)


@pytest.fixture
def models_dir(tmp_path, trained_models_dir):
    target = tmp_path / "models"
    shutil.copytree(trained_models_dir, target)
    return target


def resave(bundle, models_dir):
    return save_bundle(
        models_dir,
        symbol=bundle.symbol,
        timeframe=bundle.timeframe,
        model=bundle.model,
        scaling=bundle.scaling,
        distance_scale=bundle.distance_scale,
        window=bundle.window,
        config_hash=bundle.config_hash,
        metadata={"note": "copy"},
    )


def test_bundle_round_trip_same_outputs(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    copy = resave(bundle, models_dir)
    loaded = load_bundle(copy.path)
    windows = np.random.default_rng(0).normal(size=(5, 40, 4)).astype(np.float32)
    np.testing.assert_array_equal(bundle.predictor.predict(windows), loaded.predictor.predict(windows))
    assert loaded.scaling == bundle.scaling
    assert loaded.distance_scale == bundle.distance_scale


def test_bundle_versions_increase(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    assert resave(bundle, models_dir).version == 2
    assert resave(bundle, models_dir).version == 3
    assert bundle_versions(models_dir, "EURUSD", "H1") == [1, 2, 3]


def test_bundle_save_leaves_no_staging_folder(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    resave(bundle, models_dir)
    names = [entry.name for entry in stream_folder(models_dir, "EURUSD", "H1").iterdir()]
    assert sorted(names) == ["v000001", "v000002"]


def test_bundle_damaged_model_detected(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    copy = resave(bundle, models_dir)
    model_file = copy.path / "model.keras"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="damaged"):
        load_bundle(copy.path)


def test_bundle_latest_falls_back_with_error_log(models_dir, caplog):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    copy = resave(bundle, models_dir)
    (copy.path / "model.keras").write_bytes(b"torn")
    with caplog.at_level(logging.ERROR, logger="sigbridge.models.bundle"):
        fallback = load_latest_bundle(models_dir, "EURUSD", "H1")
    assert fallback.version == 1
    assert "model_version=2" in caplog.text


def test_bundle_missing_manifest_is_incomplete(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    copy = resave(bundle, models_dir)
    (copy.path / "bundle.json").unlink()
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(copy.path)
    assert load_latest_bundle(models_dir, "EURUSD", "H1").version == 1


def test_bundle_manifest_records_metadata(models_dir):
    path = stream_folder(models_dir, "EURUSD", "H1") / "v000001" / "bundle.json"
    manifest = json.loads(path.read_text())
    assert manifest["symbol"] == "EURUSD"
    assert manifest["window"] == 40
    assert len(manifest["model_sha256"]) == 64
    assert manifest["metadata"]["bars"] == 2000
    assert manifest["metadata"]["trained_until_time"] == manifest["metadata"]["last_bar_time"]


def test_bundle_list_marks_damaged(models_dir):
    bundle = load_latest_bundle(models_dir, "EURUSD", "H1")
    copy = resave(bundle, models_dir)
    (copy.path / "bundle.json").write_text("{not json")
    rows = list_bundles(models_dir)
    assert [row["intact"] for row in rows] == [True, False]


def test_stream_folder_name_replaces_unsafe_characters():
    assert stream_folder_name("EURUSD.m", "H1") == "EURUSD.m_H1"
    assert stream_folder_name("../etc", "H1") == "_etc_H1"
    assert stream_folder_name("#US30", "M5") == "#US30_M5"


def test_stream_folder_name_rejects_empty():
    with pytest.raises(BundleError):
        stream_folder_name("..", "H1")
