"""systemd's notification protocol (sd_notify), written out over the datagram socket it names.

systemd passes the socket in `NOTIFY_SOCKET`: a file system path, or a name in the Linux
abstract namespace written with a leading `@`. Each notification is one datagram of
`KEY=VALUE` lines, as described in the sd_notify(3) manual page. Without `NOTIFY_SOCKET`, for
example when the daemon runs in a terminal, every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)


class Notifier:
    """Sends READY, STATUS, WATCHDOG, RELOADING and STOPPING notifications to systemd.

    A failed send is logged once at WARNING and never raised: the service manager going away
    must not stop the daemon. The watchdog interval is half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    recommends, and applies only when `WATCHDOG_PID` is unset or names this process.

    Args:
        address: the `NOTIFY_SOCKET` value, or None to send nothing.
        watchdog_usec: the `WATCHDOG_USEC` value in microseconds, or None for no watchdog.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._socket: socket.socket | None = None
        self._last_watchdog = 0.0
        self._last_status: str | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Notifier:
        """Build a notifier from `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`."""
        environ = os.environ if environ is None else environ
        watchdog_usec = None
        watchdog_pid = environ.get("WATCHDOG_PID")
        if watchdog_pid in (None, "", str(os.getpid())):
            try:
                watchdog_usec = int(environ.get("WATCHDOG_USEC", "")) or None
            except ValueError:
                watchdog_usec = None
        return cls(environ.get("NOTIFY_SOCKET"), watchdog_usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str | None = None) -> None:
        """Tell systemd that start-up, or a reload, finished: the socket is bound, models loaded."""
        self._send("READY=1", f"MAINPID={os.getpid()}", *self._status_lines(status))

    def reloading(self) -> None:
        """Tell systemd that a configuration reload began; `ready` ends it."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", *self._status_lines("reloading"))

    def stopping(self, status: str | None = "stopping") -> None:
        """Tell systemd that shutdown began."""
        self._send("STOPPING=1", *self._status_lines(status))

    def status(self, text: str) -> None:
        """Send a one-line STATUS shown by `systemctl status`, only when it changed."""
        if text != self._last_status:
            self._send(*self._status_lines(text))

    def extend_timeout(self, seconds: float) -> None:
        """Ask systemd for `seconds` more before the start-up (or stop) timeout, while work goes on."""
        self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self, now: float | None = None) -> None:
        """Send WATCHDOG=1 when half the watchdog timeout passed since the last one.

        Call it from the main loop: it is cheap when nothing is due.
        """
        if self.watchdog_interval is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self._send("WATCHDOG=1")

    def _status_lines(self, status: str | None) -> list[str]:
        if status is None:
            return []
        text = " ".join(status.split())
        self._last_status = text
        return [f"STATUS={text}"]

    def _send(self, *lines: str) -> None:
        if self.address is None or not lines:
            return
        # An abstract socket name starts with a NUL byte; systemd writes it with a leading `@`.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(lines).encode(), target)
        except OSError as error:
            if not self._warned:
                logger.warning("cannot notify systemd socket=%s: %s", self.address, error)
                self._warned = True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
