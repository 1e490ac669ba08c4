"""Config loading, validation and the shipped default TOML."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from sigbridge.config import Config, ConfigError, from_dict, load

DEFAULT_TOML = Path(__file__).resolve().parent.parent / "config" / "sigbridge.toml"


def test_default_toml_matches_code_defaults():
    data = tomllib.loads(DEFAULT_TOML.read_text())
    defaults = Config().to_dict()
    for section, values in defaults.items():
        assert section in data, f"[{section}] missing from config/sigbridge.toml"
        for key, value in values.items():
            assert key in data[section], f"{section}.{key} missing from config/sigbridge.toml"
            assert data[section][key] == value, f"{section}.{key}: TOML has {data[section][key]!r}, code {value!r}"


def test_default_toml_loads():
    assert load(DEFAULT_TOML) == Config()


def test_load_none_gives_defaults():
    assert load(None) == Config()


def test_from_dict_overrides_one_key():
    config = from_dict({"model": {"heads": 4}})
    assert config.model.heads == 4
    assert config.model.key_size == Config().model.key_size


@pytest.mark.parametrize(
    "data, words",
    [
        ({"modle": {}}, "unknown config section [modle]"),
        ({"model": {"head": 4}}, "unknown config key `model.head`"),
        ({"model": {"heads": "8"}}, "`model.heads` must be an integer"),
        ({"model": {"heads": 0}}, "`model.heads` must be a positive integer"),
        ({"model": {"heads": True}}, "`model.heads` must be an integer"),
        ({"signal": {"threshold": 1.5}}, "`signal.threshold` must be in [0, 1)"),
        ({"server": {"bind": "127.0.0.1:5555"}}, "`server.bind` must be a ZeroMQ endpoint"),
        ({"features": {"macd_fast": 60}}, "`features.macd_fast` must be shorter"),
        ({"training": {"validation_fraction": 0.7}}, "`training.validation_fraction`"),
    ],
)
def test_from_dict_rejects(data, words):
    with pytest.raises(ConfigError) as excinfo:
        from_dict(data)
    assert words in str(excinfo.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "absent.toml")


def test_load_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[server\nbind = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)


def test_model_hash_ignores_server_section():
    changed = Config().replace("server", max_bars_per_stream=30_000)
    assert changed.model_hash() == Config().model_hash()


def test_model_hash_follows_model_section():
    assert Config().replace("model", heads=4).model_hash() != Config().model_hash()


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().model.heads = 3
