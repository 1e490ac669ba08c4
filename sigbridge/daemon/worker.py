"""The training worker: a child process that runs training jobs for the trainer thread.

Fitting in a thread of the daemon competes with the server thread for the GIL and for
TensorFlow's thread pools, which are process-wide and fixed once TensorFlow starts. A child
process has its own: its TensorFlow threads are set to `training.threads` before TensorFlow
starts, and it runs at `retraining.worker_nice`, so the server thread gets the CPU first.
bench/retrain_latency.py measures the difference.

The worker is started on the first job (spawned, never forked, because TensorFlow's threads do
not survive a fork), reused for later jobs, and replaced after it dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import traceback
from typing import Any

from sigbridge.models.jobs import TrainingJob, TrainingOutcome
from sigbridge.models.training import NotEnoughDataError

logger = logging.getLogger(__name__)

# Seconds between checks of the stop event and of the worker's health while a job runs.
POLL_SECONDS = 0.2
# Seconds a worker gets to exit after being asked, before it is killed.
EXIT_TIMEOUT = 2.0


class TrainingFailed(RuntimeError):
    """Raised when a job failed in the worker or the worker died; `details` is the traceback text."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class TrainingCancelled(RuntimeError):
    """Raised when the stop event was set while a job ran; the worker was killed."""


class TrainingWorker:
    """Runs `TrainingJob`s in a child process, one at a time.

    Args:
        threads: TensorFlow intra-op and inter-op threads of the worker; 0 lets TensorFlow choose.
        nice: niceness added to the worker process (0-19).
        device: `compute.device`; "cpu" hides the GPUs from the worker.
    """

    def __init__(self, *, threads: int, nice: int, device: str = "auto") -> None:
        self.threads = threads
        self.nice = nice
        self.device = device
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self.threads, self.device, logging.getLogger().getEffectiveLevel()),
            name="sigbridge-training-worker",
            daemon=True,
        )
        process.start()
        child.close()
        # Set here rather than in the child, so that the child's first second of imports (NumPy,
        # pandas, TensorFlow) already runs behind the serving thread.
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, process.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice))
            except OSError as error:
                logger.warning("cannot lower the priority of the training worker pid=%s: %s", process.pid, error)
        self._process, self._connection = process, parent
        logger.info(
            "started training worker pid=%s threads=%s nice=%s", process.pid, self.threads or "auto", self.nice
        )

    def run(self, job: TrainingJob, *, stop: threading.Event | None = None) -> TrainingOutcome:
        """Run `job` in the worker and return its outcome; the worker's log records are logged here.

        Raises:
            NotEnoughDataError: the job's bars hold too few labelled windows.
            TrainingFailed: the job raised, or the worker died while running it.
            TrainingCancelled: `stop` was set first; the worker was killed.
        """
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._discard()
                self._start()
            try:
                self._connection.send(job)
                reply = self._wait(stop)
            except (EOFError, OSError) as error:
                code = self._discard()
                raise TrainingFailed(f"the training worker exited with code {code} during the job: {error!r}") from None
        kind, payload, records = reply
        for record in records:
            target = logging.getLogger(record.name)
            if target.isEnabledFor(record.levelno):
                target.handle(record)
        if kind == "ok":
            return payload
        if kind == "not_enough_data":
            raise NotEnoughDataError(payload)
        message, details = payload
        raise TrainingFailed(message, details)

    def _wait(self, stop: threading.Event | None) -> tuple[str, Any, list[logging.LogRecord]]:
        while not self._connection.poll(POLL_SECONDS):
            if stop is not None and stop.is_set():
                self._discard()
                raise TrainingCancelled("the trainer is stopping; the training worker was killed")
            if not self._process.is_alive() and not self._connection.poll(0):
                raise EOFError("the worker process is gone")
        return self._connection.recv()

    def _discard(self) -> int | None:
        """Kill the worker if it runs and forget it; return its exit code."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join(EXIT_TIMEOUT)
        return process.exitcode

    def close(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Ask an idle worker to exit, and kill it after `timeout` seconds (or at once if busy)."""
        if not self._lock.acquire(timeout=timeout):
            # A job still runs: `run` kills the worker once its stop event is seen.
            return
        try:
            if self._process is not None and self._process.is_alive():
                try:
                    self._connection.send(None)
                except OSError:
                    pass
                self._process.join(timeout)
            self._discard()
        finally:
            self._lock.release()


class _RecordCollector(logging.Handler):
    """Keeps the log records of one job, made picklable, for the parent to log."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = record.getMessage()
        record.args = None
        record.exc_info = None
        self.records.append(record)


def _worker_main(connection, threads: int, device: str, log_level: int) -> None:
    """Set up TensorFlow in the worker process, then run jobs until the parent sends None or closes the pipe."""
    # The parent decides when the worker ends. A Ctrl-C or SIGTERM sent to the whole process
    # group would otherwise kill a job halfway, and the parent would report a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    # Thread pools are fixed when TensorFlow's runtime starts, so set them before any op runs.
    import tensorflow as tf  # noqa: PLC0415

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")

    from sigbridge.models import inference  # noqa: PLC0415
    from sigbridge.models.jobs import run_job  # noqa: PLC0415

    # Scoring runs batches only; compiling a batch-1 XLA function would be wasted.
    inference.set_jit_compile(False)
    collector = _RecordCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    root.setLevel(log_level)

    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        collector.records = []
        try:
            reply = ("ok", run_job(job))
        except NotEnoughDataError as error:
            reply = ("not_enough_data", str(error))
        except Exception as error:  # every failure goes back to the parent, which logs it
            reply = ("error", (f"{type(error).__name__}: {error}", traceback.format_exc()))
        try:
            connection.send((*reply, collector.records))
        except (OSError, ValueError):
            return
        except Exception as error:  # an outcome or a log record that cannot be pickled
            connection.send(("error", (f"cannot send the job's result: {type(error).__name__}: {error}", ""), []))
