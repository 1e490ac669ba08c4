"""Logging set-up for every command: human-readable lines or JSON lines, and rate-limited logs.

The human format suits a terminal and journald. The JSON format writes one object per line for
log shippers: `time`, `level`, `logger`, `message`, the ids found in the message as `key=value`
(`client=`, `symbol=`, ...), and `exception` with the traceback when there is one.

When standard error is connected to the systemd journal (`JOURNAL_STREAM` names it), each line
starts with the syslog priority in angle brackets, such as `<4>` for WARNING. journald turns it
into the entry's priority, so `journalctl -p warning` works. Human lines then leave out the time,
which the journal records itself.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_HUMAN_FORMAT = "%(levelname)s %(name)s: %(message)s"
# syslog priorities of the logging levels, as sd-daemon(3) prefixes expect them.
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
# Ids copied from a message's `key=value` pairs into JSON fields of their own. Only these names,
# so a value that a client chose cannot add arbitrary fields.
ID_FIELDS = frozenset(
    {
        "client", "client_identity", "symbol", "timeframe", "bar_time", "model_version", "id", "code",
        "endpoint", "peer", "fd", "path", "state_dir", "streams", "signal", "status",
    }
)
_ID_PATTERN = re.compile(r"(?<![\w.])([a-z_]+)=('[^']*'|\"[^\"]*\"|[^\s,;()]+)")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for name, value in _ID_PATTERN.findall(message):
            if name in ID_FIELDS and name not in entry:
                # A value quoted with repr loses its quotes; one that ends a clause loses the colon.
                entry[name] = value.strip("'\"").rstrip(":")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class JournalPriorityFormatter(logging.Formatter):
    """Puts the record's syslog priority, such as `<3>` for ERROR, before another formatter's line."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{priority}>{self.inner.format(record)}"


def connected_to_journal(stream) -> bool:
    """Return whether `stream` is the journal connection that systemd names in `JOURNAL_STREAM`."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


class _StandardErrorHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record arrives, as logging's last resort does."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "INFO", log_format: str = "human", stream=None) -> None:
    """Send every logger's records at `level` and above to `stream` (standard error by default).

    A second call replaces the handler the first one added; handlers added by others stay.

    Args:
        level: a logging level name such as "INFO".
        log_format: "human" for text lines, "json" for JSON lines.
        stream: where to write; standard error when None.

    Raises:
        ValueError: for an unknown level or format.
    """
    if log_format not in ("human", "json"):
        raise ValueError(f"`log_format` must be \"human\" or \"json\", received log_format={log_format!r}")
    numeric_level = logging.getLevelName(level)
    if not isinstance(numeric_level, int):
        raise ValueError(f"`level` must be a logging level name such as INFO, received level={level!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StandardErrorHandler()
    if connected_to_journal(handler.stream):
        inner = JsonFormatter() if log_format == "json" else logging.Formatter(JOURNAL_HUMAN_FORMAT)
        handler.setFormatter(JournalPriorityFormatter(inner))
    else:
        handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT))
    handler.sigbridge_handler = True
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "sigbridge_handler", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)


class RateLimitedLog:
    """Passes at most `burst` records per key in each `interval`, and counts the ones it drops.

    The first record let through after a drop reports how many were dropped for that key, so a
    client that sends bad frames in a loop costs a few lines a minute instead of one per frame.
    Safe to call from several threads.

    Args:
        logger: where records go.
        burst: records per key and interval let through.
        interval: the window length in seconds.
        max_keys: keys remembered; windows that have ended are forgotten first.
        clock: monotonic seconds, replaceable in tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        interval: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError(f"`burst` must be >= 1 and `interval` > 0, received burst={burst}, interval={interval}")
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [window start, records in this window, records dropped since the last one passed]
        self._windows: dict[object, list] = {}

    def log(self, level: int, key: object, message: str, *args: object, **kwargs) -> bool:
        """Log like `logger.log` unless `key` used up its burst; returns whether it was logged."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.interval:
                dropped = window[2] if window is not None else 0
                if window is None and len(self._windows) >= self.max_keys:
                    self._forget_ended(now)
                window = self._windows[key] = [now, 0, dropped]
            if window[1] >= self.burst:
                window[2] += 1
                return False
            window[1] += 1
            dropped, window[2] = window[2], 0
        if dropped:
            message = message + " (%s similar messages suppressed)"
            args = (*args, dropped)
        self.logger.log(level, message, *args, **kwargs)
        return True

    def _forget_ended(self, now: float) -> None:
        for key in [key for key, window in self._windows.items() if now - window[0] >= self.interval]:
            del self._windows[key]
        if len(self._windows) >= self.max_keys:
            # Every key is active: forget the oldest windows rather than grow without bound.
            for key in sorted(self._windows, key=lambda item: self._windows[item][0])[: self.max_keys // 2]:
                del self._windows[key]
