"""Choice of the TensorFlow device for training and inference, made once at start-up."""

from __future__ import annotations

import logging

from sigbridge.config import ComputeConfig, ConfigError

logger = logging.getLogger(__name__)


class DeviceError(ConfigError):
    """Raised when the configured device cannot be used, e.g. `gpu` on a machine without one."""


def select_device(compute: ComputeConfig) -> str:
    """Make TensorFlow use the configured device, apply the XLA setting, and return "cpu" or "gpu".

    `auto` takes the GPU when TensorFlow lists one, `cpu` hides every GPU from TensorFlow, and
    `gpu` requires one. Call it before any model is built, because TensorFlow fixes the visible
    devices when its runtime starts.

    Raises:
        DeviceError: `gpu` was requested but TensorFlow lists no GPU, or the GPUs cannot be
            hidden any more because the TensorFlow runtime already started.
    """
    import tensorflow as tf  # noqa: PLC0415 - importing TensorFlow takes seconds

    from sigbridge.models import inference  # noqa: PLC0415

    gpus = tf.config.list_physical_devices("GPU")
    names = ", ".join(gpu.name for gpu in gpus) or "none"
    if compute.device == "gpu" and not gpus:
        raise DeviceError(
            "`compute.device` is \"gpu\", but TensorFlow lists no GPU. Install sigbridge with the `gpu` "
            "extra in a fresh environment and check `nvidia-smi`, or set compute.device to \"auto\" or \"cpu\""
        )
    if compute.device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as error:
            raise DeviceError(
                f"`compute.device` is \"cpu\", but the GPUs cannot be hidden after TensorFlow started: {error}"
            ) from None
    chosen = "gpu" if compute.device != "cpu" and gpus else "cpu"
    inference.set_jit_compile(compute.xla)
    logger.info(
        "compute device=%s requested=%s gpus=%s xla_batch_1=%s tensorflow=%s",
        chosen,
        compute.device,
        names,
        compute.xla,
        tf.__version__,
    )
    return chosen
