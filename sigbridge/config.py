"""Typed, frozen configuration with defaults defined once, loaded from TOML and validated."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """Raised for an invalid configuration; the message names the key and the value."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    # ZeroMQ endpoint of the ROUTER socket.
    bind: str = "tcp://127.0.0.1:5555"
    # Milliseconds a pending reply may wait on a disconnected client before it is dropped.
    linger_ms: int = 0
    # Bars a stream keeps in memory; older bars are dropped from the buffer.
    max_bars_per_stream: int = 20_000
    # Bars one `bars` message may carry.
    max_bars_per_message: int = 100_000
    # Largest frame accepted by ZeroMQ, in bytes.
    max_message_bytes: int = 16 * 1024 * 1024
    # Streams (symbol and timeframe pairs) one client name may open.
    max_streams_per_client: int = 64
    # Streams all clients together may open; with `max_bars_per_stream` it bounds bar memory.
    max_streams: int = 256
    # Seconds a bar's open time may lie after the current time, once converted to UTC with the
    # stream's `utc_offset`. A closed bar opened in the past, so this only absorbs clock skew and a
    # wrong offset; bar times sent in milliseconds exceed it.
    max_future_seconds: int = 86_400
    # Messages ZeroMQ queues per connection in each direction (ZMQ_RCVHWM and ZMQ_SNDHWM). With
    # `max_message_bytes` it bounds the memory one connection can take.
    max_queued_messages: int = 100
    # Maximum bars requests that share one forward pass of a model; 1 turns micro-batching off.
    # Requests that arrive together share a forward pass without waiting.
    max_batch: int = 64
    # Microseconds the server waits after a wake-up for more requests to join the batch; 0 sends
    # a lone request on at once.
    batch_wait_us: int = 0


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    rsi_period: int = 12
    macd_fast: int = 12
    macd_slow: int = 48
    macd_signal: int = 12
    # Bars per model input window.
    window: int = 40


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    # MetaTrader ZigZag inputs; `deviation` is in points.
    depth: int = 48
    deviation: int = 1
    backstep: int = 47


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    attention_layers: int = 1
    key_size: int = 4
    heads: int = 8
    dense_layers: int = 3
    dense_units: int = 40
    l1: float = 1e-7
    l2: float = 1e-5


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Share of the training examples, taken from the end of the span, used for early stopping.
    validation_fraction: float = 0.15
    # Epochs without validation improvement before early stopping.
    patience: int = 5
    seed: int = 42
    # Labelled examples needed before a model is trained.
    min_examples: int = 500
    # Walk-forward folds reported by `sigbridge train`.
    walk_forward_folds: int = 4
    # TensorFlow intra-op and inter-op threads of the training worker process that the daemon and
    # replay train in; 0 lets TensorFlow choose (one per core).
    threads: int = 0


@dataclasses.dataclass(frozen=True)
class RetrainingConfig:
    # Retrain the models of streams while the daemon serves. Initial training of a stream without
    # a model is separate; `sigbridge serve --no-train` turns both off.
    enabled: bool = True
    # New closed bars since the model's trained-until bar, or since the last attempt, that make a
    # stream due; 0 turns the bar trigger off. 120 bars are five trading days of H1, two hours of M1.
    every_bars: int = 120
    # Seconds since the last attempt after which a stream with at least one new bar is due; 0
    # turns the clock trigger off. A day retrains H1 daily (24 new bars); M1 reaches every_bars
    # first. Replay and `serve --lockstep` ignore it and count bars only.
    every_seconds: int = 86_400
    # Most recent labelled windows before the held-out slice that a candidate trains on.
    train_examples: int = 3000
    # Most recent labelled windows, after the training ones, that score candidate and incumbent.
    holdout_examples: int = 200
    # Start the candidate from the incumbent's weights (true) or from a fresh initialisation.
    warm_start: bool = True
    # A candidate is promoted when its held-out loss is at most the incumbent's times (1 + margin).
    promotion_margin: float = 0.02
    # Bundles kept per stream; older ones are deleted after a promotion, never the pinned one.
    keep_bundles: int = 5
    # Niceness (0-19) of the training worker process, so the server thread gets the CPU first.
    worker_nice: int = 10


@dataclasses.dataclass(frozen=True)
class SignalConfig:
    # |score| below this gives direction 0 (flat).
    threshold: float = 0.1


@dataclasses.dataclass(frozen=True)
class ComputeConfig:
    # TensorFlow device for training and inference: "auto" (the GPU when present), "cpu" or "gpu".
    device: str = "auto"
    # Compile the batch-1 forward pass with XLA; it is used only if its output matches.
    xla: bool = True


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = Path("state")

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def bars_database(self) -> Path:
        return self.state_dir / "bars.sqlite3"


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    # SQLite `synchronous` setting of the bar database (WAL mode): "full" syncs every
    # acknowledged `bars` message to disk, so it survives a power loss; "normal" survives a
    # crash of the daemon but may lose the last acknowledged bars on a power loss.
    synchronous: str = "full"


@dataclasses.dataclass(frozen=True)
class SecurityConfig:
    # Server secret key file written by `sigbridge keygen`; empty turns CURVE encryption off.
    curve_secret_key: str = ""
    # Folder of the public key files (*.key) of the clients allowed to connect over CURVE.
    curve_client_keys: str = ""
    # Allow binding an address other than loopback without CURVE; a WARNING is logged.
    allow_unencrypted_bind: bool = False
    # Connections whose control requests (`rollback`, `unpin`) are applied: "loopback" (clients
    # on this machine: 127.0.0.0/8, ::1 and ipc://), "any", or "none".
    control_from: str = "loopback"


@dataclasses.dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    signal: SignalConfig = SignalConfig()
    compute: ComputeConfig = ComputeConfig()
    paths: PathsConfig = PathsConfig()
    storage: StorageConfig = StorageConfig()
    security: SecurityConfig = SecurityConfig()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def model_hash(self) -> str:
        """Hash of the sections that change what a model computes (features, labels, model)."""
        relevant = {name: dataclasses.asdict(getattr(self, name)) for name in ("features", "labels", "model")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with some keys of one section changed, validated like a loaded file."""
        updated = dataclasses.replace(getattr(self, section), **changes)
        config = dataclasses.replace(self, **{section: updated})
        validate(config)
        return config


def _coerce(section: str, field: dataclasses.Field, value: Any) -> Any:
    key = f"{section}.{field.name}"
    expected = field.type if not isinstance(field.type, str) else _resolve_type(field.type)
    if expected is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"`{key}` must be a non-empty path string, received {value!r}")
        return Path(value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number, received {value!r}")
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer, received {value!r}")
        return value
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` must be a string, received {value!r}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be true or false, received {value!r}")
        return value
    raise ConfigError(f"`{key}` has an unsupported type {expected!r}")


def _resolve_type(name: str) -> Any:
    return {"int": int, "float": float, "str": str, "bool": bool, "Path": Path}.get(name, name)


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a config from nested TOML-like data over `base` (the defaults when omitted).

    Raises:
        ConfigError: for an unknown section or key, a wrong type, or an out-of-range value.
    """
    base = base or Config()
    sections: dict[str, Any] = {}
    known = {field.name: field for field in dataclasses.fields(Config)}
    for section, values in data.items():
        if section not in known:
            raise ConfigError(f"unknown config section [{section}]; expected one of {sorted(known)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table, received {values!r}")
        current = getattr(base, section)
        fields = {field.name: field for field in dataclasses.fields(current)}
        changes = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"unknown config key `{section}.{key}`; expected one of {sorted(fields)}"
                )
            changes[key] = _coerce(section, fields[key], value)
        sections[section] = dataclasses.replace(current, **changes)
    config = dataclasses.replace(base, **sections)
    validate(config)
    return config


def load(path: Path | str | None = None) -> Config:
    """Load a TOML config file over the defaults; `None` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}; pass an existing file with --config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    return from_dict(data)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: Config) -> None:
    """Check value ranges that the types alone do not express."""
    positive_ints = {
        "server.max_bars_per_stream": config.server.max_bars_per_stream,
        "server.max_bars_per_message": config.server.max_bars_per_message,
        "server.max_message_bytes": config.server.max_message_bytes,
        "server.max_streams_per_client": config.server.max_streams_per_client,
        "server.max_streams": config.server.max_streams,
        "server.max_future_seconds": config.server.max_future_seconds,
        "server.max_queued_messages": config.server.max_queued_messages,
        "server.max_batch": config.server.max_batch,
        "features.rsi_period": config.features.rsi_period,
        "features.macd_fast": config.features.macd_fast,
        "features.macd_slow": config.features.macd_slow,
        "features.macd_signal": config.features.macd_signal,
        "features.window": config.features.window,
        "labels.depth": config.labels.depth,
        "labels.backstep": config.labels.backstep,
        "model.attention_layers": config.model.attention_layers,
        "model.key_size": config.model.key_size,
        "model.heads": config.model.heads,
        "model.dense_layers": config.model.dense_layers,
        "model.dense_units": config.model.dense_units,
        "training.epochs": config.training.epochs,
        "training.batch_size": config.training.batch_size,
        "training.min_examples": config.training.min_examples,
        "training.walk_forward_folds": config.training.walk_forward_folds,
    }
    for key, value in positive_ints.items():
        _require(value > 0, f"`{key}` must be a positive integer, received {key}={value}")

    _require(config.server.linger_ms >= 0, f"`server.linger_ms` must be >= 0, received {config.server.linger_ms}")
    _require(
        config.storage.synchronous in ("full", "normal"),
        f"`storage.synchronous` must be \"full\" or \"normal\", received {config.storage.synchronous!r}",
    )
    _require(
        bool(config.security.curve_secret_key) == bool(config.security.curve_client_keys),
        "`security.curve_secret_key` and `security.curve_client_keys` must be set together to turn "
        f"CURVE on, or both left empty; received curve_secret_key={config.security.curve_secret_key!r} "
        f"and curve_client_keys={config.security.curve_client_keys!r}",
    )
    _require(
        0 <= config.server.batch_wait_us <= 100_000,
        f"`server.batch_wait_us` must be in [0, 100000] microseconds, received {config.server.batch_wait_us}",
    )
    _require(
        config.security.control_from in ("loopback", "any", "none"),
        "`security.control_from` must be \"loopback\", \"any\" or \"none\", "
        f"received {config.security.control_from!r}",
    )
    _require(
        config.compute.device in ("auto", "cpu", "gpu"),
        f"`compute.device` must be \"auto\", \"cpu\" or \"gpu\", received {config.compute.device!r}",
    )
    _require(
        config.server.bind.startswith(("tcp://", "ipc://", "inproc://")),
        f"`server.bind` must be a ZeroMQ endpoint such as tcp://127.0.0.1:5555, received {config.server.bind!r}",
    )
    _require(
        config.features.macd_fast < config.features.macd_slow,
        "`features.macd_fast` must be shorter than `features.macd_slow`, received "
        f"{config.features.macd_fast} and {config.features.macd_slow}",
    )
    _require(config.labels.deviation >= 0, f"`labels.deviation` must be >= 0 points, received {config.labels.deviation}")
    _require(config.training.patience >= 0, f"`training.patience` must be >= 0, received {config.training.patience}")
    _require(config.training.threads >= 0, f"`training.threads` must be >= 0, received {config.training.threads}")
    _require(
        0.0 < config.training.validation_fraction < 0.5,
        "`training.validation_fraction` must be in (0, 0.5), received "
        f"{config.training.validation_fraction}",
    )
    _require(config.training.learning_rate > 0, f"`training.learning_rate` must be > 0, received {config.training.learning_rate}")
    _require(config.model.l1 >= 0 and config.model.l2 >= 0, "`model.l1` and `model.l2` must be >= 0")
    _require(
        0.0 <= config.signal.threshold < 1.0,
        f"`signal.threshold` must be in [0, 1), received {config.signal.threshold}",
    )
    minimum_bars = config.server.max_bars_per_stream
    needed = warmup_bars(config.features) + config.features.window + config.training.min_examples
    _require(
        minimum_bars >= needed,
        f"`server.max_bars_per_stream` must hold at least {needed} bars (warm-up, one window and "
        f"`training.min_examples`), received {minimum_bars}",
    )
    _validate_retraining(config)


def _validate_retraining(config: Config) -> None:
    retraining = config.retraining
    _require(
        0 <= retraining.every_bars <= config.server.max_bars_per_stream,
        "`retraining.every_bars` must be in [0, server.max_bars_per_stream], because the bars are "
        f"counted in the stream's buffer; received every_bars={retraining.every_bars}",
    )
    _require(
        retraining.every_seconds >= 0,
        f"`retraining.every_seconds` must be >= 0, received every_seconds={retraining.every_seconds}",
    )
    _require(
        retraining.train_examples >= config.training.min_examples,
        f"`retraining.train_examples` must be at least training.min_examples={config.training.min_examples}, "
        f"received train_examples={retraining.train_examples}",
    )
    _require(
        retraining.holdout_examples >= 10,
        f"`retraining.holdout_examples` must be >= 10, received holdout_examples={retraining.holdout_examples}",
    )
    _require(
        0.0 <= retraining.promotion_margin < float("inf"),
        "`retraining.promotion_margin` must be a finite number >= 0, received "
        f"promotion_margin={retraining.promotion_margin}",
    )
    _require(
        retraining.keep_bundles >= 1,
        f"`retraining.keep_bundles` must be >= 1, received keep_bundles={retraining.keep_bundles}",
    )
    _require(
        0 <= retraining.worker_nice <= 19,
        f"`retraining.worker_nice` must be in [0, 19], received worker_nice={retraining.worker_nice}",
    )


def warmup_bars(features: FeatureConfig) -> int:
    """Bars before the first valid feature row; rows with a smaller index are NaN.

    Three periods of the slowest average let the seed of the recursive averages fade to about
    5% of its weight, and the MACD signal line then needs `macd_signal` values of the main line.
    """
    return 3 * max(features.rsi_period, features.macd_slow) + features.macd_signal


def bars_for_first_signal(features: FeatureConfig) -> int:
    """Bars a stream needs before its first full input window."""
    return warmup_bars(features) + features.window

