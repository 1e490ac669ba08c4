"""Daemon life cycle: start-up checks, build the parts, serve, reload on SIGHUP, stop cleanly.

Start-up checks the bind policy, the CURVE keys and the bar database before the slow steps,
restoring the stored streams and loading their model bundles, and binds last; systemd hears
READY=1 only after that.

Signals only set events. SIGTERM and SIGINT stop the serving loop: requests already queued are
answered, the trainer gets TRAINER_STOP_TIMEOUT seconds, the bar database is checkpointed and
closed. SIGHUP reloads the config file and the model bundles from the serving loop, keeping
every connection; an invalid new config is rejected and the current one stays.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import zmq

from sigbridge import __version__
from sigbridge.config import Config, ConfigError
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.notify import Notifier
from sigbridge.daemon.reload import changed_keys, merge_reloaded, reload_bundles
from sigbridge.daemon.security import check_bind_policy, load_curve_keys
from sigbridge.daemon.server import Server
from sigbridge.daemon.storage import BarStore
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.trainer import Trainer
from sigbridge.models.bundle import list_bundles
from sigbridge.models.device import select_device

logger = logging.getLogger(__name__)

# Seconds of systemd's start timeout granted per model bundle loaded at start-up.
BUNDLE_LOAD_ALLOWANCE = 60.0
# Seconds the trainer thread gets to finish its current job on shutdown.
TRAINER_STOP_TIMEOUT = 10.0
# Seconds between STATUS refreshes sent to systemd (only changed lines are sent).
STATUS_INTERVAL = 10.0
# Seconds the ZeroMQ context gets to send the last replies before the daemon exits without them.
CONTEXT_TERM_TIMEOUT = 5.0


def install_signal_handlers(stop: threading.Event, reload: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`, SIGHUP sets `reload`; the serving loop does the work."""

    def request_stop(signum, _frame) -> None:
        stop.set()

    def request_reload(signum, _frame) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)


def run_daemon(
    config: Config,
    *,
    stop: threading.Event | None = None,
    reload: threading.Event | None = None,
    train: bool = True,
    on_ready: Callable[[str], None] | None = None,
    load_config: Callable[[], Config] | None = None,
    notifier: Notifier | None = None,
    lockstep: bool = False,
) -> bool:
    """Serve until `stop` is set (by SIGTERM or SIGINT when called from the main thread).

    Args:
        config: the effective configuration.
        stop: set to shut down; a new event when None.
        reload: set to reload (SIGHUP sets it from the main thread); a new event when None.
        train: run the trainer (initial training and retraining).
        on_ready: called with the bound endpoint once the daemon serves.
        load_config: reads the config again for a reload; without it a reload only rescans the
            model bundles.
        notifier: systemd notifications; built from `NOTIFY_SOCKET` when None.
        lockstep: train in the serving thread at the bar that makes a stream due, as replay
            does, instead of in the background.

    Returns:
        True when every thread ended in time, False when the trainer was still running.

    Raises:
        ConfigError: the bind policy or the CURVE keys stop the start-up.
        DeviceError: `compute.device` asks for a GPU that TensorFlow does not see.
        StorageError: the bar database cannot be opened.
        BindError: the endpoint cannot be bound.
    """
    stop = stop or threading.Event()
    reload = reload or threading.Event()
    notifier = notifier or Notifier.from_environment()
    notifier.status("starting")
    logger.info(
        "starting sigbridge daemon version=%s pid=%s state_dir=%s training=%s",
        __version__,
        os.getpid(),
        config.paths.state_dir,
        train,
    )
    logger.debug("effective config: %s", config.to_dict())

    # Cheap checks first, so a misconfiguration stops the daemon before the slow steps.
    check_bind_policy(config)
    curve = load_curve_keys(config.security)
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers(stop, reload)
    config.paths.models_dir.mkdir(parents=True, exist_ok=True)
    store = BarStore(config.paths.bars_database, synchronous=config.storage.synchronous)
    context = zmq.Context()
    trainer = None
    try:
        # Before any model is loaded or built: TensorFlow fixes its visible devices when it starts.
        select_device(config.compute)
        daemon = _Daemon(config, store, train, notifier, reload, load_config, lockstep=lockstep)
        trainer = daemon.trainer
        daemon.serve(context, curve, stop, on_ready)
    finally:
        notifier.stopping()
        clean = _stop_trainer(trainer)
        store.close()
        _terminate(context)
        notifier.close()
        logger.info("sigbridge daemon stopped")
    return clean


class _Daemon:
    """The parts of a running daemon, and the housekeeping the serving loop calls between requests."""

    def __init__(
        self,
        config,
        store,
        train: bool,
        notifier: Notifier,
        reload: threading.Event,
        load_config,
        *,
        lockstep: bool = False,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.reload_requested = reload
        self.load_config = load_config
        self.registry = ModelRegistry(config.paths.models_dir, keep_bundles=config.retraining.keep_bundles)
        self.trainer = Trainer(config, self.registry, lockstep=lockstep) if train else None

        notifier.status("restoring streams")
        self.dispatcher = Dispatcher(config, self.registry, self.trainer, store=store)
        self._load_bundles(config)
        if self.trainer is not None:
            self.trainer.start()
        self.server = None
        self._next_status = 0.0

    def _load_bundles(self, config: Config) -> None:
        """Load the newest bundle of every symbol and timeframe on disk before READY.

        Every bundle is loaded, not only those of stored streams, so that the first `hello` of a
        new stream does not load one in the serving loop (about 1 s on 2 cores). A bundle that
        cannot be loaded is logged and skipped; its streams get no signals until a reload.
        """
        models = {(key.symbol, key.timeframe) for key in self.dispatcher.streams}
        try:
            manifests = list_bundles(config.paths.models_dir)
        except OSError as error:
            logger.error("cannot list the model bundles in %s: %s", config.paths.models_dir, error)
            manifests = []
        for manifest in manifests:
            symbol, timeframe = manifest.get("symbol"), manifest.get("timeframe")
            if manifest["intact"] and isinstance(symbol, str) and isinstance(timeframe, str) and symbol and timeframe:
                models.add((symbol, timeframe))
        self.notifier.status(f"loading the model bundles of {len(models)} symbols and timeframes")
        for symbol, timeframe in sorted(models):
            # Each load may take seconds, so systemd's start timeout moves on with every bundle.
            self.notifier.extend_timeout(BUNDLE_LOAD_ALLOWANCE)
            try:
                self.registry.get(symbol, timeframe)
            except Exception:  # one bad bundle folder must not stop the daemon from starting
                logger.error("cannot load the model bundle symbol=%s timeframe=%s; skipped", symbol, timeframe, exc_info=True)
            self.notifier.watchdog()

    def serve(self, context: zmq.Context, curve, stop: threading.Event, on_ready) -> None:
        self.server = Server(self.dispatcher, context=context, curve=curve, tick=self.tick)

        def ready(endpoint: str) -> None:
            self.notifier.ready(self.status_line())
            logger.info("ready endpoint=%s streams=%s", endpoint, len(self.dispatcher.streams))
            if on_ready is not None:
                on_ready(endpoint)

        self.server.serve(stop, on_ready=ready)

    def status_line(self) -> str:
        endpoint = self.server.endpoint if self.server is not None else None
        connections = self.server.connections if self.server is not None else 0
        return f"serving streams={len(self.dispatcher.streams)} connections={connections} endpoint={endpoint}"

    def tick(self) -> None:
        """Ping the watchdog, run a requested reload, refresh STATUS; called by the serving loop."""
        self.notifier.watchdog()
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            try:
                self.reload()
            except Exception:  # a failed reload must not stop a daemon that serves
                logger.error("reload failed; the daemon keeps serving with what it had", exc_info=True)
                self.notifier.ready(self.status_line() + " (last reload failed)")
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL
            self.notifier.status(self.status_line())

    def reload(self) -> None:
        """Apply a new config and publish newer model bundles without dropping connections.

        The dispatcher switches at once. The trainer switches at the start of its next job, and
        the registry prunes to the new `retraining.keep_bundles` at the next promotion.
        """
        self.notifier.reloading()
        logger.info("reloading configuration and model bundles")
        try:
            loaded = self.load_config() if self.load_config is not None else self.config
            merged, waiting = merge_reloaded(self.config, loaded)
            client_keys = None
            if self.server is not None and self.server.authenticator is not None:
                client_keys = self.server.authenticator.reload_client_keys()
        except ConfigError as error:
            logger.error("rejected the reloaded configuration; keeping the current one: %s", error)
            self.notifier.ready(self.status_line() + " (last reload rejected)")
            return
        for name in waiting:
            logger.warning("config key %s changed; the new value takes effect after a restart", name)
        for name, value in changed_keys(self.config, merged):
            if self.trainer is None and name.startswith(("training.", "retraining.")):
                logger.info("config key %s changed to %r; training is off in this daemon (--no-train)", name, value)
            else:
                logger.info("config key %s changed to %r; applied", name, value)
        self.config = merged
        self.dispatcher.apply_config(merged)
        self.registry.keep_bundles = merged.retraining.keep_bundles
        if self.trainer is not None:
            self.trainer.apply_config(merged)
        logger.debug("effective config: %s", merged.to_dict())

        keys = {(key.symbol, key.timeframe) for key in self.dispatcher.streams}
        published = reload_bundles(self.registry, keys, on_progress=self.notifier.watchdog)
        logger.info(
            "reloaded configuration and model bundles bundles_published=%s client_keys=%s",
            len(published),
            "unchanged (CURVE off)" if client_keys is None else client_keys,
        )
        self.notifier.ready(self.status_line())


def _stop_trainer(trainer) -> bool:
    if trainer is None:
        return True
    if trainer.stop(TRAINER_STOP_TIMEOUT):
        return True
    logger.warning("trainer thread still running after %.0f s; exiting without it", TRAINER_STOP_TIMEOUT)
    return False


def _terminate(context: zmq.Context) -> None:
    # term() waits for every socket's linger, so it runs in a helper thread with a deadline.
    terminator = threading.Thread(target=context.term, name="sigbridge-zmq-term", daemon=True)
    terminator.start()
    terminator.join(CONTEXT_TERM_TIMEOUT)
    if terminator.is_alive():
        logger.warning("ZeroMQ context still closing after %.0f s; unsent replies are dropped", CONTEXT_TERM_TIMEOUT)
