"""The bar database: every accepted bar of every stream in SQLite (`restore` rebuilds streams from it).

One file, `<state_dir>/bars.sqlite3`, in WAL mode. The dispatcher writes the requests of one
micro-batch in one transaction, each request in its own savepoint, and commits it before it sends
the replies, so an acknowledged bar is on disk when the client learns of it. Bars are keyed by stream and bar time: writing a time again replaces the stored
bar (a correction), and gaps between bar times are allowed.

Durability: with `storage.synchronous = "full"` every commit waits for the WAL to reach the disk,
so acknowledged bars survive a power loss. With "normal" a commit only reaches the operating
system, so they survive a `kill -9` of the daemon but the last ones may be lost on a power loss.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path

from sigbridge.bars import COLUMNS, Bars
from sigbridge.daemon.sessions import StreamKey
from sigbridge.daemon.transaction import Transaction

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = (
    """
    CREATE TABLE streams (
        id INTEGER PRIMARY KEY,
        client TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        point REAL NOT NULL,
        digits INTEGER NOT NULL,
        utc_offset INTEGER NOT NULL,
        UNIQUE (client, symbol, timeframe)
    )
    """,
    """
    CREATE TABLE bars (
        stream_id INTEGER NOT NULL REFERENCES streams (id),
        time INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        tick_volume INTEGER NOT NULL,
        spread INTEGER NOT NULL,
        volume INTEGER NOT NULL,
        PRIMARY KEY (stream_id, time)
    ) WITHOUT ROWID
    """,
)
# Seconds a write waits for a lock held by another connection, e.g. an operator's sqlite3 shell.
BUSY_TIMEOUT_SECONDS = 5.0
_BAR_COLUMNS = ", ".join(COLUMNS)


class StorageError(RuntimeError):
    """Raised when the bar database cannot be opened, read or written."""


class DatabaseInUseError(StorageError):
    """Raised when another process, usually a running daemon, has the state folder's lock."""


@dataclasses.dataclass(frozen=True)
class StoredStream:
    """A stream as stored in the database, without its bars."""

    key: StreamKey
    point: float
    digits: int
    utc_offset: int
    bar_count: int
    # Bar open times in the broker's server time, in seconds. Both are None while the stream has no bars.
    first_time: int | None
    last_time: int | None


class BarStore:
    """The SQLite bar database of one state folder, safe to call from several threads.

    Opening takes an exclusive `flock` on `<database>.lock`, so a second daemon on the same state
    folder stops at start-up instead of writing the same streams. The kernel releases the lock
    when the process ends, `kill -9` included.

    Args:
        path: the database file; created with its schema when missing.
        synchronous: SQLite's `synchronous` setting, "full" or "normal".
        busy_timeout: seconds a write waits for another connection's lock.

    Raises:
        StorageError: the file is damaged, not a database, from a newer schema, or in use.
    """

    def __init__(self, path: Path, *, synchronous: str = "full", busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"`synchronous` must be \"full\" or \"normal\", received synchronous={synchronous!r}")
        self.path = Path(path)
        # A transaction takes it at its start and releases it when its commit ends, possibly in
        # the commit thread. The thread that opened the transaction writes without taking it again.
        self._lock = threading.Lock()
        self._stream_ids: dict[StreamKey, int] = {}
        self._transaction: Transaction | None = None
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
        # Committed transactions since opening: one per write, or one per `transaction()` that wrote.
        self.commits = 0
        self._lock_file = self._acquire_folder_lock()
        try:
            self._connection = self._connect(synchronous, busy_timeout)
        except BaseException:
            self._lock_file.close()
            raise
        logger.info("opened bar database path=%s synchronous=%s", self.path, synchronous)

    def _acquire_folder_lock(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open until close()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatabaseInUseError(
                f"bar database {self.path} is in use by another sigbridge process (lock file {lock_path}); "
                "stop it or give this daemon its own --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def _connect(self, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
        except sqlite3.Error as error:
            raise StorageError(f"cannot open bar database {self.path}: {error}") from None
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"bar database {self.path} cannot use WAL mode (journal_mode={mode})")
            connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
            connection.execute("PRAGMA foreign_keys=ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                connection.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                connection.execute("COMMIT")
            elif version > SCHEMA_VERSION:
                raise StorageError(
                    f"bar database {self.path} has schema version {version}, newer than this sigbridge's "
                    f"{SCHEMA_VERSION}; run the sigbridge version that wrote it"
                )
        except sqlite3.DatabaseError as error:
            connection.close()
            raise StorageError(
                f"bar database {self.path} is damaged or not a SQLite database ({error}); move it aside "
                "to start with an empty database, or restore it from a backup"
            ) from None
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        """Checkpoint the WAL into the database file, close it and release the folder lock."""
        with self._guard():
            if self._connection is None:
                return
            try:
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                # The WAL stays and is replayed on the next open, so no bar is lost.
                logger.error("checkpoint of bar database path=%s failed: %s", self.path, error)
            self._connection.close()
            self._connection = None
            self._lock_file.close()
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        logger.info("closed bar database path=%s", self.path)

    def save_stream(self, key: StreamKey, *, point: float, digits: int, utc_offset: int) -> None:
        """Insert a stream, or update the symbol properties of a stored one.

        Raises:
            StorageError: the write failed; nothing changed.
        """
        with self._guard():
            self._write(
                key,
                "save stream " + str(key),
                lambda connection: connection.execute(
                    "INSERT INTO streams (client, symbol, timeframe, point, digits, utc_offset) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client, symbol, timeframe) "
                    "DO UPDATE SET point = excluded.point, digits = excluded.digits, utc_offset = excluded.utc_offset",
                    (key.client, key.symbol, key.timeframe, point, digits, utc_offset),
                ),
            )

    def save_bars(self, key: StreamKey, bars: Bars) -> None:
        """Store bars of a saved stream in one transaction; a stored bar time is replaced.

        Raises:
            StorageError: the write failed or the stream was never saved; nothing was stored.
        """
        if not len(bars):
            return
        with self._guard():
            stream_id = self._stream_id(key)
            columns = [getattr(bars, name).tolist() for name in COLUMNS]
            rows = [(stream_id, *row) for row in zip(*columns)]
            self._write(
                key,
                f"save {len(rows)} bars of {key}",
                lambda connection: connection.executemany(
                    f"INSERT OR REPLACE INTO bars (stream_id, {_BAR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                ),
            )

    def delete_stream(self, key: StreamKey) -> int:
        """Delete a stream and all its bars in one transaction, and return the number of bars deleted.

        Inside `transaction()` the delete is one savepoint of that transaction, like any write.

        Model bundles are stored per symbol and timeframe outside the database and stay.

        Raises:
            StorageError: the stream is not stored, or the write failed; nothing was deleted.
        """
        with self._guard():
            stream_id = self._lookup_stream_id(key)
            if stream_id is None:
                raise StorageError(f"bar database {self.path} has no stream {key} to delete")
            deleted_bars: list[int] = []

            def delete(connection: sqlite3.Connection) -> None:
                # Bars first: their foreign key references the stream row.
                cursor = connection.execute("DELETE FROM bars WHERE stream_id = ?", (stream_id,))
                deleted_bars.append(cursor.rowcount)
                connection.execute("DELETE FROM streams WHERE id = ?", (stream_id,))

            self._write(key, f"delete stream {key}", delete)
            # Inside a transaction that later rolls back, `_end_transaction` clears the whole cache.
            self._stream_ids.pop(key, None)
        return deleted_bars[0]

    def transaction(self, *, background: bool = False) -> Transaction:
        """Group the writes made inside a `with` block into one commit.

        Each write inside runs in its own savepoint: a failed one is undone alone and raises
        StorageError as it would outside, and the others stay. Leaving the block commits them all
        at once, so with synchronous = "full" a micro-batch waits for one disk sync, not one per
        request. An exception inside the block undoes every write in it.

        With `background`, leaving the block starts the commit in the store's commit thread and
        returns at once. `Transaction.wait()` waits for that commit and raises its StorageError. Meanwhile
        other calls on the store wait, and the caller can compute while the disk syncs.

        Raises:
            StorageError: on leaving the block, or from `wait()` with `background`: the commit
                failed and every write inside was undone.
        """
        return Transaction(self, background=background)

    def _guard(self):
        """Return the lock, or a no-op context for the thread inside a transaction, which owns it."""
        transaction = self._transaction
        if transaction is not None and transaction.owner == threading.get_ident():
            return contextlib.nullcontext()
        return self._lock

    def _write(self, key: StreamKey, action: str, statement) -> None:
        connection = self._open_connection()
        transaction = self._transaction
        try:
            if transaction is None:
                connection.execute("BEGIN IMMEDIATE")
                statement(connection)
                self._commit(connection)
                return
            if transaction.broken:
                # SQLite rolled the whole transaction back (it does for a full disk or an I/O
                # error), so a new write here would start and commit a transaction of its own.
                raise StorageError(f"bar database {self.path}: cannot {action}: an earlier write of this batch failed")
            if transaction.begin_error is not None:
                # The lock wait already timed out in this transaction; waiting again per request
                # would stall the serving loop for busy_timeout seconds per request.
                raise StorageError(f"bar database {self.path}: cannot {action}: {transaction.begin_error}")
            if transaction.begun and not connection.in_transaction:
                # SQLite rolled the transaction back during a read of this batch.
                transaction.broken = True
                raise StorageError(f"bar database {self.path}: cannot {action}: the batch's transaction was rolled back")
            if not transaction.begun:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as error:
                    transaction.begin_error = str(error)
                    raise
                transaction.begun = True
            connection.execute("SAVEPOINT write")
            try:
                statement(connection)
            except sqlite3.Error:
                try:
                    connection.execute("ROLLBACK TO write")
                    connection.execute("RELEASE write")
                except sqlite3.Error:
                    transaction.broken = True
                if not connection.in_transaction:
                    transaction.broken = True
                raise
            connection.execute("RELEASE write")
            transaction.written.append(key)
        except sqlite3.Error as error:
            if transaction is None and connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StorageError(f"bar database {self.path}: cannot {action}: {error}") from None

    def _commit(self, connection: sqlite3.Connection) -> None:
        connection.execute("COMMIT")
        self.commits += 1

    def _end_transaction(self, transaction: Transaction, commit: bool) -> None:
        """Commit or roll back an open transaction; the caller holds the lock."""
        connection = self._open_connection()
        error = None
        if commit and not transaction.broken:
            try:
                self._commit(connection)
                return
            except sqlite3.Error as failed:
                error = failed
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:
                logger.error("rollback of bar database path=%s failed", self.path, exc_info=True)
        # Stream rows inserted in the transaction are gone, and so are their ids.
        self._stream_ids.clear()
        if commit:
            reason = error if error is not None else "a write inside it failed and could not be undone alone"
            raise StorageError(
                f"bar database {self.path}: cannot commit {len(transaction.written)} writes: {reason}"
            )

    def _commit_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._committer is None:
            self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sigbridge-commit")
        return self._committer

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageError(f"bar database {self.path} is closed")
        return self._connection

    def _stream_id(self, key: StreamKey) -> int:
        stream_id = self._stream_ids.get(key)
        if stream_id is not None:
            return stream_id
        stream_id = self._lookup_stream_id(key)
        if stream_id is None:
            raise StorageError(f"bar database {self.path} has no stream {key}; save the stream before its bars")
        self._stream_ids[key] = stream_id
        return stream_id

    def _lookup_stream_id(self, key: StreamKey) -> int | None:
        """Return the database id of a stream, or None when it is not stored; bypasses the cache."""
        try:
            row = self._open_connection().execute(
                "SELECT id FROM streams WHERE client = ? AND symbol = ? AND timeframe = ?",
                (key.client, key.symbol, key.timeframe),
            ).fetchone()
        except sqlite3.Error as error:
            raise StorageError(f"bar database {self.path}: cannot look up stream {key}: {error}") from None
        return None if row is None else row[0]

    def streams(self, key: StreamKey | None = None) -> list[StoredStream]:
        """List every stored stream, or only `key`'s, with its bar count and first and last bar times, ordered by key."""
        with self._guard():
            try:
                return query_streams(self._open_connection(), key)
            except sqlite3.Error as error:
                raise StorageError(f"bar database {self.path}: cannot list streams: {error}") from None

    def load_bars(self, key: StreamKey, *, last: int | None = None) -> Bars:
        """The stream's stored bars, oldest first; only the `last` newest ones when given."""
        with self._guard():
            stream_id = self._stream_id(key)
            try:
                rows = self._open_connection().execute(
                    f"SELECT {_BAR_COLUMNS} FROM bars WHERE stream_id = ? ORDER BY time DESC LIMIT ?",
                    (stream_id, -1 if last is None else last),
                ).fetchall()
            except sqlite3.Error as error:
                raise StorageError(f"bar database {self.path}: cannot read the bars of {key}: {error}") from None
        if not rows:
            return Bars.empty()
        rows.reverse()
        return Bars.from_columns(*zip(*rows))


def query_streams(connection: sqlite3.Connection, key: StreamKey | None = None) -> list[StoredStream]:
    """List the streams of a bar database connection, or only `key`'s; see `BarStore.streams`."""
    where, parameters = "", ()
    if key is not None:
        where = "WHERE s.client = ? AND s.symbol = ? AND s.timeframe = ? "
        parameters = (key.client, key.symbol, key.timeframe)
    rows = connection.execute(
        "SELECT s.client, s.symbol, s.timeframe, s.point, s.digits, s.utc_offset, "
        "(SELECT COUNT(*) FROM bars b WHERE b.stream_id = s.id), "
        "(SELECT MIN(time) FROM bars b WHERE b.stream_id = s.id), "
        "(SELECT MAX(time) FROM bars b WHERE b.stream_id = s.id) "
        f"FROM streams s {where}ORDER BY s.client, s.symbol, s.timeframe",
        parameters,
    ).fetchall()
    return [
        StoredStream(StreamKey(client, symbol, timeframe), point, digits, utc_offset, count, first, last)
        for client, symbol, timeframe, point, digits, utc_offset, count, first, last in rows
    ]
