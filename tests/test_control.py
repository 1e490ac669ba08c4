"""Control requests (`rollback`, `unpin`): decoding, and `sigbridge models` against a running daemon."""

import json
import logging
import re
import shutil
import socket
import time

import pytest

from sigbridge.cli import build_parser, resolve_config
from sigbridge.client import SigBridgeClient
from sigbridge.daemon.codes import ErrorCode, ExitCode
from sigbridge.daemon.connections import Peer
from sigbridge.daemon.control import check_control_allowed, is_local_peer
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.protocol import PROTOCOL_VERSION, ProtocolError, Rollback, Unpin, decode_request, encode
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.reload import merge_reloaded
from sigbridge.model_commands import run_models_command
from sigbridge.models.versions import PIN_FILE, version_folder

from conftest import TRAIN_BARS, start_daemon


def decode(**fields):
    return decode_request(encode({"v": PROTOCOL_VERSION, "id": 5, **fields}))


def test_decode_rollback():
    request = decode(type="rollback", symbol="EURUSD", timeframe="H1", version=3)
    assert request == Rollback(id=5, symbol="EURUSD", timeframe="H1", version=3)


def test_decode_unpin():
    assert decode(type="unpin", symbol="EURUSD", timeframe="H1") == Unpin(id=5, symbol="EURUSD", timeframe="H1")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"symbol": "EURUSD", "timeframe": "H1", "version": 0}, "version"),
        ({"symbol": "EURUSD", "timeframe": "H1", "version": "3"}, "version"),
        ({"symbol": "EURUSD", "timeframe": "H1", "version": True}, "version"),
        ({"symbol": "EURUSD", "timeframe": "H7", "version": 3}, "timeframe"),
        ({"symbol": "EURUSD", "timeframe": "H1"}, "version"),
        ({"symbol": "EURUSD", "timeframe": "H1", "version": 3, "force": True}, "force"),
    ],
)
def test_decode_rollback_rejects(fields, field):
    with pytest.raises(ProtocolError) as excinfo:
        decode(type="rollback", **fields)
    assert excinfo.value.code == ErrorCode.INVALID_FIELD
    assert excinfo.value.field == field
    assert excinfo.value.request_id == 5


@pytest.fixture
def two_versions(daemon_state):
    """The daemon state with EURUSD H1 bundles v1 and v2 (a renumbered copy of v1)."""
    models_dir = daemon_state.paths.models_dir
    target = version_folder(models_dir, "EURUSD", "H1", 2)
    shutil.copytree(version_folder(models_dir, "EURUSD", "H1", 1), target)
    manifest = json.loads((target / "bundle.json").read_text())
    manifest["version"] = 2
    (target / "bundle.json").write_text(json.dumps(manifest))
    return daemon_state


def models_command(config, *arguments):
    args = build_parser().parse_args(["models", *arguments, "--state-dir", str(config.paths.state_dir)])
    return run_models_command(args, resolve_config(args))


def signal_version(endpoint, eurusd, index):
    with SigBridgeClient(endpoint, timeout=30) as client:
        client.hello(client="control-test", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[: index + 1])
    assert reply["type"] == "signal"
    return reply["model_version"]


def test_rollback_reaches_running_daemon(two_versions, eurusd, capsys):
    running = start_daemon(two_versions, train=False)
    try:
        assert signal_version(running.endpoint, eurusd, TRAIN_BARS) == 2
        assert models_command(two_versions, "rollback", "EURUSD_H1", "1", "--endpoint", running.endpoint) == ExitCode.OK
        assert "pinned" in capsys.readouterr().out
        # The daemon wrote the pin file.
        assert (two_versions.paths.models_dir / "EURUSD_H1" / PIN_FILE).exists()
        assert signal_version(running.endpoint, eurusd, TRAIN_BARS + 1) == 1
    finally:
        running.stop()

    # The pin outlives the daemon.
    restarted = start_daemon(two_versions, train=False)
    try:
        assert signal_version(restarted.endpoint, eurusd, TRAIN_BARS + 2) == 1
        assert models_command(two_versions, "unpin", "EURUSD_H1", "--endpoint", restarted.endpoint) == ExitCode.OK
        assert signal_version(restarted.endpoint, eurusd, TRAIN_BARS + 3) == 2
    finally:
        restarted.stop()
    assert not (two_versions.paths.models_dir / "EURUSD_H1" / PIN_FILE).exists()


def test_rollback_unknown_version_rejected(two_versions):
    running = start_daemon(two_versions, train=False)
    try:
        with SigBridgeClient(running.endpoint, timeout=30) as client:
            reply = client.request({"type": "rollback", "symbol": "EURUSD", "timeframe": "H1", "version": 7}, raise_errors=False)
    finally:
        running.stop()
    assert reply["type"] == "error"
    assert reply["code"] == ErrorCode.MODEL_NOT_FOUND
    assert "versions on disk: [1, 2]" in reply["message"]


def test_models_rollback_offline_writes_pin(two_versions, capsys):
    assert models_command(two_versions, "rollback", "EURUSD_H1", "1") == ExitCode.OK
    pin = json.loads((two_versions.paths.models_dir / "EURUSD_H1" / PIN_FILE).read_text())
    assert pin["version"] == 1
    assert "pass --endpoint" in capsys.readouterr().out


def test_models_list_marks_pin(two_versions, capsys):
    models_command(two_versions, "rollback", "EURUSD_H1", "1")
    capsys.readouterr()
    assert models_command(two_versions, "list", "--json") == ExitCode.OK
    rows = json.loads(capsys.readouterr().out)
    assert [(row["version"], row["serving"], row["pinned"]) for row in rows] == [(1, True, True), (2, False, False)]


def test_models_rollback_unknown_stream(two_versions):
    from sigbridge.models.bundle import BundleError

    with pytest.raises(BundleError, match="no intact model bundle"):
        models_command(two_versions, "rollback", "GBPUSD_H1", "1")


# Which connections may send control requests: `security.control_from`.


@pytest.mark.parametrize(
    "peer, local",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost:1000:1000:4242", True),
        ("192.0.2.7", False),
        ("::ffff:192.0.2.7", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_is_local_peer(peer, local):
    assert is_local_peer(peer) is local


@pytest.mark.parametrize(
    "control_from, peer, allowed",
    [
        ("loopback", "127.0.0.1", True),
        ("loopback", "192.0.2.7", False),
        ("loopback", None, False),
        ("any", "192.0.2.7", True),
        ("any", None, True),
        ("none", "127.0.0.1", False),
    ],
)
def test_check_control_allowed(control_from, peer, allowed):
    request = Rollback(id=9, symbol="EURUSD", timeframe="H1", version=1)
    if allowed:
        check_control_allowed(request, control_from, peer)
        return
    with pytest.raises(ProtocolError) as excinfo:
        check_control_allowed(request, control_from, peer)
    assert excinfo.value.code == ErrorCode.CONTROL_REJECTED
    assert excinfo.value.request_id == 9
    assert f'control_from = "{control_from}"' in excinfo.value.message


def rollback_frame(version=1):
    return encode({"v": PROTOCOL_VERSION, "id": 3, "type": "rollback", "symbol": "EURUSD", "timeframe": "H1", "version": version})


def test_rollback_from_remote_peer_refused(two_versions):
    dispatcher = Dispatcher(two_versions, ModelRegistry(two_versions.paths.models_dir), None)
    remote = dispatcher.handle(b"\x00admin", rollback_frame(), peer=Peer("192.0.2.7", 12))
    in_process = dispatcher.handle(b"\x00admin", rollback_frame())
    pin = two_versions.paths.models_dir / "EURUSD_H1" / PIN_FILE
    assert not pin.exists()
    local = dispatcher.handle(b"\x00admin", rollback_frame(), peer=Peer("127.0.0.1", 12))
    assert remote["code"] == ErrorCode.CONTROL_REJECTED
    assert "peer=192.0.2.7" in remote["message"]
    assert in_process["code"] == ErrorCode.CONTROL_REJECTED
    assert (local["type"], local["model_version"], local["pinned"]) == ("model", 1, True)
    assert pin.exists()


def test_rollback_with_control_off_refused(two_versions, capsys):
    running = start_daemon(two_versions.replace("security", control_from="none"), train=False)
    try:
        with SigBridgeClient(running.endpoint, timeout=30) as client:
            reply = client.request({"type": "rollback", "symbol": "EURUSD", "timeframe": "H1", "version": 1}, raise_errors=False)
        command = models_command(two_versions, "rollback", "EURUSD_H1", "1", "--endpoint", running.endpoint)
    finally:
        running.stop()
    assert reply["code"] == ErrorCode.CONTROL_REJECTED
    assert "without --endpoint" in reply["message"]
    assert command == ExitCode.DATA
    assert "CONTROL_REJECTED" in capsys.readouterr().err
    # Neither the daemon nor the command wrote a pin, so a restart serves the same model.
    assert not (two_versions.paths.models_dir / "EURUSD_H1" / PIN_FILE).exists()


def test_hello_log_joins_connection_by_fd(daemon, eurusd, caplog):
    caplog.set_level(logging.INFO)
    # More connections from one host than the rate limit of failed handshakes lets through.
    clients = [SigBridgeClient(daemon.endpoint, timeout=30) for _ in range(15)]
    try:
        for number, client in enumerate(clients):
            client.hello(client=f"fd-test-{number}", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            messages = [record.getMessage() for record in caplog.records]
            connected = {match.group(1) for text in messages if (match := re.search(r"client connected peer=127\.0\.0\.1:\d+ fd=(\d+)", text))}
            hellos = [match.group(1) for text in messages if (match := re.search(r"hello client=fd-test-\d+ .* client_identity=\w+ peer=127\.0\.0\.1 fd=(\d+)", text))]
            if len(hellos) == len(clients) and set(hellos) <= connected:
                break
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
    assert len(hellos) == len(clients)
    assert set(hellos) <= connected


def test_control_from_reloads_live(two_versions):
    merged, waiting = merge_reloaded(two_versions, two_versions.replace("security", control_from="none"))
    assert merged.security.control_from == "none"
    assert waiting == []
    dispatcher = Dispatcher(two_versions, ModelRegistry(two_versions.paths.models_dir), None)
    dispatcher.apply_config(merged)
    reply = dispatcher.handle(b"\x00admin", rollback_frame(), peer=Peer("127.0.0.1", 12))
    assert reply["code"] == ErrorCode.CONTROL_REJECTED


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="this machine has no IPv6 loopback address")
def test_rollback_over_ipv6_loopback(two_versions, eurusd):
    running = start_daemon(two_versions, train=False, bind="tcp://[::1]:*")
    try:
        assert running.endpoint.startswith("tcp://[::1]:")
        assert signal_version(running.endpoint, eurusd, TRAIN_BARS) == 2
        with SigBridgeClient(running.endpoint, timeout=30) as client:
            reply = client.request({"type": "rollback", "symbol": "EURUSD", "timeframe": "H1", "version": 1}, raise_errors=False)
    finally:
        running.stop()
    assert (reply["type"], reply["model_version"]) == ("model", 1)
