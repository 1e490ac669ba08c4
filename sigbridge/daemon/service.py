"""Daemon life cycle: build the parts, handle signals, serve, and stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from sigbridge.config import Config
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.server import Server
from sigbridge.daemon.trainer import InitialTrainer, ModelRegistry

logger = logging.getLogger(__name__)

# Seconds the trainer thread gets to finish its current job on shutdown.
TRAINER_STOP_TIMEOUT = 10.0


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT only set the stop event; the main loop does the work."""

    def request_stop(signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run_daemon(
    config: Config,
    *,
    stop: threading.Event | None = None,
    train: bool = True,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until `stop` is set (by SIGTERM or SIGINT when called from the main thread).

    Raises:
        BindError: the endpoint cannot be bound.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers(stop)
    logger.debug("effective config: %s", config.to_dict())

    config.paths.models_dir.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(config.paths.models_dir)
    trainer = InitialTrainer(config, registry) if train else None
    if trainer is not None:
        trainer.start()
    dispatcher = Dispatcher(config, registry, trainer)
    server = Server(dispatcher)
    logger.info("starting sigbridge daemon state_dir=%s training=%s", config.paths.state_dir, train)
    try:
        server.serve(stop, on_ready=on_ready)
    finally:
        if trainer is not None and not trainer.stop(TRAINER_STOP_TIMEOUT):
            logger.warning("trainer thread still running after %.0f s; exiting without it", TRAINER_STOP_TIMEOUT)
        logger.info("sigbridge daemon stopped")
