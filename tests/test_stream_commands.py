"""`sigbridge streams list|delete` and `BarStore.delete_stream`, on real bar databases."""

import datetime
import json
import sqlite3

import pytest

from sigbridge.cli import build_parser, main, resolve_config
from sigbridge.client import bars_message
from sigbridge.daemon.codes import ErrorCode, ExitCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.sessions import StreamKey
from sigbridge.daemon.storage import BarStore, StorageError
from sigbridge.stream_commands import run_streams_command

from conftest import hello_frame, request_frame

FIRST = StreamKey("ea-1", "EURUSD", "H1")
SECOND = StreamKey("ea-2", "EURUSD", "H1")
FIRST_BARS = 300
SECOND_BARS = 120
SECOND_UTC_OFFSET = 7200


def streams_command(config, *arguments):
    args = build_parser().parse_args(["streams", *arguments, "--state-dir", str(config.paths.state_dir)])
    return run_streams_command(args, resolve_config(args))


def utc_text(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def count_rows(path, table):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


@pytest.fixture
def state(fast_config, tmp_path, eurusd):
    """A config whose bar database contains FIRST with 300 bars and SECOND with 120 bars."""
    config = fast_config.replace("paths", state_dir=tmp_path / "state")
    store = BarStore(config.paths.bars_database, synchronous="normal")
    try:
        store.save_stream(FIRST, point=eurusd.point, digits=eurusd.digits, utc_offset=0)
        store.save_bars(FIRST, eurusd.bars[:FIRST_BARS])
        store.save_stream(SECOND, point=eurusd.point, digits=eurusd.digits, utc_offset=SECOND_UTC_OFFSET)
        store.save_bars(SECOND, eurusd.bars[:SECOND_BARS])
    finally:
        store.close()
    return config


# BarStore.delete_stream and the last bar time of BarStore.streams.


def test_store_streams_has_last_time(state, eurusd):
    store = BarStore(state.paths.bars_database)
    try:
        first, second = store.streams()
    finally:
        store.close()
    assert first.last_time == int(eurusd.bars.time[FIRST_BARS - 1])
    assert second.last_time == int(eurusd.bars.time[SECOND_BARS - 1])
    assert second.first_time == int(eurusd.bars.time[0])


def test_store_stream_without_bars_has_no_times(tmp_path):
    store = BarStore(tmp_path / "bars.sqlite3")
    try:
        store.save_stream(FIRST, point=1e-05, digits=5, utc_offset=0)
        (stored,) = store.streams()
    finally:
        store.close()
    assert stored.bar_count == 0
    assert stored.first_time is None
    assert stored.last_time is None


def test_store_delete_stream_returns_bar_count(state):
    store = BarStore(state.paths.bars_database)
    try:
        deleted = store.delete_stream(FIRST)
        remaining = store.streams()
    finally:
        store.close()
    assert deleted == FIRST_BARS
    assert [stored.key for stored in remaining] == [SECOND]
    assert count_rows(state.paths.bars_database, "bars") == SECOND_BARS


def test_store_delete_unknown_stream_rejected(state):
    store = BarStore(state.paths.bars_database)
    try:
        with pytest.raises(StorageError, match="has no stream ea-9/EURUSD/H1 to delete"):
            store.delete_stream(StreamKey("ea-9", "EURUSD", "H1"))
        assert len(store.streams()) == 2
    finally:
        store.close()


def test_store_resaves_deleted_stream(state, eurusd):
    store = BarStore(state.paths.bars_database)
    try:
        # Loading the bars caches the stream's row id, which the delete must forget.
        assert len(store.load_bars(FIRST)) == FIRST_BARS
        store.delete_stream(FIRST)
        store.save_stream(FIRST, point=eurusd.point, digits=eurusd.digits, utc_offset=0)
        store.save_bars(FIRST, eurusd.bars[:5])
        stored = store.streams(FIRST)
    finally:
        store.close()
    assert [item.bar_count for item in stored] == [5]


def test_store_delete_undone_with_transaction(state):
    store = BarStore(state.paths.bars_database)
    try:
        with pytest.raises(RuntimeError, match="abort"):
            with store.transaction():
                assert store.delete_stream(FIRST) == FIRST_BARS
                raise RuntimeError("abort")
        restored = store.streams(FIRST)
        loaded = store.load_bars(FIRST)
    finally:
        store.close()
    assert [item.bar_count for item in restored] == [FIRST_BARS]
    assert len(loaded) == FIRST_BARS


# `sigbridge streams list`.


def test_streams_list_prints_table(state, eurusd, capsys):
    assert streams_command(state, "list") == ExitCode.OK
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["client", "symbol", "timeframe", "bars", "first", "bar", "(UTC)", "last", "bar", "(UTC)"]
    assert first.split() == [
        "ea-1",
        "EURUSD",
        "H1",
        str(FIRST_BARS),
        utc_text(int(eurusd.bars.time[0])),
        utc_text(int(eurusd.bars.time[FIRST_BARS - 1])),
    ]
    # Bar times are the broker's server time, so UTC is utc_offset earlier.
    assert second.split() == [
        "ea-2",
        "EURUSD",
        "H1",
        str(SECOND_BARS),
        utc_text(int(eurusd.bars.time[0]) - SECOND_UTC_OFFSET),
        utc_text(int(eurusd.bars.time[SECOND_BARS - 1]) - SECOND_UTC_OFFSET),
    ]


def test_streams_list_json(state, eurusd, capsys):
    assert streams_command(state, "list", "--json") == ExitCode.OK
    first, second = json.loads(capsys.readouterr().out)
    assert (first["client"], first["symbol"], first["timeframe"]) == ("ea-1", "EURUSD", "H1")
    assert first["bars"] == FIRST_BARS
    assert first["last_bar_utc"] == utc_text(int(eurusd.bars.time[FIRST_BARS - 1]))
    assert second["client"] == "ea-2"
    assert second["utc_offset"] == SECOND_UTC_OFFSET
    assert second["first_bar_utc"] == utc_text(int(eurusd.bars.time[0]) - SECOND_UTC_OFFSET)


def test_streams_list_marks_stream_without_bars(tmp_path, fast_config, capsys):
    config = fast_config.replace("paths", state_dir=tmp_path / "state")
    store = BarStore(config.paths.bars_database)
    store.save_stream(FIRST, point=1e-05, digits=5, utc_offset=0)
    store.close()
    assert streams_command(config, "list") == ExitCode.OK
    _, row = capsys.readouterr().out.splitlines()
    assert row.split() == ["ea-1", "EURUSD", "H1", "0", "-", "-"]


def test_streams_list_without_database(tmp_path, fast_config, capsys):
    config = fast_config.replace("paths", state_dir=tmp_path / "missing")
    assert streams_command(config, "list") == ExitCode.OK
    assert "no bar database at" in capsys.readouterr().out
    assert not config.paths.state_dir.exists()


# `sigbridge streams delete`.


def test_streams_delete_removes_stream_and_bars(state, capsys):
    assert streams_command(state, "delete", "ea-1", "EURUSD", "H1") == ExitCode.OK
    assert capsys.readouterr().out.strip() == f"deleted stream ea-1 EURUSD H1 and its {FIRST_BARS} bars"
    assert count_rows(state.paths.bars_database, "streams") == 1
    assert count_rows(state.paths.bars_database, "bars") == SECOND_BARS

    store = BarStore(state.paths.bars_database)
    try:
        (remaining,) = store.streams()
        kept_bars = store.load_bars(SECOND)
    finally:
        store.close()
    assert remaining.key == SECOND
    assert remaining.bar_count == SECOND_BARS
    assert len(kept_bars) == SECOND_BARS


def test_streams_delete_keeps_model_bundles(daemon_state, capsys):
    store = BarStore(daemon_state.paths.bars_database)
    store.save_stream(FIRST, point=1e-05, digits=5, utc_offset=0)
    store.close()
    bundles_before = sorted(path.relative_to(daemon_state.paths.models_dir) for path in daemon_state.paths.models_dir.rglob("*"))
    assert bundles_before
    assert streams_command(daemon_state, "delete", "ea-1", "EURUSD", "H1") == ExitCode.OK
    bundles_after = sorted(path.relative_to(daemon_state.paths.models_dir) for path in daemon_state.paths.models_dir.rglob("*"))
    assert bundles_after == bundles_before


def test_streams_delete_unknown_stream(state, capsys):
    assert streams_command(state, "delete", "ea-1", "EURUSD", "h1") == ExitCode.DATA
    error = capsys.readouterr().err
    assert "no stream client=ea-1 symbol=EURUSD timeframe=h1" in error
    assert "`sigbridge streams list`" in error
    assert count_rows(state.paths.bars_database, "bars") == FIRST_BARS + SECOND_BARS


def test_streams_delete_without_database(tmp_path, fast_config, capsys):
    config = fast_config.replace("paths", state_dir=tmp_path / "missing")
    assert streams_command(config, "delete", "ea-1", "EURUSD", "H1") == ExitCode.DATA
    assert "no stream client=ea-1" in capsys.readouterr().err
    assert not config.paths.state_dir.exists()


def test_streams_list_while_database_in_use(state, capsys):
    holder = BarStore(state.paths.bars_database)
    try:
        assert streams_command(state, "list") == ExitCode.OK
    finally:
        holder.close()
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ea-1") and str(FIRST_BARS) in line for line in lines)


@pytest.mark.parametrize("arguments", [["delete", "ea-1", "EURUSD", "H1"]])
def test_streams_fail_while_database_in_use(state, capsys, arguments):
    holder = BarStore(state.paths.bars_database)
    try:
        assert streams_command(state, *arguments) == ExitCode.STORAGE
        error = capsys.readouterr().err
        assert "in use by another sigbridge process" in error
        assert "stop the daemon first" in error
        assert len(holder.streams()) == 2
    finally:
        holder.close()
    assert count_rows(state.paths.bars_database, "bars") == FIRST_BARS + SECOND_BARS


# A dispatcher started on the database after a delete: the stream is gone and its place is free.


@pytest.fixture(scope="module")
def registry(trained_models_dir):
    return ModelRegistry(trained_models_dir)


def test_restarted_dispatcher_drops_deleted_stream(daemon_state, registry, eurusd, capsys):
    config = daemon_state.replace("server", max_streams=2)
    store = BarStore(config.paths.bars_database, synchronous="normal")
    try:
        dispatcher = Dispatcher(config, registry, None, store=store)
        for client in ("ea-1", "ea-2"):
            identity = f"\x00{client}".encode()
            assert dispatcher.handle(identity, hello_frame(eurusd, client))["type"] == "welcome"
            reply = dispatcher.handle(identity, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:250]), 2))
            assert reply["type"] == "signal"
        rejected = dispatcher.handle(b"\x00ea-3", hello_frame(eurusd, "ea-3"))
    finally:
        store.close()
    assert rejected["code"] == ErrorCode.TOO_MANY_STREAMS

    assert streams_command(config, "delete", "ea-1", "EURUSD", "H1") == ExitCode.OK
    assert "and its 250 bars" in capsys.readouterr().out

    reopened = BarStore(config.paths.bars_database, synchronous="normal")
    try:
        restarted = Dispatcher(config, registry, None, store=reopened)
        kept_welcome = restarted.handle(b"\x00ea-2", hello_frame(eurusd, "ea-2"))
        freed_welcome = restarted.handle(b"\x00ea-3", hello_frame(eurusd, "ea-3"))
    finally:
        reopened.close()
    assert FIRST not in restarted.streams
    assert SECOND in restarted.streams
    assert kept_welcome["bars_held"] == 250
    assert freed_welcome["type"] == "welcome"
    assert freed_welcome["bars_held"] == 0


# The `sigbridge` entry point.


def test_cli_parses_streams_commands(tmp_path):
    listing = build_parser().parse_args(["streams", "list", "--json", "--state-dir", str(tmp_path)])
    assert (listing.command, listing.streams_command, listing.json) == ("streams", "list", True)
    delete = build_parser().parse_args(["streams", "delete", "ea-1", "EURUSD", "H1", "--config", str(tmp_path / "x.toml")])
    assert (delete.streams_command, delete.client, delete.symbol, delete.timeframe) == ("delete", "ea-1", "EURUSD", "H1")
    assert delete.config == tmp_path / "x.toml"


def test_cli_streams_delete_needs_stream(capsys):
    with pytest.raises(SystemExit) as excinfo:
        build_parser().parse_args(["streams", "delete", "ea-1", "EURUSD"])
    assert excinfo.value.code == ExitCode.USAGE
    assert "timeframe" in capsys.readouterr().err


def test_cli_main_runs_streams_commands(state, capsys):
    state_dir = str(state.paths.state_dir)
    assert main(["streams", "list", "--state-dir", state_dir]) == ExitCode.OK
    assert "ea-2" in capsys.readouterr().out
    assert main(["streams", "delete", "ea-2", "EURUSD", "H1", "--state-dir", state_dir]) == ExitCode.OK
    assert f"its {SECOND_BARS} bars" in capsys.readouterr().out
    assert main(["streams", "delete", "ea-2", "EURUSD", "H1", "--state-dir", state_dir]) == ExitCode.DATA
    assert "no stream client=ea-2" in capsys.readouterr().err


def test_cli_main_streams_database_in_use(state, capsys):
    holder = BarStore(state.paths.bars_database)
    try:
        assert main(["streams", "delete", "ea-1", "EURUSD", "H1", "--state-dir", str(state.paths.state_dir)]) == ExitCode.STORAGE
    finally:
        holder.close()
    assert "stop the daemon first" in capsys.readouterr().err
