"""Build, compile, seed and load the signal model."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import keras

from sigbridge.config import FeatureConfig, ModelConfig
from sigbridge.models.layers import MHAttention  # importing registers the layer for `load_model`

# Column order of the "signal" output. Both columns are tanh outputs in (-1, 1).
DIRECTION_COLUMN = 0
DISTANCE_COLUMN = 1


def _require_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, received {name}={value!r}. Pass an integer >= 1.")
    return int(value)


def build_model(model: ModelConfig, window: int = FeatureConfig.window, features: int = 4) -> keras.Model:
    """Build the uncompiled signal model.

    The network is `model.attention_layers` MHAttention blocks over the bars, a Flatten, then
    `model.dense_layers` swish Dense layers with L1L2 kernel regularization, and a Dense(2, tanh)
    output named "signal". Column 0 of the output is the direction score and column 1 the scaled
    distance.

    Args:
        model: architecture and regularization settings.
        window: bars T per input window.
        features: features F per bar.

    Returns:
        A functional model that maps input "bars" of shape (B, T, F) to "signal" of shape (B, 2).

    Raises:
        ValueError: if `window` or `features` is not a positive int, or a `model` field is out
            of range.
    """
    window = _require_positive_int("window", window)
    features = _require_positive_int("features", features)
    _require_positive_int("model.attention_layers", model.attention_layers)
    _require_positive_int("model.dense_layers", model.dense_layers)
    _require_positive_int("model.dense_units", model.dense_units)
    if model.l1 < 0 or model.l2 < 0:
        raise ValueError(f"`model.l1` and `model.l2` must be >= 0, received l1={model.l1}, l2={model.l2}")

    bars = keras.Input(shape=(window, features), name="bars")

    # Attention blocks keep the shape (B, T, F).
    hidden = bars
    for index in range(model.attention_layers):
        hidden = MHAttention(model.key_size, model.heads, name=f"attention_{index}")(hidden)

    # Flatten (B, T, F) to (B, T*F) for the dense head.
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    for index in range(model.dense_layers):
        hidden = keras.layers.Dense(
            model.dense_units,
            activation="swish",
            kernel_regularizer=keras.regularizers.L1L2(l1=model.l1, l2=model.l2),
            name=f"dense_{index}",
        )(hidden)

    signal = keras.layers.Dense(2, activation="tanh", name="signal")(hidden)
    return keras.Model(inputs=bars, outputs=signal, name="sigbridge_signal")


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """Compile `model` in place with Adam and mean squared error.

    Raises:
        ValueError: if `learning_rate` is not a positive number.
    """
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(
            f"`learning_rate` must be a positive number, received learning_rate={learning_rate!r}"
        )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow ops deterministic.

    Call it before `build_model` and `compile_model`. On a machine with a GPU, Keras 3.15
    compiles `fit` with XLA unless op determinism is already enabled when the model is compiled.

    Op determinism is a process-wide TensorFlow setting that stays on for the rest of the
    process. With it on, TensorFlow raises for ops that have no deterministic kernel.

    Raises:
        ValueError: if `seed` is not a non-negative int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, received seed={seed!r}")
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # NOTE: reproducible training is tested on CPU only. On a GPU, TensorFlow raises at run
        # time if an op of the model has no deterministic kernel, and no GPU run has checked that.
        tf.config.experimental.enable_op_determinism()


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a model saved in the Keras v3 `.keras` format, uncompiled.

    Loading runs in safe mode, so Keras raises ValueError for a file that contains a Lambda
    layer with a serialized Python function. Only local `.keras` files are accepted, because
    `keras.models.load_model` would otherwise also fetch `hf://` and other remote paths and
    read legacy H5 files.

    Raises:
        ValueError: if the path does not end in `.keras`.
        FileNotFoundError: if the path is not an existing local file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"`path` must name a `.keras` file, received path={str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return keras.models.load_model(path, safe_mode=True, compile=False)
