"""Accepting bars: corrections of the last bar, conflicts, and storage before the reply."""

import sqlite3

import numpy as np
import pytest

from sigbridge.bars import COLUMNS, Bars
from sigbridge.client import bars_message
from sigbridge.daemon import ingest
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.sessions import BarsRejected, Stream, StreamKey
from sigbridge.daemon.storage import BarStore, StorageError
from sigbridge.daemon.trainer import ModelRegistry

from conftest import hello_frame, request_frame

KEY = StreamKey("ea-1", "EURUSD", "H1")
IDENTITY = b"\x00ea-1"


def new_stream(config) -> Stream:
    return Stream(KEY, point=1e-05, digits=5, utc_offset=0, features=config.features, max_bars=config.server.max_bars_per_stream)


def with_close(bars: Bars, row: int, delta: float) -> Bars:
    columns = {name: np.array(getattr(bars, name)) for name in COLUMNS}
    columns["close"][row] += delta
    columns["high"][row] = max(columns["high"][row], columns["close"][row])
    columns["low"][row] = min(columns["low"][row], columns["close"][row])
    return Bars(**columns)


@pytest.fixture
def store(tmp_path):
    opened = BarStore(tmp_path / "bars.sqlite3", synchronous="normal", busy_timeout=0.1)
    opened.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
    yield opened
    opened.close()


@pytest.fixture
def held(store, fast_config, eurusd):
    """A stored stream holding the first 300 bars."""
    stream, _ = ingest.append_bars(store, new_stream(fast_config), eurusd.bars[:300])
    return stream


def test_ingest_correction_replaces_last_bar(store, held, fast_config, eurusd):
    corrected = with_close(eurusd.bars[:300], 299, 0.0003)
    stream, result = ingest.append_bars(store, held, corrected[299:300])
    assert (result.accepted, result.duplicates) == (1, 0)
    assert stream.bars.close[-1] == corrected.close[299]
    assert stream.bars_seen == 300
    assert store.load_bars(KEY, last=1).close[0] == corrected.close[299]
    reference = new_stream(fast_config)
    reference.append(corrected)
    np.testing.assert_array_equal(stream.latest_window(), reference.latest_window())


def test_ingest_correction_with_new_bars(store, held, eurusd):
    sent = with_close(eurusd.bars[297:302], 2, -0.0002)
    stream, result = ingest.append_bars(store, held, sent)
    assert (result.accepted, result.duplicates) == (3, 2)
    assert stream.bars_seen == 302
    assert stream.last_time == int(eurusd.bars.time[301])
    assert len(store.load_bars(KEY)) == 302


def test_ingest_identical_last_bar_is_duplicate(store, held, eurusd):
    stream, result = ingest.append_bars(store, held, eurusd.bars[299:300])
    assert stream is held
    assert (result.accepted, result.duplicates) == (0, 1)


def test_ingest_changed_older_bar_rejected(store, held, eurusd):
    sent = with_close(eurusd.bars[298:301], 0, 0.0002)
    with pytest.raises(BarsRejected) as excinfo:
        ingest.append_bars(store, held, sent)
    assert excinfo.value.column == "close"
    assert excinfo.value.out_of_order
    assert held.last_time == int(eurusd.bars.time[299])
    assert len(store.load_bars(KEY)) == 300


def test_ingest_correction_after_changed_older_bar_rejected(store, held, eurusd):
    sent = with_close(with_close(eurusd.bars[298:300], 0, 0.0002), 1, 0.0002)
    with pytest.raises(BarsRejected):
        ingest.append_bars(store, held, sent)
    assert store.load_bars(KEY, last=1).close[0] == eurusd.bars.close[299]
    assert held.bars.close[-1] == eurusd.bars.close[299]


def test_ingest_correction_with_invalid_new_bar_rejected(store, held, eurusd):
    sent = with_close(eurusd.bars[299:301], 0, 0.0002)
    sent.high[1] = sent.low[1] - 0.001
    with pytest.raises(BarsRejected) as excinfo:
        ingest.append_bars(store, held, sent)
    assert excinfo.value.column == "high"
    assert store.load_bars(KEY, last=1).close[0] == eurusd.bars.close[299]


def hold_write_lock(store: BarStore) -> sqlite3.Connection:
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_ingest_failed_write_applies_nothing(store, held, eurusd):
    blocker = hold_write_lock(store)
    try:
        with pytest.raises(ingest.NotStored) as excinfo:
            ingest.append_bars(store, held, eurusd.bars[300:310])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    previous = excinfo.value.stream
    assert previous.last_time == int(eurusd.bars.time[299])
    assert previous.bars_seen == 300
    # The re-send is accepted and stored, not taken for a duplicate.
    stream, result = ingest.append_bars(store, previous, eurusd.bars[300:310])
    assert (result.accepted, result.duplicates) == (10, 0)
    assert len(store.load_bars(KEY)) == 310


def test_ingest_failed_correction_write_applies_nothing(store, held, eurusd):
    corrected = with_close(eurusd.bars[299:300], 0, 0.0003)
    blocker = hold_write_lock(store)
    try:
        with pytest.raises(ingest.NotStored) as excinfo:
            ingest.append_bars(store, held, corrected)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert excinfo.value.stream.bars.close[-1] == eurusd.bars.close[299]
    assert store.load_bars(KEY, last=1).close[0] == eurusd.bars.close[299]


def test_ingest_first_bars_failed_write_leaves_empty_stream(store, fast_config, eurusd):
    blocker = hold_write_lock(store)
    try:
        with pytest.raises(ingest.NotStored) as excinfo:
            ingest.append_bars(store, new_stream(fast_config), eurusd.bars[:5])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert excinfo.value.stream.last_time is None
    assert excinfo.value.stream.first_time is None
    assert excinfo.value.stream.bars_seen == 0


# The dispatcher with a store: replies only for stored bars, and streams restored on start.


@pytest.fixture(scope="module")
def registry(trained_models_dir):
    """One registry for the module, so the trained model is loaded once; no test writes bundles."""
    return ModelRegistry(trained_models_dir)


def test_dispatcher_stores_bars_before_reply(tmp_path, daemon_state, registry, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        dispatcher.handle(IDENTITY, hello_frame(eurusd))
        reply = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:250]), 2))
        assert reply["type"] == "signal"
        # A second connection reads the bars as soon as the reply exists.
        with sqlite3.connect(store.path) as connection:
            count = connection.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
        assert count == 250
    finally:
        store.close()


def test_dispatcher_correction_gets_signal(tmp_path, daemon_state, registry, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3", synchronous="normal")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        dispatcher.handle(IDENTITY, hello_frame(eurusd))
        first = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:250]), 2))
        message = bars_message("EURUSD", "H1", eurusd.bars[249:250])
        message["close"][0] += 0.0005
        message["high"][0] = max(message["high"][0], message["close"][0])
        reply = dispatcher.handle(IDENTITY, request_frame(message, 3))
    finally:
        store.close()
    assert reply["type"] == "signal"
    assert reply["bar_time"] == first["bar_time"]
    assert (reply["accepted"], reply["duplicates"]) == (1, 0)
    assert reply["score"] != first["score"]


def test_dispatcher_failed_write_replies_internal_error(tmp_path, daemon_state, registry, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3", busy_timeout=0.1)
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        dispatcher.handle(IDENTITY, hello_frame(eurusd))
        dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:250]), 2))
        blocker = hold_write_lock(store)
        try:
            failed = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:251]), 3))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        welcome = dispatcher.handle(IDENTITY, hello_frame(eurusd))
        retried = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:251]), 4))
    finally:
        store.close()
    assert failed["code"] == ErrorCode.INTERNAL_ERROR
    assert failed["id"] == 3
    assert "nothing was applied" in failed["message"]
    assert welcome["bars_held"] == 250
    assert retried["accepted"] == 1


def test_dispatcher_restores_streams_from_store(tmp_path, daemon_state, registry, eurusd):
    path = tmp_path / "bars.sqlite3"
    store = BarStore(path)
    dispatcher = Dispatcher(daemon_state, registry, None, store=store)
    dispatcher.handle(IDENTITY, hello_frame(eurusd))
    dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:300]), 2))
    store.close()

    reopened = BarStore(path)
    try:
        restarted = Dispatcher(daemon_state, registry, None, store=reopened)
        welcome = restarted.handle(b"\x00new-socket", hello_frame(eurusd))
        reply = restarted.handle(b"\x00new-socket", request_frame(bars_message("EURUSD", "H1", eurusd.bars[300:301]), 3))
    finally:
        reopened.close()
    uninterrupted = Dispatcher(daemon_state, registry, None)
    uninterrupted.handle(IDENTITY, hello_frame(eurusd))
    uninterrupted.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:300]), 2))
    expected = uninterrupted.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[300:301]), 3))

    assert welcome["bars_held"] == 300
    assert welcome["last_bar_time"] == int(eurusd.bars.time[299])
    assert reply["type"] == "signal"
    assert reply["score"] == expected["score"]
    assert reply["distance"] == expected["distance"]


# One commit per micro-batch: each request all or nothing, the batch on disk before any reply.


class CommitFailingStore(BarStore):
    """A bar database whose next commit fails as on a full disk; everything else is the real SQLite."""

    fail_next_commit = False

    def _commit(self, connection):
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise sqlite3.OperationalError("database or disk is full")
        super()._commit(connection)


def open_streams(dispatcher, eurusd, clients, bars=250):
    for number, client in enumerate(clients):
        identity = b"\x00" + client.encode()
        assert dispatcher.handle(identity, hello_frame(eurusd, client))["type"] == "welcome"
        reply = dispatcher.handle(identity, request_frame(bars_message("EURUSD", "H1", eurusd.bars[:bars]), 100 + number))
        assert reply["type"] == "signal"


def stored_bar_counts(path) -> dict:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT s.client, COUNT(b.time) FROM streams s LEFT JOIN bars b ON b.stream_id = s.id GROUP BY s.client"
        ).fetchall()
    return dict(rows)


def test_dispatcher_batch_commits_once(tmp_path, daemon_state, registry, eurusd):
    clients = ["ea-1", "ea-2", "ea-3"]
    store = BarStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        open_streams(dispatcher, eurusd, clients)
        commits = store.commits
        replies = dispatcher.handle_batch(
            [
                (b"\x00" + client.encode(), request_frame(bars_message("EURUSD", "H1", eurusd.bars[250 : 251 + number]), 7), 0.0)
                for number, client in enumerate(clients)
            ]
        )
        assert store.commits == commits + 1
        # A second connection reads every acknowledged bar as soon as the replies exist.
        assert stored_bar_counts(store.path) == {"ea-1": 251, "ea-2": 252, "ea-3": 253}
    finally:
        store.close()
    assert [reply["type"] for reply in replies] == ["signal"] * 3
    assert [reply["accepted"] for reply in replies] == [1, 2, 3]
    assert [reply["bar_time"] for reply in replies] == [int(eurusd.bars.time[250 + number]) for number in range(3)]


def test_dispatcher_batch_without_writes_commits_nothing(tmp_path, daemon_state, registry, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        open_streams(dispatcher, eurusd, ["ea-1"])
        commits = store.commits
        replies = dispatcher.handle_batch(
            [
                (IDENTITY, request_frame({"type": "ping"}, 8), 0.0),
                # A re-sent bar is a duplicate and writes nothing.
                (IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[249:250]), 9), 0.0),
            ]
        )
        assert store.commits == commits
    finally:
        store.close()
    assert replies[0]["type"] == "pong"
    assert (replies[1]["accepted"], replies[1]["duplicates"]) == (0, 1)


def test_dispatcher_failed_write_in_batch_keeps_the_others(tmp_path, daemon_state, registry, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3", busy_timeout=0.1)
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        open_streams(dispatcher, eurusd, ["ea-1", "ea-2"])
        # An operator deletes ea-1's stream behind the daemon, so its next write breaks a
        # foreign key inside the batch while ea-2's write succeeds.
        with sqlite3.connect(store.path) as connection:
            connection.execute("DELETE FROM bars WHERE stream_id = (SELECT id FROM streams WHERE client = 'ea-1')")
            connection.execute("DELETE FROM streams WHERE client = 'ea-1'")
        replies = dispatcher.handle_batch(
            [
                (b"\x00ea-1", request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:251]), 7), 0.0),
                (b"\x00ea-2", request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:251]), 8), 0.0),
            ]
        )
        counts = stored_bar_counts(store.path)
        welcome = dispatcher.handle(b"\x00ea-1", hello_frame(eurusd, "ea-1"))
    finally:
        store.close()
    assert replies[0]["code"] == ErrorCode.INTERNAL_ERROR
    assert replies[0]["id"] == 7
    assert replies[1]["type"] == "signal"
    assert counts == {"ea-2": 251}
    assert welcome["bars_held"] == 250


def test_dispatcher_failed_batch_commit_undoes_the_batch(tmp_path, daemon_state, registry, eurusd):
    store = CommitFailingStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        open_streams(dispatcher, eurusd, ["ea-1"])
        bad = bars_message("EURUSD", "H1", eurusd.bars[250:251])
        bad["low"][0] = bad["high"][0] + 0.001
        store.fail_next_commit = True
        replies = dispatcher.handle_batch(
            [
                (IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 7), 0.0),
                (IDENTITY, request_frame({"type": "ping"}, 8), 0.0),
                (b"\x00ea-2", hello_frame(eurusd, "ea-2"), 0.0),
                (IDENTITY, request_frame(bad, 9), 0.0),
                # These two write nothing, but their replies would report the undone bars.
                (IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[251:252]), 12), 0.0),
                (IDENTITY, hello_frame(eurusd, "ea-1"), 0.0),
            ]
        )
        counts = stored_bar_counts(store.path)
        # The client re-sends after the error. Its stream contains the stored bars only, and the
        # stream opened in the failed batch is gone until its `hello` is sent again.
        welcome = dispatcher.handle(IDENTITY, hello_frame(eurusd, "ea-1"))
        retried = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 10))
        unknown = dispatcher.handle(b"\x00ea-2", request_frame(bars_message("EURUSD", "H1", eurusd.bars[:5]), 11))
        reopened = dispatcher.handle(b"\x00ea-2", hello_frame(eurusd, "ea-2"))
    finally:
        store.close()
    internal = ErrorCode.INTERNAL_ERROR
    assert [reply.get("code") for reply in replies] == [internal, None, internal, ErrorCode.INVALID_BAR, internal, internal]
    assert [reply["id"] for reply in replies] == [7, 8, 1, 9, 12, 1]
    assert "nothing was applied" in replies[0]["message"]
    assert counts == {"ea-1": 250}
    assert (welcome["bars_held"], welcome["last_bar_time"]) == (250, int(eurusd.bars.time[249]))
    assert (retried["type"], retried["accepted"], retried["duplicates"]) == ("signal", 2, 0)
    assert unknown["code"] == ErrorCode.UNKNOWN_STREAM
    assert (reopened["type"], reopened["bars_held"]) == ("welcome", 0)


class CommitAndReadFailingStore(CommitFailingStore):
    """A bar database whose next commit and the stream read after it fail, as on a failing disk."""

    fail_next_read = False

    def streams(self, key=None):
        if self.fail_next_read:
            self.fail_next_read = False
            raise StorageError(f"bar database {self.path}: cannot list streams: disk I/O error")
        return super().streams(key)


def test_dispatcher_unreadable_stream_closed_after_failed_commit(tmp_path, daemon_state, registry, eurusd):
    store = CommitAndReadFailingStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(daemon_state, registry, None, store=store)
        open_streams(dispatcher, eurusd, ["ea-1"])
        store.fail_next_commit = store.fail_next_read = True
        failed = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 7))
        # The stream could not be read back, so it is closed rather than kept with undone bars.
        unknown = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 8))
        welcome = dispatcher.handle(IDENTITY, hello_frame(eurusd, "ea-1"))
        retried = dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 9))
        counts = stored_bar_counts(store.path)
    finally:
        store.close()
    assert failed["code"] == ErrorCode.INTERNAL_ERROR
    assert unknown["code"] == ErrorCode.UNKNOWN_STREAM
    assert (welcome["type"], welcome["bars_held"]) == ("welcome", 250)
    assert (retried["type"], retried["accepted"], retried["duplicates"]) == ("signal", 2, 0)
    assert counts == {"ea-1": 252}


def test_dispatcher_closed_stream_keeps_its_place(tmp_path, daemon_state, registry, eurusd):
    config = daemon_state.replace("server", max_streams=1)
    store = CommitAndReadFailingStore(tmp_path / "bars.sqlite3")
    try:
        dispatcher = Dispatcher(config, registry, None, store=store)
        open_streams(dispatcher, eurusd, ["ea-1"])
        store.fail_next_commit = store.fail_next_read = True
        dispatcher.handle(IDENTITY, request_frame(bars_message("EURUSD", "H1", eurusd.bars[250:252]), 7))
        # The closed stream is still stored, so it still counts against server.max_streams.
        other = dispatcher.handle(b"\x00ea-2", hello_frame(eurusd, "ea-2"))
        back = dispatcher.handle(IDENTITY, hello_frame(eurusd, "ea-1"))
        stored = [stored.key.client for stored in store.streams()]
    finally:
        store.close()
    assert other["code"] == ErrorCode.TOO_MANY_STREAMS
    assert (back["type"], back["bars_held"]) == ("welcome", 250)
    assert stored == ["ea-1"]
    assert len(dispatcher.streams) == 1
