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
    # TensorFlow threads for training; 0 lets TensorFlow choose.
    threads: int = 0


@dataclasses.dataclass(frozen=True)
class SignalConfig:
    # |score| below this gives direction 0 (flat).
    threshold: float = 0.1


@dataclasses.dataclass(frozen=True)
class PathsConfig:
    state_dir: Path = Path("state")

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"


@dataclasses.dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    signal: SignalConfig = SignalConfig()
    paths: PathsConfig = PathsConfig()

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


def warmup_bars(features: FeatureConfig) -> int:
    """Bars before the first valid feature row; rows with a smaller index are NaN.

    Three periods of the slowest average let the seed of the recursive averages fade to about
    5% of its weight, and the MACD signal line then needs `macd_signal` values of the main line.
    """
    return 3 * max(features.rsi_period, features.macd_slow) + features.macd_signal


def bars_for_first_signal(features: FeatureConfig) -> int:
    """Bars a stream needs before its first full input window."""
    return warmup_bars(features) + features.window

