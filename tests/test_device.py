"""Device selection: the configured device is used or start-up stops, and the choice is logged."""

import logging

import pytest
import tensorflow as tf

from sigbridge.config import ComputeConfig, Config, ConfigError, from_dict
from sigbridge.models.builder import build_model, set_seed
from sigbridge.models.device import DeviceError, select_device
from sigbridge.models.inference import Predictor

WINDOW = 40


@pytest.fixture(scope="module")
def model():
    set_seed(7)
    return build_model(Config().model, window=WINDOW)


def test_select_device_cpu(caplog):
    caplog.set_level(logging.INFO, logger="sigbridge.models.device")
    assert select_device(ComputeConfig(device="cpu")) == "cpu"
    assert "compute device=cpu requested=cpu" in caplog.text


def test_select_device_auto_logs_choice(caplog):
    caplog.set_level(logging.INFO, logger="sigbridge.models.device")
    chosen = select_device(Config().compute)
    expected = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    assert chosen == expected
    assert f"compute device={expected} requested=auto" in caplog.text


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_select_device_gpu_missing_stops():
    config = from_dict({"compute": {"device": "gpu"}})
    with pytest.raises(DeviceError) as excinfo:
        select_device(config.compute)
    assert "`compute.device` is \"gpu\", but TensorFlow lists no GPU" in str(excinfo.value)
    # The CLI reports a ConfigError as invalid configuration, exit code 3.
    assert isinstance(excinfo.value, ConfigError)


def test_select_device_sets_xla_default(model):
    try:
        select_device(from_dict({"compute": {"xla": False}}).compute)
        assert not Predictor(model, WINDOW).wait_for_xla(timeout=0)
        select_device(Config().compute)
        assert Predictor(model, WINDOW).wait_for_xla(timeout=120)
    finally:
        select_device(Config().compute)


def test_config_rejects_unknown_device():
    with pytest.raises(ConfigError, match="`compute.device` must be"):
        from_dict({"compute": {"device": "tpu"}})
