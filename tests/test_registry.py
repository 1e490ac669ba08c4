"""The model registry with pins and pruning, on real bundle folders; and the retraining schedule."""

import json
import logging
import shutil

import numpy as np
import pytest

from sigbridge.config import RetrainingConfig
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.schedule import RetrainSchedule, new_bar_count
from sigbridge.models.bundle import BundleError, bundle_versions, load_bundle
from sigbridge.models.versions import PIN_FILE, clear_pin, prune_bundles, read_pin, version_folder, write_pin


def add_versions(models_dir, last, first_new=2):
    """Copy bundle v1 of EURUSD H1 to versions first_new..last, with their manifests renumbered."""
    first = version_folder(models_dir, "EURUSD", "H1", 1)
    for version in range(first_new, last + 1):
        target = version_folder(models_dir, "EURUSD", "H1", version)
        shutil.copytree(first, target)
        manifest_path = target / "bundle.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["version"] = version
        manifest_path.write_text(json.dumps(manifest))


@pytest.fixture(autouse=True)
def graph_forward_pass():
    """Skip the XLA compilation of each loaded bundle's batch-1 function; these tests serve nothing."""
    from sigbridge.models import inference

    inference.set_jit_compile(False)
    yield
    inference.set_jit_compile(True)


@pytest.fixture
def models_dir(tmp_path, trained_models_dir):
    target = tmp_path / "models"
    shutil.copytree(trained_models_dir, target)
    add_versions(target, 3)
    return target


def test_registry_serves_newest(models_dir):
    assert ModelRegistry(models_dir).get("EURUSD", "H1").version == 3


def test_registry_load_honours_pin(models_dir):
    write_pin(models_dir, "EURUSD", "H1", 2)
    registry = ModelRegistry(models_dir)
    assert registry.get("EURUSD", "H1").version == 2
    assert registry.pinned_version("EURUSD", "H1") == 2


def test_registry_damaged_pin_serves_newest(models_dir, caplog):
    write_pin(models_dir, "EURUSD", "H1", 2)
    (version_folder(models_dir, "EURUSD", "H1", 2) / "model.keras").write_bytes(b"damaged")
    with caplog.at_level(logging.ERROR):
        bundle = ModelRegistry(models_dir).get("EURUSD", "H1")
    assert bundle.version == 3
    assert "cannot load the pinned model bundle" in caplog.text


def test_registry_rollback_pins(models_dir):
    registry = ModelRegistry(models_dir)
    registry.get("EURUSD", "H1")
    bundle = registry.rollback("EURUSD", "H1", 1)
    assert bundle.version == 1
    assert registry.get("EURUSD", "H1") is bundle
    assert read_pin(models_dir, "EURUSD", "H1") == 1


def test_registry_rollback_survives_restart(models_dir):
    ModelRegistry(models_dir).rollback("EURUSD", "H1", 1)
    assert ModelRegistry(models_dir).get("EURUSD", "H1").version == 1


def test_registry_rollback_missing_version(models_dir):
    registry = ModelRegistry(models_dir)
    with pytest.raises(BundleError):
        registry.rollback("EURUSD", "H1", 9)
    assert registry.get("EURUSD", "H1").version == 3
    assert read_pin(models_dir, "EURUSD", "H1") is None


def test_registry_publish_refused_while_pinned(models_dir):
    registry = ModelRegistry(models_dir)
    pinned = registry.rollback("EURUSD", "H1", 1)
    newer = load_bundle(version_folder(models_dir, "EURUSD", "H1", 3))
    assert registry.publish(newer) is pinned
    assert registry.get("EURUSD", "H1").version == 1


def test_registry_promote_skipped_while_pinned(models_dir):
    registry = ModelRegistry(models_dir)
    registry.rollback("EURUSD", "H1", 1)
    calls = []
    assert registry.promote("EURUSD", "H1", lambda: calls.append(1)) is None
    assert calls == []


def test_registry_unpin_serves_newest(models_dir):
    registry = ModelRegistry(models_dir)
    registry.rollback("EURUSD", "H1", 1)
    bundle = registry.unpin("EURUSD", "H1")
    assert bundle.version == 3
    assert registry.get("EURUSD", "H1").version == 3
    assert registry.pinned_version("EURUSD", "H1") is None
    assert not (models_dir / "EURUSD_H1" / PIN_FILE).exists()


def test_registry_promote_prunes(models_dir):
    registry = ModelRegistry(models_dir, keep_bundles=2)
    add_versions(models_dir, 4, first_new=4)
    fourth = version_folder(models_dir, "EURUSD", "H1", 4)
    promoted = registry.promote("EURUSD", "H1", lambda: load_bundle(fourth))
    assert registry.get("EURUSD", "H1") is promoted
    assert bundle_versions(models_dir, "EURUSD", "H1") == [3, 4]


def test_registry_prunes_to_changed_keep(models_dir):
    registry = ModelRegistry(models_dir, keep_bundles=3)
    add_versions(models_dir, 5, first_new=4)
    registry.promote("EURUSD", "H1", lambda: load_bundle(version_folder(models_dir, "EURUSD", "H1", 4)))
    assert bundle_versions(models_dir, "EURUSD", "H1") == [3, 4, 5]

    # A reload assigns the new value, and the next promotion prunes to it.
    registry.keep_bundles = 1
    promoted = registry.promote("EURUSD", "H1", lambda: load_bundle(version_folder(models_dir, "EURUSD", "H1", 5)))
    assert registry.get("EURUSD", "H1") is promoted
    assert bundle_versions(models_dir, "EURUSD", "H1") == [5]


def test_prune_keeps_protected(models_dir):
    deleted = prune_bundles(models_dir, "EURUSD", "H1", keep=1, protect={1})
    assert deleted == [2]
    assert bundle_versions(models_dir, "EURUSD", "H1") == [1, 3]


def test_pin_file_round_trip(models_dir):
    path = write_pin(models_dir, "EURUSD", "H1", 2)
    assert json.loads(path.read_text())["version"] == 2
    assert not [entry for entry in path.parent.iterdir() if entry.name.startswith(f".{PIN_FILE}")]
    assert clear_pin(models_dir, "EURUSD", "H1")
    assert not clear_pin(models_dir, "EURUSD", "H1")
    assert read_pin(models_dir, "EURUSD", "H1") is None


def test_pin_file_invalid(models_dir):
    (models_dir / "EURUSD_H1" / PIN_FILE).write_text('{"version": "two"}')
    with pytest.raises(BundleError, match="no valid `version`"):
        read_pin(models_dir, "EURUSD", "H1")


# The schedule, with bar times one hour apart.
TIMES = np.arange(1000, dtype=np.int64) * 3600


def schedule(**changes):
    return RetrainSchedule(RetrainingConfig(**{"every_bars": 100, "every_seconds": 0, **changes}), count_seconds=True)


def test_new_bar_count():
    assert new_bar_count(TIMES[:10], None) == 10
    assert new_bar_count(TIMES[:10], int(TIMES[6])) == 3
    assert new_bar_count(TIMES[:10], int(TIMES[9])) == 0


def test_schedule_due_at_bar_count():
    plan = schedule()
    trained_until = int(TIMES[499])
    assert not plan.is_due(("EURUSD", "H1"), TIMES[:599], trained_until)
    assert plan.is_due(("EURUSD", "H1"), TIMES[:600], trained_until)


def test_schedule_counts_from_last_attempt():
    plan = schedule()
    trained_until = int(TIMES[499])
    plan.record_attempt(("EURUSD", "H1"), int(TIMES[599]))
    assert not plan.is_due(("EURUSD", "H1"), TIMES[:699], trained_until)
    assert plan.is_due(("EURUSD", "H1"), TIMES[:700], trained_until)


def test_schedule_bar_trigger_off():
    assert not schedule(every_bars=0).is_due(("EURUSD", "H1"), TIMES, int(TIMES[0]))


def test_schedule_seconds_trigger():
    plan = schedule(every_bars=0, every_seconds=60)
    key = ("EURUSD", "H1")
    trained_until = int(TIMES[498])
    assert not plan.is_due(key, TIMES[:500], trained_until, now=1000.0)
    assert not plan.is_due(key, TIMES[:500], trained_until, now=1059.0)
    assert plan.is_due(key, TIMES[:500], trained_until, now=1060.0)


def test_schedule_seconds_need_new_bar():
    plan = schedule(every_bars=0, every_seconds=60)
    key = ("EURUSD", "H1")
    plan.record_attempt(key, int(TIMES[499]), now=0.0)
    assert not plan.is_due(key, TIMES[:500], int(TIMES[400]), now=1000.0)
    assert plan.is_due(key, TIMES[:501], int(TIMES[400]), now=1000.0)


def test_schedule_lockstep_ignores_seconds():
    plan = RetrainSchedule(RetrainingConfig(every_bars=100, every_seconds=1), count_seconds=False)
    key = ("EURUSD", "H1")
    plan.record_attempt(key, int(TIMES[499]), now=0.0)
    assert not plan.is_due(key, TIMES[:550], int(TIMES[400]), now=1e9)


def test_schedule_apply_keeps_attempts():
    plan = schedule()
    key = ("EURUSD", "H1")
    trained_until = int(TIMES[499])
    plan.record_attempt(key, int(TIMES[599]))
    plan.apply(RetrainingConfig(every_bars=50, every_seconds=0))
    # Counted from the last attempt, which the new settings keep, not from the trained-until bar.
    assert not plan.is_due(key, TIMES[:649], trained_until)
    assert plan.is_due(key, TIMES[:650], trained_until)


def test_schedule_apply_lockstep_ignores_seconds():
    plan = RetrainSchedule(RetrainingConfig(every_bars=100, every_seconds=0), count_seconds=False)
    plan.apply(RetrainingConfig(every_bars=0, every_seconds=1))
    assert plan.every_seconds == 0
    assert not plan.is_due(("EURUSD", "H1"), TIMES[:550], int(TIMES[400]), now=1e9)
