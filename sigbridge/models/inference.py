"""Fast model calls for serving: a traced function with a fixed input signature."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class Predictor:
    """Calls a Keras model through one `tf.function`, traced once for any batch size.

    `model.predict` builds a data pipeline on every call, which costs tens of milliseconds per
    bar; a traced call with a fixed signature costs about a millisecond at batch 1.
    """

    def __init__(self, model, window: int, features: int = 4) -> None:
        self._model = model
        self._shape = (window, features)
        self._function = tf.function(
            self._forward,
            input_signature=[tf.TensorSpec(shape=(None, window, features), dtype=tf.float32)],
            reduce_retracing=True,
        )

    def _forward(self, windows):
        return self._model(windows, training=False)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Run the model on scaled windows.

        Args:
            windows: (B, T, F) = batch, bars, features per bar; cast to float32.

        Returns:
            (B, 2) float32: column 0 the direction score, column 1 the scaled distance.

        Raises:
            ValueError: when the windows do not have the model's (T, F) shape.
        """
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != self._shape:
            raise ValueError(
                f"`windows` must have shape (B, {self._shape[0]}, {self._shape[1]}), received {windows.shape}"
            )
        return self._function(tf.constant(windows)).numpy()
