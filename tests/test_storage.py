"""The SQLite bar database and streams rebuilt from it, on real database files."""

import sqlite3
import threading

import numpy as np
import pytest

from sigbridge.bars import COLUMNS, Bars
from sigbridge.daemon.sessions import Stream, StreamKey
from sigbridge.daemon.restore import load_stream, load_streams
from sigbridge.daemon.storage import SCHEMA_VERSION, BarStore, StorageError

KEY = StreamKey("ea-1", "EURUSD", "H1")


@pytest.fixture
def store(tmp_path):
    opened = BarStore(tmp_path / "bars.sqlite3", synchronous="normal")
    opened.save_stream(KEY, point=1e-05, digits=5, utc_offset=7200)
    yield opened
    opened.close()


def assert_same_bars(actual: Bars, expected: Bars) -> None:
    assert len(actual) == len(expected)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)


def with_close(bars: Bars, row: int, close: float) -> Bars:
    columns = {name: np.array(getattr(bars, name)) for name in COLUMNS}
    columns["close"][row] = close
    columns["high"][row] = max(columns["high"][row], close)
    columns["low"][row] = min(columns["low"][row], close)
    return Bars(**columns)


def test_store_uses_wal_mode(store):
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_store_round_trips_bars(store, eurusd):
    store.save_bars(KEY, eurusd.bars[:100])
    assert_same_bars(store.load_bars(KEY), eurusd.bars[:100])


def test_store_deduplicates_by_time(store, eurusd):
    store.save_bars(KEY, eurusd.bars[:10])
    store.save_bars(KEY, eurusd.bars[5:15])
    assert_same_bars(store.load_bars(KEY), eurusd.bars[:15])


def test_store_replaces_corrected_bar(store, eurusd):
    store.save_bars(KEY, eurusd.bars[:10])
    corrected = with_close(eurusd.bars[:10], 9, float(eurusd.bars.close[9]) + 0.0002)
    store.save_bars(KEY, corrected[9:10])
    loaded = store.load_bars(KEY)
    assert len(loaded) == 10
    assert loaded.close[9] == corrected.close[9]
    assert loaded.close[8] == eurusd.bars.close[8]


def test_store_allows_gaps(store, eurusd):
    store.save_bars(KEY, eurusd.bars[:5])
    store.save_bars(KEY, eurusd.bars[20:25])
    loaded = store.load_bars(KEY)
    np.testing.assert_array_equal(loaded.time, np.concatenate([eurusd.bars.time[:5], eurusd.bars.time[20:25]]))


def test_store_loads_newest_bars(store, eurusd):
    store.save_bars(KEY, eurusd.bars[:50])
    assert_same_bars(store.load_bars(KEY, last=7), eurusd.bars[43:50])


def test_store_lists_streams_after_reopen(tmp_path, eurusd):
    path = tmp_path / "bars.sqlite3"
    first = BarStore(path)
    first.save_stream(KEY, point=1e-05, digits=5, utc_offset=7200)
    first.save_bars(KEY, eurusd.bars[:30])
    first.close()

    second = BarStore(path)
    try:
        (stored,) = second.streams()
        loaded = second.load_bars(KEY)
    finally:
        second.close()
    assert stored.key == KEY
    assert (stored.point, stored.digits, stored.utc_offset) == (1e-05, 5, 7200)
    assert stored.bar_count == 30
    assert stored.first_time == int(eurusd.bars.time[0])
    assert_same_bars(loaded, eurusd.bars[:30])


def test_store_updates_stream_properties(store):
    store.save_stream(KEY, point=1e-03, digits=3, utc_offset=10800)
    (stored,) = store.streams()
    assert (stored.point, stored.digits, stored.utc_offset) == (1e-03, 3, 10800)


def test_store_bars_of_unknown_stream_rejected(store, eurusd):
    with pytest.raises(StorageError, match="save the stream before its bars"):
        store.save_bars(StreamKey("other", "EURUSD", "H1"), eurusd.bars[:3])


def test_store_second_opener_rejected(store):
    with pytest.raises(StorageError, match="in use by another sigbridge process"):
        BarStore(store.path)


def test_store_newer_schema_rejected(tmp_path):
    path = tmp_path / "bars.sqlite3"
    BarStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this sigbridge"):
        BarStore(path)


def test_store_damaged_file_rejected(tmp_path):
    path = tmp_path / "bars.sqlite3"
    path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(StorageError, match="damaged or not a SQLite database"):
        BarStore(path)


def test_store_failed_write_stores_nothing(tmp_path, eurusd):
    path = tmp_path / "bars.sqlite3"
    store = BarStore(path, busy_timeout=0.1)
    store.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
    store.save_bars(KEY, eurusd.bars[:5])
    # Another connection holds the write lock, as an operator's sqlite3 shell could.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="cannot save 5 bars"):
            store.save_bars(KEY, eurusd.bars[5:10])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert_same_bars(store.load_bars(KEY), eurusd.bars[:5])
    finally:
        store.close()


def committed_bar_count(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM bars").fetchone()[0]


def test_store_transaction_commits_once_on_leaving(store, eurusd):
    commits = store.commits
    other = StreamKey("ea-2", "EURUSD", "H1")
    with store.transaction() as transaction:
        store.save_bars(KEY, eurusd.bars[:5])
        store.save_stream(other, point=1e-05, digits=5, utc_offset=0)
        store.save_bars(other, eurusd.bars[:3])
        # Other connections see nothing before the commit.
        assert committed_bar_count(store.path) == 0
    assert store.commits == commits + 1
    assert transaction.written == [KEY, other, other]
    assert committed_bar_count(store.path) == 8


def test_store_transaction_undone_by_exception(store, eurusd):
    other = StreamKey("ea-2", "EURUSD", "H1")
    with pytest.raises(KeyError):
        with store.transaction():
            store.save_bars(KEY, eurusd.bars[:5])
            store.save_stream(other, point=1e-05, digits=5, utc_offset=0)
            raise KeyError("a failure in the caller")
    assert committed_bar_count(store.path) == 0
    assert [stored.key for stored in store.streams()] == [KEY]
    # The id of the undone stream row is forgotten, so its bars cannot go to a stale id.
    with pytest.raises(StorageError, match="has no stream"):
        store.save_bars(other, eurusd.bars[:1])


def test_store_transaction_failed_write_undone_alone(store, eurusd):
    unknown = StreamKey("ea-9", "EURUSD", "H1")
    with store.transaction() as transaction:
        store.save_bars(KEY, eurusd.bars[:5])
        store.save_stream(unknown, point=1e-05, digits=5, utc_offset=0)
        store.save_bars(unknown, eurusd.bars[:1])
        # The stream row is deleted behind the store, so the next insert breaks a foreign key.
        store._connection.execute("DELETE FROM bars")
        store._connection.execute("DELETE FROM streams WHERE client = 'ea-9'")
        with pytest.raises(StorageError, match="FOREIGN KEY"):
            store.save_bars(unknown, eurusd.bars[1:3])
        store.save_bars(KEY, eurusd.bars[5:7])
    assert transaction.written == [KEY, unknown, unknown, KEY]
    assert_same_bars(store.load_bars(KEY), eurusd.bars[5:7])


def test_store_transaction_waits_for_lock_once(tmp_path, eurusd):
    store = BarStore(tmp_path / "bars.sqlite3", busy_timeout=0.1)
    store.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with store.transaction():
            with pytest.raises(StorageError, match="locked"):
                store.save_bars(KEY, eurusd.bars[:5])
            blocker.execute("ROLLBACK")
            # The lock is free now, but the transaction does not wait for it a second time.
            with pytest.raises(StorageError, match="locked"):
                store.save_bars(KEY, eurusd.bars[5:10])
        store.save_bars(KEY, eurusd.bars[:3])
        assert_same_bars(store.load_bars(KEY), eurusd.bars[:3])
    finally:
        blocker.close()
        store.close()


def test_store_transactions_do_not_nest(store):
    with store.transaction():
        with pytest.raises(RuntimeError, match="do not nest"):
            with store.transaction():
                pass


def test_store_streams_filters_by_key(store):
    store.save_stream(StreamKey("ea-2", "EURUSD", "H1"), point=1e-05, digits=5, utc_offset=0)
    assert [stored.key for stored in store.streams(KEY)] == [KEY]
    assert store.streams(StreamKey("ea-3", "EURUSD", "H1")) == []


def test_store_close_checkpoints_wal(tmp_path, eurusd):
    path = tmp_path / "bars.sqlite3"
    store = BarStore(path)
    store.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
    store.save_bars(KEY, eurusd.bars[:100])
    store.close()
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def fed_stream(config, bars: Bars, chunk: int) -> Stream:
    stream = Stream(
        KEY, point=1e-05, digits=5, utc_offset=7200, features=config.features, max_bars=config.server.max_bars_per_stream
    )
    for start in range(0, len(bars), chunk):
        stream.append(bars[start : start + chunk])
    return stream


def test_load_stream_matches_uninterrupted_stream(store, fast_config, eurusd):
    bars = eurusd.bars[:700]
    store.save_bars(KEY, bars)
    (stored,) = store.streams()
    restored = load_stream(store, stored, fast_config)
    original = fed_stream(fast_config, bars, chunk=50)
    assert restored.last_time == original.last_time
    assert restored.bars_seen == original.bars_seen
    assert restored.first_time == original.first_time
    np.testing.assert_array_equal(restored.latest_window(), original.latest_window())


def test_load_stream_caps_buffer(store, fast_config, eurusd):
    config = fast_config.replace("server", max_bars_per_stream=400)
    bars = eurusd.bars[:1000]
    store.save_bars(KEY, bars)
    (stored,) = store.streams()
    restored = load_stream(store, stored, config)
    original = fed_stream(config, bars, chunk=100)
    assert len(restored.bars) == 400
    assert restored.bars_seen == 1000
    assert restored.first_time == int(bars.time[0])
    # The recursive averages forget the bars before the buffer: the windows agree closely.
    np.testing.assert_allclose(restored.latest_window(), original.latest_window(), rtol=1e-6, atol=1e-9)
    # A re-sent bar older than the buffer is a duplicate, as it was before the restart.
    result = restored.append(bars[100:101])
    assert (result.accepted, result.duplicates) == (0, 1)


def test_load_streams_restores_each_stream(store, fast_config, eurusd):
    other = StreamKey("ea-2", "GBPUSD", "M15")
    store.save_stream(other, point=1e-05, digits=5, utc_offset=0)
    store.save_bars(KEY, eurusd.bars[:20])
    store.save_bars(other, eurusd.bars[:7])
    streams = {stream.key: stream for stream in load_streams(store, fast_config)}
    assert streams[KEY].bars_seen == 20
    assert streams[other].bars_seen == 7
    assert streams[other].utc_offset == 0


def test_store_transaction_rolled_back_by_sqlite_stays_broken(store, eurusd):
    # A trigger rolls the whole transaction back, as SQLite does on a full disk or an I/O error.
    with sqlite3.connect(store.path) as connection:
        connection.execute(
            "CREATE TRIGGER full_disk BEFORE INSERT ON bars WHEN NEW.close = 999 "
            "BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
        )
    failing = with_close(eurusd.bars[5:6], 0, 999.0)
    with pytest.raises(StorageError, match="cannot commit"):
        with store.transaction():
            store.save_bars(KEY, eurusd.bars[:5])
            with pytest.raises(StorageError, match="disk is full"):
                store.save_bars(KEY, failing)
            # A later write must not start and commit a transaction of its own.
            with pytest.raises(StorageError, match="an earlier write of this batch failed"):
                store.save_bars(KEY, eurusd.bars[6:9])
    assert committed_bar_count(store.path) == 0


class ThreadlessStore(BarStore):
    """A bar database whose commit thread cannot start, as under a process limit."""

    def _commit_thread(self):
        raise RuntimeError("can't start new thread")


def test_store_background_commit_start_failure_releases_lock(tmp_path, eurusd):
    store = ThreadlessStore(tmp_path / "bars.sqlite3", synchronous="normal")
    try:
        store.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            with store.transaction(background=True):
                store.save_bars(KEY, eurusd.bars[:5])
        assert store._lock.acquire(timeout=5)
        store._lock.release()
        assert len(store.load_bars(KEY)) == 0
    finally:
        store.close()


class SlowCommitStore(BarStore):
    """A bar database whose commits wait for `release`, as a slow disk sync would."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def _commit(self, connection):
        assert self.release.wait(10), "the test never released the commit"
        super()._commit(connection)


def test_store_background_commit_blocks_other_threads(tmp_path, eurusd):
    store = SlowCommitStore(tmp_path / "bars.sqlite3", synchronous="normal")
    store.release.set()
    store.save_stream(KEY, point=1e-05, digits=5, utc_offset=0)
    store.release.clear()
    try:
        with store.transaction(background=True) as transaction:
            store.save_bars(KEY, eurusd.bars[:5])
        commits = store.commits
        counts = []
        reader = threading.Thread(target=lambda: counts.append((len(store.load_bars(KEY)), store.commits)))
        reader.start()
        # The commit is still running in the commit thread, so the reader waits for the lock.
        reader.join(0.3)
        assert reader.is_alive()
        store.release.set()
        transaction.wait()
        reader.join(10)
    finally:
        store.release.set()
        store.close()
    assert counts == [(5, commits + 1)]
