"""`sigbridge streams`: list the streams stored in the bar database, or delete one with its bars.

A stored stream counts against `server.max_streams_per_client` and `server.max_streams` even
after its client has gone, so deleting it is how an operator frees its place. `list` reads the
bar database read-only and works while a daemon runs. `delete` opens it for writing, which needs
the state folder's lock, so it fails while a daemon uses that folder. Model bundles are shared
per symbol and timeframe and are not touched.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sqlite3
import sys
from pathlib import Path

from sigbridge.config import Config
from sigbridge.daemon.codes import ExitCode
from sigbridge.daemon.sessions import StreamKey
from sigbridge.daemon.storage import (
    BUSY_TIMEOUT_SECONDS,
    SCHEMA_VERSION,
    BarStore,
    DatabaseInUseError,
    StorageError,
    StoredStream,
    query_streams,
)

logger = logging.getLogger(__name__)


def run_streams_command(args: argparse.Namespace, config: Config) -> int:
    if args.streams_command == "list":
        return list_streams(args, config)
    return delete_stream(args, config)


def _open_store(config: Config, action: str) -> BarStore | None:
    """Open the bar database, or print why a running daemon prevents it and return None.

    Raises:
        StorageError: the database is damaged or from a newer sigbridge.
    """
    try:
        return BarStore(config.paths.bars_database, synchronous=config.storage.synchronous)
    except DatabaseInUseError as error:
        print(
            f"sigbridge: cannot {action}: {error}. `sigbridge streams` works only while no daemon uses "
            f"{config.paths.state_dir}; stop the daemon first (e.g. `systemctl stop sigbridge`) and run it again",
            file=sys.stderr,
        )
        return None


def read_streams(path: Path, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> list[StoredStream]:
    """List the streams of a bar database read-only, without the state folder's lock.

    A reader in WAL mode neither blocks the daemon's writes nor waits for them, so this works
    while a daemon uses the database, and it reads the last committed state.

    Raises:
        StorageError: the file is missing, damaged, not a bar database, or from a newer schema.
    """
    path = Path(path)
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout)
    except sqlite3.Error as error:
        raise StorageError(f"cannot open bar database {path} to read it: {error}") from None
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"bar database {path} has schema version {version}, not this sigbridge's {SCHEMA_VERSION}; "
                "run the sigbridge version that wrote it"
            )
        return query_streams(connection)
    except sqlite3.Error as error:
        raise StorageError(f"bar database {path} cannot be read ({error})") from None
    finally:
        connection.close()


def _utc_text(stored: StoredStream, server_time: int | None) -> str | None:
    if server_time is None:
        return None
    # NOTE: bar times are the broker's server time, converted with the stream's latest `utc_offset`
    # from `hello`. Bars stored before the broker changed its offset (daylight saving) are off by the change.
    utc = datetime.datetime.fromtimestamp(server_time - stored.utc_offset, datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_streams(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.cli import print_json  # noqa: PLC0415

    if not config.paths.bars_database.exists():
        print(f"no bar database at {config.paths.bars_database}; a daemon creates it on its first start")
        return ExitCode.OK
    # Read-only, so it works while a daemon uses the database.
    streams = read_streams(config.paths.bars_database)

    if args.json:
        print_json(
            [
                {
                    "client": stored.key.client,
                    "symbol": stored.key.symbol,
                    "timeframe": stored.key.timeframe,
                    "bars": stored.bar_count,
                    "first_bar_utc": _utc_text(stored, stored.first_time),
                    "last_bar_utc": _utc_text(stored, stored.last_time),
                    "utc_offset": stored.utc_offset,
                }
                for stored in streams
            ]
        )
        return ExitCode.OK
    if not streams:
        print(f"no streams in {config.paths.bars_database}")
        return ExitCode.OK

    client_width = max(len("client"), *(len(stored.key.client) for stored in streams))
    symbol_width = max(len("symbol"), *(len(stored.key.symbol) for stored in streams))
    print(
        f"{'client':<{client_width}} {'symbol':<{symbol_width}} {'timeframe':<9} {'bars':>8} "
        f"{'first bar (UTC)':<20} {'last bar (UTC)':<20}"
    )
    for stored in streams:
        first = _utc_text(stored, stored.first_time) or "-"
        last = _utc_text(stored, stored.last_time) or "-"
        print(
            f"{stored.key.client:<{client_width}} {stored.key.symbol:<{symbol_width}} {stored.key.timeframe:<9} "
            f"{stored.bar_count:>8} {first:<20} {last:<20}"
        )
    return ExitCode.OK


def delete_stream(args: argparse.Namespace, config: Config) -> int:
    key = StreamKey(args.client, args.symbol, args.timeframe)
    database = config.paths.bars_database
    if not database.exists():
        _print_not_found(key, database)
        return ExitCode.DATA
    store = _open_store(config, f"delete stream {key}")
    if store is None:
        return ExitCode.STORAGE
    try:
        if not store.streams(key):
            _print_not_found(key, database)
            return ExitCode.DATA
        deleted_bars = store.delete_stream(key)
    finally:
        store.close()

    logger.info(
        "deleted stream client=%s symbol=%s timeframe=%s bars=%s path=%s",
        key.client,
        key.symbol,
        key.timeframe,
        deleted_bars,
        config.paths.bars_database,
    )
    print(f"deleted stream {key.client} {key.symbol} {key.timeframe} and its {deleted_bars} bars")
    return ExitCode.OK


def _print_not_found(key: StreamKey, database: Path) -> None:
    print(
        f"sigbridge: no stream client={key.client} symbol={key.symbol} timeframe={key.timeframe} in "
        f"{database}; `sigbridge streams list` shows the stored streams (names are case-sensitive)",
        file=sys.stderr,
    )
