import dataclasses

import keras
import numpy as np
import pytest

from sigbridge.config import ModelConfig
from sigbridge.models.builder import build_model, compile_model, load_model, set_seed
from sigbridge.models.layers import MHAttention


def random_windows(count: int, window: int = 40, features: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, window, features)).astype("float32")


def hidden_dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense) and layer.name != "signal"]


def test_default_model_output_shape_and_range():
    model = build_model(ModelConfig())
    inputs = random_windows(count=16)

    outputs = keras.ops.convert_to_numpy(model(inputs))

    assert outputs.shape == (16, 2)
    assert np.all(outputs > -1.0)
    assert np.all(outputs < 1.0)


def test_default_model_input_and_output_names():
    model = build_model(ModelConfig())

    assert model.inputs[0].name == "bars"
    assert tuple(model.inputs[0].shape) == (None, 40, 4)
    assert model.get_layer("signal").units == 2
    assert model.get_layer("signal").activation is keras.activations.tanh


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(attention_layers=4),
        ModelConfig(attention_layers=2, key_size=2, heads=3, dense_layers=1, dense_units=8),
    ],
)
def test_layer_count_per_config(config):
    model = build_model(config, window=10, features=5)

    attention = [layer for layer in model.layers if isinstance(layer, MHAttention)]
    dense = hidden_dense_layers(model)

    assert len(attention) == config.attention_layers
    assert all(layer.key_size == config.key_size for layer in attention)
    assert all(layer.heads == config.heads for layer in attention)
    assert len(dense) == config.dense_layers
    assert all(layer.units == config.dense_units for layer in dense)
    assert tuple(model.inputs[0].shape) == (None, 10, 5)
    assert tuple(model.outputs[0].shape) == (None, 2)


def test_regularizer_losses_present():
    config = ModelConfig()
    model = build_model(config)
    dense = hidden_dense_layers(model)

    losses = [float(keras.ops.convert_to_numpy(loss)) for loss in model.losses]

    assert all(isinstance(layer.kernel_regularizer, keras.regularizers.L1L2) for layer in dense)
    assert dense[0].kernel_regularizer.get_config() == {"l1": config.l1, "l2": config.l2}
    assert len(losses) == config.dense_layers
    assert all(loss > 0 for loss in losses)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"window": 0}, "window"),
        ({"features": -2}, "features"),
        ({"window": 40.0}, "window"),
    ],
)
def test_build_model_invalid_argument(arguments, name):
    with pytest.raises(ValueError, match=f"`{name}` must be a positive int"):
        build_model(ModelConfig(), **arguments)


def test_build_model_invalid_config():
    config = dataclasses.replace(ModelConfig(), dense_layers=0)

    with pytest.raises(ValueError, match="`model.dense_layers` must be a positive int"):
        build_model(config)


def test_compile_model_uses_adam_and_mse():
    model = build_model(ModelConfig())

    compile_model(model, learning_rate=0.002)

    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.002)
    assert model.loss == "mse"


@pytest.mark.parametrize("learning_rate", [0.0, -1e-3, "0.001"])
def test_compile_model_invalid_learning_rate(learning_rate):
    model = build_model(ModelConfig())

    with pytest.raises(ValueError, match="`learning_rate` must be a positive number"):
        compile_model(model, learning_rate)


def test_set_seed_invalid_seed():
    with pytest.raises(ValueError, match="`seed` must be a non-negative int"):
        set_seed(-1)


def test_seeded_builds_have_identical_weights():
    set_seed(3)
    first = build_model(ModelConfig())
    set_seed(3)
    second = build_model(ModelConfig())

    for first_weight, second_weight in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(first_weight, second_weight)


def fit_small_model(seed: int) -> tuple[keras.Model, float, float]:
    """Fit a small model for a few epochs and return it with the loss before and after."""
    set_seed(seed)
    config = ModelConfig(dense_layers=2, dense_units=16)
    inputs = random_windows(count=128, window=8, features=4, seed=seed)
    # Targets in (-1, 1) that depend on the last bar only, so the model can learn them quickly.
    last_bar = inputs[:, -1, :]
    targets = np.stack([np.tanh(last_bar.mean(axis=1)), np.tanh(last_bar.std(axis=1) - 1.0)], axis=1)

    model = build_model(config, window=8, features=4)
    compile_model(model, learning_rate=3e-3)
    loss_before = model.evaluate(inputs, targets, batch_size=64, verbose=0)
    model.fit(inputs, targets, epochs=8, batch_size=32, shuffle=True, verbose=0)
    loss_after = model.evaluate(inputs, targets, batch_size=64, verbose=0)
    return model, loss_before, loss_after


@pytest.fixture(scope="module")
def seeded_fits() -> list[tuple[keras.Model, float, float]]:
    # Each fit traces a new training step, which took about 4 s on a 2-core CPU, so two tests
    # share these fits.
    return [fit_small_model(seed=11), fit_small_model(seed=11)]


def test_fit_reduces_loss(seeded_fits):
    _, loss_before, loss_after = seeded_fits[0]

    assert loss_after < 0.7 * loss_before


def test_seeded_fits_have_identical_weights(seeded_fits):
    (first, first_before, first_after), (second, second_before, second_after) = seeded_fits

    assert first_before == second_before
    assert first_after == second_after
    for first_weight, second_weight in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(first_weight, second_weight)


def test_load_model_gives_identical_outputs(tmp_path):
    model = build_model(ModelConfig(attention_layers=2))
    compile_model(model, learning_rate=1e-3)
    inputs = random_windows(count=8)
    expected = keras.ops.convert_to_numpy(model(inputs))
    path = tmp_path / "model.keras"

    model.save(path)
    loaded = load_model(path)
    actual = keras.ops.convert_to_numpy(loaded(inputs))

    assert isinstance(loaded.get_layer("attention_1"), MHAttention)
    assert not loaded.compiled
    np.testing.assert_array_equal(actual, expected)


def test_load_model_rejects_other_formats(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match=r"must name a `\.keras` file"):
        load_model(path)


def test_load_model_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.keras")


def test_load_model_rejects_remote_path():
    # Keras would download an hf:// path, so it must fail as a missing local file instead.
    with pytest.raises(FileNotFoundError):
        load_model("hf://sigbridge/model.keras")


def test_load_model_rejects_lambda_layer(tmp_path):
    bars = keras.Input(shape=(40, 4))
    outputs = keras.layers.Lambda(lambda values: values * 2.0)(bars)
    path = tmp_path / "lambda.keras"
    keras.Model(bars, outputs).save(path)

    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)
