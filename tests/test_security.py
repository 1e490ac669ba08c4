"""Transport security: the bind policy, CURVE key files, and CURVE over real loopback sockets."""

import logging
import os
import shutil
import stat
import time

import pytest
import zmq
import zmq.auth

from sigbridge.cli import main
from sigbridge.client import ReplyTimeout, SigBridgeClient
from sigbridge.config import Config, ConfigError
from sigbridge.daemon.codes import ExitCode
from sigbridge.daemon.security import (
    check_bind_policy,
    is_loopback_endpoint,
    load_curve_keys,
    read_key_pair,
    write_key_pair,
)

from conftest import start_daemon


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("tcp://127.8.9.10:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://lo:5555", True),
        ("ipc:///run/sigbridge/socket", True),
        ("inproc://sigbridge", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://trading-box.example:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_is_loopback_endpoint(endpoint, local):
    assert is_loopback_endpoint(endpoint) is local


def remote(config: Config, **security) -> Config:
    config = config.replace("server", bind="tcp://0.0.0.0:5555")
    return config.replace("security", **security) if security else config


def test_bind_policy_rejects_remote_without_curve():
    with pytest.raises(ConfigError) as excinfo:
        check_bind_policy(remote(Config()))
    message = str(excinfo.value)
    assert "'tcp://0.0.0.0:5555' is not a loopback address" in message
    assert "security.curve_secret_key" in message
    assert "security.allow_unencrypted_bind" in message


def test_bind_policy_allows_remote_with_curve(caplog):
    config = remote(Config(), curve_secret_key="/keys/server.key_secret", curve_client_keys="/keys/clients")
    with caplog.at_level(logging.INFO, logger="sigbridge.daemon.security"):
        check_bind_policy(config)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_bind_policy_warns_when_allowed(caplog):
    with caplog.at_level(logging.WARNING, logger="sigbridge.daemon.security"):
        check_bind_policy(remote(Config(), allow_unencrypted_bind=True))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "without encryption" in record.getMessage()
    assert "endpoint=tcp://0.0.0.0:5555" in record.getMessage()


def test_bind_policy_silent_on_loopback(caplog):
    with caplog.at_level(logging.DEBUG, logger="sigbridge.daemon.security"):
        check_bind_policy(Config())
    assert caplog.records == []


def test_serve_refuses_remote_bind(tmp_path, capsys, isolated_logging):
    """`sigbridge serve` stops before binding, with the configuration exit code."""
    code = main(["serve", "--bind", "tcp://0.0.0.0:5555", "--state-dir", str(tmp_path), "--no-train"])
    assert code == ExitCode.CONFIG
    assert "is not a loopback address" in capsys.readouterr().err
    assert not (tmp_path / "bars.sqlite3").exists()


# Key files


@pytest.fixture
def isolated_logging():
    """Undo the log handler that `main` installs, so later tests do not print to the terminal."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_keygen_writes_key_pair(tmp_path, capsys, isolated_logging):
    assert main(["keygen", "--out", str(tmp_path / "keys"), "--name", "ea-vps1"]) == ExitCode.OK
    public_path = tmp_path / "keys" / "ea-vps1.key"
    secret_path = tmp_path / "keys" / "ea-vps1.key_secret"
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    public_key, secret_key = zmq.auth.load_certificate(secret_path)
    assert zmq.auth.load_certificate(public_path) == (public_key, None)
    assert zmq.curve_public(secret_key) == public_key
    assert f"public key: {public_key.decode()}" in capsys.readouterr().out
    # pyzmq's authenticator reads the public file as an allowed client key.
    assert zmq.auth.load_certificates(tmp_path / "keys") == {public_key: True}


def test_keygen_keeps_existing_pair(tmp_path, capsys, isolated_logging):
    folder = tmp_path / "keys"
    assert main(["keygen", "--out", str(folder)]) == ExitCode.OK
    before = (folder / "server.key_secret").read_bytes()
    assert main(["keygen", "--out", str(folder)]) == ExitCode.USAGE
    assert "pass --force" in capsys.readouterr().err
    assert (folder / "server.key_secret").read_bytes() == before
    assert main(["keygen", "--out", str(folder), "--force"]) == ExitCode.OK
    assert (folder / "server.key_secret").read_bytes() != before


def test_keygen_rejects_path_as_name(tmp_path):
    with pytest.raises(ValueError, match="`name` must be"):
        write_key_pair(tmp_path, "../server")


@pytest.fixture
def keys(tmp_path):
    """A server key pair, an allowed client pair and a stranger's pair, in separate folders."""
    server_public, server_secret = write_key_pair(tmp_path / "server", "server")
    allowed_public, allowed_secret = write_key_pair(tmp_path / "ea", "ea-vps1")
    _stranger_public, stranger_secret = write_key_pair(tmp_path / "stranger", "stranger")
    clients = tmp_path / "clients"
    clients.mkdir()
    shutil.copy(allowed_public, clients)
    return {
        "server_public": server_public,
        "server_secret": server_secret,
        "clients": clients,
        "allowed": allowed_secret,
        "stranger": stranger_secret,
    }


def security(keys, **changes):
    values = {"curve_secret_key": str(keys["server_secret"]), "curve_client_keys": str(keys["clients"])}
    values.update(changes)
    return Config().replace("security", **values).security


def test_load_curve_keys(keys):
    loaded = load_curve_keys(security(keys))
    allowed_public, _ = read_key_pair(keys["allowed"])
    assert loaded.public_key == zmq.auth.load_certificate(keys["server_public"])[0]
    assert loaded.client_keys == {allowed_public: "ea-vps1"}
    assert "secret" not in repr(loaded).lower().replace("secret_key=", "")


def test_load_curve_keys_off_by_default():
    assert load_curve_keys(Config().security) is None


def test_load_curve_keys_expands_variables(keys, monkeypatch):
    monkeypatch.setenv("SIGBRIDGE_TEST_KEYS", str(keys["server_secret"].parent))
    loaded = load_curve_keys(security(keys, curve_secret_key="$SIGBRIDGE_TEST_KEYS/server.key_secret"))
    assert loaded is not None


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda keys: {"curve_secret_key": str(keys["server_secret"]) + ".missing"}, "cannot read key file"),
        (lambda keys: {"curve_secret_key": str(keys["server_public"])}, "holds no secret key"),
        (lambda keys: {"curve_secret_key": "$SIGBRIDGE_UNSET_VARIABLE/server.key_secret"}, "is not set"),
        (lambda keys: {"curve_client_keys": str(keys["clients"]) + "-missing"}, "is not a folder"),
    ],
    ids=["missing secret file", "public file as secret", "unset variable", "missing client folder"],
)
def test_load_curve_keys_rejects(keys, change, words):
    with pytest.raises(ConfigError) as excinfo:
        load_curve_keys(security(keys, **change(keys)))
    assert words in str(excinfo.value)


def test_load_curve_keys_rejects_mismatched_pair(keys):
    lines = keys["server_secret"].read_text().splitlines()
    other_public = zmq.auth.load_certificate(keys["allowed"])[0].decode()
    keys["server_secret"].write_text(
        "\n".join(f'    public-key = "{other_public}"' if "public-key" in line else line for line in lines)
    )
    with pytest.raises(ConfigError, match="does not match the public key"):
        load_curve_keys(security(keys))


def test_load_curve_keys_rejects_garbage_client_key(keys):
    (keys["clients"] / "broken.key").write_text('curve\n    public-key = "not-a-key"\n')
    with pytest.raises(ConfigError, match="broken.key has a public key that is not 40 Z85 characters"):
        load_curve_keys(security(keys))


def test_load_curve_keys_rejects_empty_client_folder(keys):
    for path in keys["clients"].iterdir():
        path.unlink()
    with pytest.raises(ConfigError, match="no client could connect"):
        load_curve_keys(security(keys))


def test_run_daemon_stops_on_missing_key(daemon_state, keys):
    from sigbridge.daemon.service import run_daemon

    config = daemon_state.replace("security", curve_secret_key="/nonexistent/server.key_secret", curve_client_keys=str(keys["clients"]))
    with pytest.raises(ConfigError, match="cannot read key file /nonexistent/server.key_secret"):
        run_daemon(config, train=False)


# CURVE over loopback


def curve_client(endpoint, keys, secret_file, timeout=1.5):
    server_public = zmq.auth.load_certificate(keys["server_public"])[0]
    public_key, secret_key = read_key_pair(secret_file)
    return SigBridgeClient(endpoint, timeout=timeout, curve=(server_public, public_key, secret_key))


@pytest.fixture
def curve_daemon(daemon_state, keys):
    config = daemon_state.replace(
        "security", curve_secret_key=str(keys["server_secret"]), curve_client_keys=str(keys["clients"])
    )
    running = start_daemon(config, train=False)
    yield running
    running.stop()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_curve_accepts_allowed_client(curve_daemon, keys, eurusd, caplog):
    with caplog.at_level(logging.INFO), curve_client(curve_daemon.endpoint, keys, keys["allowed"], timeout=10) as client:
        assert client.ping()["type"] == "pong"
        welcome = client.hello(client="ea-vps1", symbol="GBPUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
    assert welcome["type"] == "welcome"
    assert any("accepted CURVE client client_key=ea-vps1" in record.getMessage() for record in caplog.records)


def test_curve_rejects_unknown_key(curve_daemon, keys, caplog):
    with caplog.at_level(logging.INFO), curve_client(curve_daemon.endpoint, keys, keys["stranger"]) as client:
        with pytest.raises(ReplyTimeout):
            client.ping()
    assert wait_for(lambda: any("rejected CURVE client" in record.getMessage() for record in caplog.records))


def test_curve_rejects_plaintext_client(curve_daemon, caplog):
    with caplog.at_level(logging.INFO), SigBridgeClient(curve_daemon.endpoint, timeout=1.5) as client:
        with pytest.raises(ReplyTimeout):
            client.ping()
    # libzmq reports a ZMTP protocol error or, when the plaintext peer hangs up first, a broken
    # pipe (errno 32); both are a failed handshake, and the ping above got no reply.
    assert wait_for(
        lambda: any(
            "rejected a client handshake" in record.getMessage() or "a client handshake failed" in record.getMessage()
            for record in caplog.records
        )
    )


def test_curve_reload_admits_new_client(curve_daemon, keys, tmp_path, caplog):
    newcomer_public, newcomer_secret = write_key_pair(tmp_path / "newcomer", "newcomer")
    with curve_client(curve_daemon.endpoint, keys, newcomer_secret) as client:
        with pytest.raises(ReplyTimeout):
            client.ping()
    shutil.copy(newcomer_public, keys["clients"])
    with caplog.at_level(logging.INFO, logger="sigbridge.daemon.service"):
        curve_daemon.reload_event.set()
        assert wait_for(lambda: any("reloaded configuration" in record.getMessage() for record in caplog.records))
    with curve_client(curve_daemon.endpoint, keys, newcomer_secret, timeout=10) as client:
        assert client.ping()["type"] == "pong"


def test_curve_secret_key_not_logged(curve_daemon, keys, caplog):
    """Start-up and connection logs name key files and fingerprints, never a key."""
    with caplog.at_level(logging.DEBUG), curve_client(curve_daemon.endpoint, keys, keys["allowed"], timeout=10) as client:
        client.ping()
    secrets = [zmq.auth.load_certificate(keys[name])[1].decode() for name in ("server_secret", "allowed")]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert all(secret not in text for secret in secrets)


def test_secret_key_file_mode_warning(keys, caplog):
    os.chmod(keys["server_secret"], 0o644)
    with caplog.at_level(logging.WARNING, logger="sigbridge.daemon.security"):
        load_curve_keys(security(keys))
    assert any("readable by other users" in record.getMessage() for record in caplog.records)


def test_feed_curve_options(keys):
    import argparse

    from sigbridge.commands import _curve_keys

    assert _curve_keys(argparse.Namespace(server_key=None, client_key=None)) is None
    server_public, client_public, client_secret = _curve_keys(
        argparse.Namespace(server_key=keys["server_public"], client_key=keys["allowed"])
    )
    assert server_public == zmq.auth.load_certificate(keys["server_public"])[0]
    assert (client_public, client_secret) == zmq.auth.load_certificate(keys["allowed"])
    with pytest.raises(ConfigError, match="pass both --server-key and --client-key"):
        _curve_keys(argparse.Namespace(server_key=keys["server_public"], client_key=None))
    with pytest.raises(ConfigError, match="holds no secret key matching its public key"):
        _curve_keys(argparse.Namespace(server_key=keys["server_public"], client_key=keys["server_public"]))
