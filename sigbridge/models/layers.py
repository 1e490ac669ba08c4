"""Custom Keras layers of the signal model."""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops


def _require_positive_int(name: str, value: object) -> int:
    # bool is a subclass of int, but `heads=True` is a mistake rather than one head.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, received {name}={value!r}. Pass an integer >= 1.")
    # int() turns a NumPy integer into a plain int, which get_config can write as JSON.
    return int(value)


@keras.saving.register_keras_serializable(package="sigbridge")
class MHAttention(keras.layers.Layer):
    """Multi-head self-attention block over the bars of a window.

    The block is a post-norm transformer encoder layer. Self-attention is followed by a residual
    connection and layer normalization, then a two-layer feed-forward network (hidden width 4F,
    swish) is followed by a second residual connection and layer normalization. Shapes use
    B = batch, T = bars, F = features per bar, H = heads and K = key size.

    Args:
        key_size: size K of each head's query, key and value vectors.
        heads: number of attention heads H.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Raises:
        ValueError: if `key_size` or `heads` is not a positive int.

    Call arguments:
        inputs: float tensor of shape (B, T, F).
        return_attention_scores: if True, also return the attention weights.

    Returns:
        A tensor of shape (B, T, F). With `return_attention_scores=True`, a tuple of that tensor
        and the attention weights of shape (B, H, T, T), where the last axis is the key axis and
        sums to 1.
    """

    def __init__(self, key_size: int, heads: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.key_size = _require_positive_int("key_size", key_size)
        self.heads = _require_positive_int("heads", heads)

        # The projections do not depend on F, so they exist before `build`.
        projection_units = self.heads * self.key_size
        self.query_dense = keras.layers.Dense(projection_units, name="query", dtype=self.dtype_policy)
        self.key_dense = keras.layers.Dense(projection_units, name="key", dtype=self.dtype_policy)
        self.value_dense = keras.layers.Dense(projection_units, name="value", dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        """Create the sublayers that depend on F and build every sublayer's weights.

        Args:
            input_shape: shape (B, T, F) of the input, where F must be known.

        Raises:
            ValueError: if the input is not rank 3 or its last dimension is unknown.
        """
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{self.__class__.__name__} expects inputs of shape (batch, bars, features) with a "
                f"known number of features, received input_shape={tuple(input_shape)}"
            )
        features = input_shape[-1]
        projected_shape = (*input_shape[:-1], self.heads * self.key_size)
        hidden_shape = (*input_shape[:-1], 4 * features)

        self.output_dense = keras.layers.Dense(features, name="attention_output", dtype=self.dtype_policy)
        self.feed_forward_hidden = keras.layers.Dense(
            4 * features, activation="swish", name="feed_forward_hidden", dtype=self.dtype_policy
        )
        self.feed_forward_output = keras.layers.Dense(features, name="feed_forward_output", dtype=self.dtype_policy)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="attention_norm", dtype=self.dtype_policy
        )
        self.feed_forward_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="feed_forward_norm", dtype=self.dtype_policy
        )

        # Build with explicit shapes so that every weight exists before the first call, which
        # `load_model` needs to assign the saved weights.
        self.query_dense.build(input_shape)
        self.key_dense.build(input_shape)
        self.value_dense.build(input_shape)
        self.output_dense.build(projected_shape)
        self.attention_norm.build(input_shape)
        self.feed_forward_hidden.build(input_shape)
        self.feed_forward_output.build(hidden_shape)
        self.feed_forward_norm.build(input_shape)

    def _split_heads(self, projected, batch_size, bars):
        # (B, T, H*K) -> (B, T, H, K) -> (B, H, T, K)
        split = ops.reshape(projected, (batch_size, bars, self.heads, self.key_size))
        return ops.transpose(split, (0, 2, 1, 3))

    def call(self, inputs, return_attention_scores: bool = False):
        shape = ops.shape(inputs)
        batch_size, bars = shape[0], shape[1]

        # Project and split into heads, each (B, H, T, K).
        query = self._split_heads(self.query_dense(inputs), batch_size, bars)
        key = self._split_heads(self.key_dense(inputs), batch_size, bars)
        value = self._split_heads(self.value_dense(inputs), batch_size, bars)

        # Scaled dot-product attention: scores (B, H, T, T), softmax over the key axis.
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))) / math.sqrt(self.key_size)
        attention_weights = ops.softmax(scores, axis=-1)
        attended = ops.matmul(attention_weights, value)

        # Merge heads: (B, H, T, K) -> (B, T, H, K) -> (B, T, H*K), then project back to F.
        merged = ops.reshape(
            ops.transpose(attended, (0, 2, 1, 3)), (batch_size, bars, self.heads * self.key_size)
        )
        attention_output = self.output_dense(merged)
        normalized = self.attention_norm(inputs + attention_output)

        # Position-wise feed-forward network with its own residual connection.
        feed_forward = self.feed_forward_output(self.feed_forward_hidden(normalized))
        outputs = self.feed_forward_norm(normalized + feed_forward)

        if return_attention_scores:
            return outputs, attention_weights
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores: bool = False):
        # Overridden because the default spec from `compute_output_shape` cannot see
        # `return_attention_scores`, which adds a second output.
        output_spec = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return output_spec
        batch_size, bars = inputs.shape[0], inputs.shape[1]
        weights_spec = keras.KerasTensor((batch_size, self.heads, bars, bars), dtype=self.compute_dtype)
        return output_spec, weights_spec

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"key_size": self.key_size, "heads": self.heads})
        return config
