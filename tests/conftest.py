"""Shared fixtures: the bundled real bars, a small fast config, a trained bundle and a live daemon."""

import os

# TensorFlow's C++ log prints harmless version notices, even at ERROR level; Python errors raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from sigbridge.config import Config  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent.parent / "examples" / "data"
EURUSD_FILE = DATA_DIR / "EURUSD_H1.csv"
# Bars of the bundled file used to train the shared test bundle; later bars stay unseen.
TRAIN_BARS = 2000


@pytest.fixture(scope="session")
def eurusd():
    """The bundled MetaTrader 5 export of EURUSD H1 as a `BarFile`."""
    from sigbridge.barfile import read_bars

    return read_bars(EURUSD_FILE)


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory) -> Config:
    """Defaults with a short training run, so tests train in seconds."""
    config = Config()
    config = config.replace("training", epochs=3, patience=1, min_examples=200, walk_forward_folds=2)
    # Off, so a background retrain cannot change the model version under a test; tests of
    # retraining turn it on.
    config = config.replace("retraining", enabled=False)
    return config.replace("paths", state_dir=tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def trained_models_dir(eurusd, fast_config, tmp_path_factory) -> Path:
    """A models folder holding one EURUSD H1 bundle trained on the first TRAIN_BARS bars."""
    from sigbridge.models.publish import train_bundle

    models_dir = tmp_path_factory.mktemp("trained") / "models"
    train_bundle(
        eurusd.bars[:TRAIN_BARS],
        point=eurusd.point,
        symbol="EURUSD",
        timeframe="H1",
        config=fast_config,
        models_dir=models_dir,
    )
    return models_dir


@dataclasses.dataclass
class RunningDaemon:
    endpoint: str
    config: Config
    stop_event: threading.Event
    thread: threading.Thread
    errors: list
    # Set it to make the daemon reload, as SIGHUP does for `sigbridge serve`.
    reload_event: threading.Event = dataclasses.field(default_factory=threading.Event)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "daemon thread did not stop"


def start_daemon(
    config: Config, *, train: bool = True, lockstep: bool = False, bind: str = "tcp://127.0.0.1:*"
) -> RunningDaemon:
    """Run `run_daemon` in a thread on a free loopback port and wait until it is bound."""
    from sigbridge.daemon.service import run_daemon

    config = config.replace("server", bind=bind)
    stop_event = threading.Event()
    reload_event = threading.Event()
    ready = threading.Event()
    endpoint: list[str] = []
    errors: list[BaseException] = []

    def on_ready(bound: str) -> None:
        endpoint.append(bound)
        ready.set()

    def target() -> None:
        try:
            run_daemon(
                config, stop=stop_event, reload=reload_event, train=train, on_ready=on_ready, lockstep=lockstep
            )
        except BaseException as error:  # surfaced by the test through `errors`
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=target, name="test-daemon", daemon=True)
    thread.start()
    assert ready.wait(60), "daemon did not bind within 60 s"
    if errors:
        raise errors[0]
    return RunningDaemon(endpoint[0], config, stop_event, thread, errors, reload_event)


@pytest.fixture
def daemon_state(tmp_path, fast_config, trained_models_dir) -> Config:
    """A config whose state folder contains a copy of the trained EURUSD H1 bundle."""
    config = fast_config.replace("paths", state_dir=tmp_path / "state")
    shutil.copytree(trained_models_dir, config.paths.models_dir)
    return config


@pytest.fixture
def daemon(daemon_state):
    """A running daemon with the trained EURUSD H1 bundle; stopped after the test."""
    running = start_daemon(daemon_state)
    yield running
    running.stop()


def request_frame(body: dict, request_id: int = 1) -> bytes:
    """Encode a request map with the protocol envelope, as a client sends it."""
    from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode

    return encode({"v": PROTOCOL_VERSION, "id": request_id, **body})


def hello_frame(eurusd, client: str = "ea-1") -> bytes:
    """Encode a `hello` for the EURUSD H1 stream of `client`."""
    return request_frame(
        {
            "type": "hello",
            "client": client,
            "symbol": "EURUSD",
            "timeframe": "H1",
            "digits": eurusd.digits,
            "point": eurusd.point,
            "utc_offset": 0,
        }
    )
