import keras
import numpy as np
import pytest

from sigbridge.models.layers import MHAttention


def random_bars(batch: int, bars: int, features: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, bars, features)).astype("float32")


@pytest.mark.parametrize(
    ("batch", "bars", "features", "key_size", "heads"),
    [
        (2, 40, 4, 4, 8),  # F=4 differs from H*K=32
        (1, 5, 7, 3, 2),  # F=7 differs from H*K=6
        (3, 12, 16, 8, 2),  # F equals H*K
        (4, 2, 1, 1, 1),  # F=1 and one head of size 1
    ],
)
def test_output_shape_equals_input_shape(batch, bars, features, key_size, heads):
    layer = MHAttention(key_size, heads)
    inputs = random_bars(batch, bars, features)

    outputs = layer(inputs)

    assert tuple(outputs.shape) == (batch, bars, features)
    assert layer.compute_output_shape((None, bars, features)) == (None, bars, features)


def test_attention_scores_shape_and_sum():
    layer = MHAttention(key_size=4, heads=8)
    inputs = random_bars(batch=3, bars=10, features=5)

    outputs, weights = layer(inputs, return_attention_scores=True)
    weights = keras.ops.convert_to_numpy(weights)

    assert tuple(outputs.shape) == (3, 10, 5)
    assert weights.shape == (3, 8, 10, 10)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), np.ones((3, 8, 10)), rtol=0, atol=1e-5)


def test_attention_scores_symbolic_spec():
    bars = keras.Input(shape=(40, 4))

    outputs, weights = MHAttention(key_size=4, heads=8)(bars, return_attention_scores=True)

    assert tuple(outputs.shape) == (None, 40, 4)
    assert tuple(weights.shape) == (None, 8, 40, 40)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"key_size": 0, "heads": 8}, "key_size"),
        ({"key_size": -3, "heads": 8}, "key_size"),
        ({"key_size": 4.0, "heads": 8}, "key_size"),
        ({"key_size": 4, "heads": 0}, "heads"),
        ({"key_size": 4, "heads": "8"}, "heads"),
        ({"key_size": 4, "heads": True}, "heads"),
    ],
)
def test_invalid_argument_names_argument(arguments, name):
    with pytest.raises(ValueError) as raised:
        MHAttention(**arguments)

    message = str(raised.value)
    assert f"`{name}` must be a positive int" in message
    assert f"received {name}={arguments[name]!r}" in message


def test_input_without_features_axis_rejected():
    layer = MHAttention(key_size=4, heads=2)

    with pytest.raises(ValueError, match=r"\(batch, bars, features\)"):
        layer.build((None, 40))


def test_config_round_trip():
    layer = MHAttention(key_size=3, heads=5, name="attention_test")
    config = layer.get_config()

    restored = MHAttention.from_config(config)

    assert config["key_size"] == 3
    assert config["heads"] == 5
    assert config["name"] == "attention_test"
    assert restored.get_config() == config


def test_numpy_integer_arguments_stored_as_int():
    layer = MHAttention(key_size=np.int64(3), heads=np.int32(5))

    config = layer.get_config()

    assert type(config["key_size"]) is int
    assert type(config["heads"]) is int
    assert config["key_size"] == 3
    assert config["heads"] == 5


def test_weights_exist_after_build():
    layer = MHAttention(key_size=4, heads=8)

    layer.build((None, 40, 4))

    # Q, K, V, W0, FF1 and FF2 each have a kernel and a bias. Each LayerNorm has a gamma and a beta.
    assert len(layer.weights) == 16
    assert tuple(layer.query_dense.kernel.shape) == (4, 32)
    assert tuple(layer.output_dense.kernel.shape) == (32, 4)
    assert tuple(layer.feed_forward_hidden.kernel.shape) == (4, 16)
    assert tuple(layer.feed_forward_output.kernel.shape) == (16, 4)


def test_saved_model_gives_identical_outputs(tmp_path):
    bars = keras.Input(shape=(12, 6))
    outputs = MHAttention(key_size=4, heads=3, name="attention")(bars)
    model = keras.Model(bars, outputs)
    inputs = random_bars(batch=4, bars=12, features=6)
    expected = keras.ops.convert_to_numpy(model(inputs))
    path = tmp_path / "attention.keras"

    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    actual = keras.ops.convert_to_numpy(loaded(inputs))

    assert isinstance(loaded.get_layer("attention"), MHAttention)
    assert loaded.get_layer("attention").get_config() == model.get_layer("attention").get_config()
    np.testing.assert_array_equal(actual, expected)


def test_output_normalized_per_position_at_init():
    # At init LayerNorm's gamma is 1 and beta is 0, so every position of the output has zero
    # mean and unit variance across the F features.
    layer = MHAttention(key_size=4, heads=8)
    inputs = 5.0 * random_bars(batch=2, bars=20, features=6) + 3.0

    outputs = keras.ops.convert_to_numpy(layer(inputs))

    np.testing.assert_allclose(outputs.mean(axis=-1), np.zeros((2, 20)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs.var(axis=-1), np.ones((2, 20)), rtol=0, atol=1e-3)


def layer_normalize(values: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    mean = values.mean(axis=-1, keepdims=True)
    variance = values.var(axis=-1, keepdims=True)
    return (values - mean) / np.sqrt(variance + epsilon)


def test_residual_path_with_zeroed_branches():
    # With W0 and FF2 set to zero, both branches add nothing, so the output is the input passed
    # through the two residual connections and LayerNorms only.
    layer = MHAttention(key_size=4, heads=2)
    inputs = random_bars(batch=2, bars=8, features=5)
    layer.build(inputs.shape)
    for dense in (layer.output_dense, layer.feed_forward_output):
        dense.kernel.assign(np.zeros(dense.kernel.shape, dtype="float32"))
        dense.bias.assign(np.zeros(dense.bias.shape, dtype="float32"))

    outputs = keras.ops.convert_to_numpy(layer(inputs))

    expected = layer_normalize(layer_normalize(inputs))
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-5)
