"""Fast model calls for serving: concrete functions traced once with fixed input signatures.

`model.predict` builds a data pipeline on every call, and an eager call runs op by op, so both
cost tens of milliseconds per bar. A concrete function traced once costs under a millisecond at
batch 1 on a 2-core CPU, and compiling the batch-1 function with XLA trims it further.
docs/benchmarks.md has the figures, measured with `python -m bench`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

# Largest difference between the XLA and the graph forward pass accepted at warm-up. Both run
# the same float32 ops, but XLA may fuse and reorder them, which moves results by a few ulps.
XLA_TOLERANCE = 1e-5

# Windows per forward pass when a call brings more. The attention scores of a chunk take
# chunk * heads * T * T floats (13 MB at 256 windows). With TensorFlow 2.21 on a 2-core AMD EPYC
# VM, chunks of 1,024 and 4,096 windows ran about 2x slower per window than 256, and 128 or 512 no
# faster. A GPU spreads its kernel launches over more windows, so it gets larger chunks.
# NOTE: GPU_CHUNK_SIZE is an estimate; no GPU run has measured it.
CPU_CHUNK_SIZE = 256
GPU_CHUNK_SIZE = 4096

_settings = {"jit_compile": True}


def set_jit_compile(enabled: bool) -> None:
    """Set whether Predictors created from now on compile their batch-1 function with XLA."""
    _settings["jit_compile"] = bool(enabled)


class Predictor:
    """Calls a Keras model through concrete functions traced once, never through `predict`.

    Two functions are traced when the Predictor is created. One takes a single window, with the
    input signature (1, T, F), and XLA compiles it when `jit_compile` is on. The other takes any
    batch size (None, T, F) and runs without XLA, because XLA compiles a new program for every
    batch size it meets.

    The graph function is traced before the constructor returns. XLA compiles for about a
    second in a background thread, started by the first single-window call, so neither loading a
    bundle nor a bundle that never serves (`sigbridge train`) pays for it. Until it is done,
    single windows go through the graph function. The XLA function is used only if its output on
    a probe window matches the graph function's to within `XLA_TOLERANCE`. Otherwise it is
    dropped with a WARNING.

    Args:
        model: a Keras model mapping (B, T, F) float32 to (B, 2).
        window: bars T per input window.
        features: features F per bar.
        jit_compile: compile the batch-1 function with XLA; None takes the process setting
            from `set_jit_compile` (on unless configured otherwise).
        chunk_size: windows per forward pass for large calls; None picks `GPU_CHUNK_SIZE`
            when TensorFlow lists a GPU, else `CPU_CHUNK_SIZE`.
    """

    def __init__(
        self,
        model,
        window: int,
        features: int = 4,
        *,
        jit_compile: bool | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self._model = model
        self._shape = (window, features)
        if chunk_size is None:
            chunk_size = GPU_CHUNK_SIZE if tf.config.list_logical_devices("GPU") else CPU_CHUNK_SIZE
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive int, received chunk_size={chunk_size!r}")
        self.chunk_size = int(chunk_size)

        # Tracing happens here, in the thread that builds the bundle, so the first signal does
        # not pay for it.
        probe = tf.constant(np.random.default_rng(0).normal(size=(1, window, features)), dtype=tf.float32)
        batch_function = tf.function(self._forward).get_concrete_function(
            tf.TensorSpec(shape=(None, window, features), dtype=tf.float32)
        )
        self._batch_function = _direct_caller(batch_function, probe)
        self._single_function = self._batch_function
        self.jit_compiled = False
        self._xla_done = threading.Event()
        self._xla_start = threading.Lock()
        self._xla_probe: tuple[tf.Tensor, np.ndarray] | None = None
        if _settings["jit_compile"] if jit_compile is None else jit_compile:
            self._xla_probe = (probe, batch_function(probe).numpy())
        else:
            self._xla_done.set()

    def _forward(self, windows):
        return self._model(windows, training=False)

    def wait_for_xla(self, timeout: float | None = None) -> bool:
        """Start the XLA compilation if no call has, wait until it ends, and return whether XLA is in use.

        Returns False at once when XLA is off, and False after `timeout` seconds when the
        compilation is still running.
        """
        self._start_xla()
        self._xla_done.wait(timeout)
        return self.jit_compiled

    def _start_xla(self) -> None:
        with self._xla_start:
            if self._xla_probe is None:
                return
            probe, expected = self._xla_probe
            self._xla_probe = None
        # Not a daemon thread, so the interpreter waits for it at exit: with TensorFlow 2.21, a
        # daemon thread still compiling at exit made `sigbridge train` abort with SIGABRT.
        threading.Thread(target=self._try_xla, args=(probe, expected), name="sigbridge-xla-compile").start()

    def _try_xla(self, probe: tf.Tensor, expected: np.ndarray) -> None:
        try:
            compiled = tf.function(self._forward, jit_compile=True).get_concrete_function(
                tf.TensorSpec(shape=probe.shape, dtype=tf.float32)
            )
            # The first call compiles the XLA program.
            difference = float(np.max(np.abs(compiled(probe).numpy() - expected)))
            if not difference <= XLA_TOLERANCE:
                logger.warning(
                    "XLA batch-1 output differs from the graph function by %.3g (tolerance %.0e); using the graph function",
                    difference,
                    XLA_TOLERANCE,
                )
                return
            # One attribute assignment, so a concurrent `predict` calls either the old or the new function.
            self._single_function = _direct_caller(compiled, probe)
            self.jit_compiled = True
        except Exception as error:  # a failed compilation leaves the graph function serving
            logger.warning(
                "XLA compilation of the batch-1 forward pass failed; using the graph function: %s", error, exc_info=True
            )
        finally:
            self._xla_done.set()

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
        count = len(windows)
        if count == 1:
            if self._xla_probe is not None:
                self._start_xla()
            return self._single_function(tf.constant(windows)).numpy()
        if count <= self.chunk_size:
            return self._batch_function(tf.constant(windows)).numpy()
        outputs = np.empty((count, 2), dtype=np.float32)
        for start in range(0, count, self.chunk_size):
            chunk = windows[start : start + self.chunk_size]
            outputs[start : start + len(chunk)] = self._batch_function(tf.constant(chunk)).numpy()
        return outputs


def _direct_caller(function, probe: tf.Tensor) -> Callable[[tf.Tensor], tf.Tensor]:
    """Return a caller of `function` that skips the argument binding of `ConcreteFunction.__call__`.

    The binding cost about 0.2 ms per call with TensorFlow 2.21 on a 2-core CPU, a third of a
    batch-1 forward pass.
    """
    captured = function.captured_inputs

    def call_flat(windows: tf.Tensor) -> tf.Tensor:
        return function._call_flat([windows], captured)

    # NOTE: `_call_flat` is private TensorFlow API, checked with TensorFlow 2.21 only. When it is
    # missing or gives a different result, the public call is used instead.
    try:
        same = np.array_equal(call_flat(probe).numpy(), function(probe).numpy())
    except (AttributeError, TypeError, ValueError) as error:
        logger.debug("calling the concrete function directly failed; using the public call: %s", error)
        return function
    return call_flat if same else function
