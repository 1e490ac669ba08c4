"""Connection logging for the server socket, from ZeroMQ's socket monitor events.

A ROUTER socket does not tell its owner when peers come and go, and libzmq builds
ZMQ_ROUTER_NOTIFY only as a draft API, which pyzmq's wheels leave out. The socket monitor does
report each TCP connection (by file descriptor) and each failed handshake, so this module logs
those in a thread of its own. The peer address is read from the descriptor when the connection
is accepted.

A monitor event names a file descriptor, not a ROUTER identity. Each received message carries
the descriptor of its connection too (`Peer.fd`), so the `hello` log line shows both the
descriptor and the identity, and joins connection lines to request lines.
"""

from __future__ import annotations

import logging
import math
import os
import socket as sockets
import threading
import time
from typing import NamedTuple

import zmq
from zmq.utils.monitor import recv_monitor_message

from sigbridge.logsetup import RateLimitedLog

logger = logging.getLogger(__name__)

EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_ACCEPT_FAILED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_POLL_MS = 100
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
# Connect and disconnect lines logged per peer host and minute: one terminal with many charts
# opens one connection per chart, and a client that reconnects in a loop is rate-limited.
CONNECTION_LINES_PER_MINUTE = 200
# Seconds after a failed handshake during which connection lines get the failure lines' burst.
FAILURE_QUIET_SECONDS = 60.0


class Peer(NamedTuple):
    """The origin of a received message, from its ZeroMQ message properties.

    Attributes:
        address: the `Peer-Address` property: an IP address for tcp://, "localhost" and the
            peer's credentials for ipc://, None for inproc://.
        fd: the connection's file descriptor (ZMQ_SRCFD), as the monitor's connection lines show
            it; None where libzmq does not give it.
    """

    address: str | None
    fd: int | None


def message_peer(frame: zmq.Frame) -> Peer:
    """Read the peer of a received message from the properties of one of its frames."""
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:  # inproc:// messages have no address
        address = None
    try:
        # NOTE: libzmq 4.3 marks ZMQ_SRCFD deprecated; 4.3.5 still returns it.
        fd = frame.get(zmq.SRCFD)
    except zmq.ZMQError:
        fd = None
    return Peer(address, fd)


def peer_address(descriptor: int) -> str:
    """`host:port` of the peer of a connected socket descriptor, or "unknown" once it closed."""
    try:
        duplicate = os.dup(descriptor)
    except OSError:
        return "unknown"
    try:
        connection = sockets.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return "unknown"
    try:
        with connection:
            address = connection.getpeername()
            family = connection.family
    except OSError:
        return "unknown"
    if family == sockets.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if family == sockets.AF_INET:
        return f"{address[0]}:{address[1]}"
    return address or "local"


class ConnectionMonitor:
    """Logs connects, disconnects and failed handshakes of one socket until `stop`.

    Create it in the thread that owns `socket`, before binding; it starts its own thread, which
    creates and closes the monitor's PAIR socket. Failed handshakes are rate-limited per kind,
    because a client with a refused key reconnects every few hundred milliseconds. Connect and
    disconnect lines are rate-limited per peer host with a burst of CONNECTION_LINES_PER_MINUTE,
    so that every `hello` line of a normal start-up finds its connection line by `fd=`. Within
    FAILURE_QUIET_SECONDS of a failed handshake, whose event names no host, they get the burst
    of the failure lines instead.
    """

    def __init__(self, socket: zmq.Socket, context: zmq.Context) -> None:
        self._socket = socket
        self._context = context
        self._address = f"inproc://sigbridge-monitor-{id(socket):x}"
        self._stop = threading.Event()
        self._peers: dict[int, str] = {}
        self._log = RateLimitedLog(logger, burst=10)
        self._connection_log = RateLimitedLog(logger, burst=CONNECTION_LINES_PER_MINUTE)
        self._failed_at = -math.inf
        socket.monitor(self._address, EVENTS)
        self._thread = threading.Thread(target=self._run, name="sigbridge-connections", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """Connections currently open, as counted from accept and disconnect events."""
        return len(self._peers)

    def stop(self) -> None:
        """End the thread and the monitor; call it from the socket's thread before closing it."""
        self._stop.set()
        self._thread.join(2.0)
        try:
            self._socket.disable_monitor()
        except zmq.ZMQError as error:
            logger.debug("disabling the socket monitor failed: %s", error)

    def _run(self) -> None:
        pair = self._context.socket(zmq.PAIR)
        pair.setsockopt(zmq.LINGER, 0)
        try:
            pair.connect(self._address)
            while not self._stop.is_set():
                if not pair.poll(_POLL_MS):
                    continue
                self._handle(recv_monitor_message(pair))
        except zmq.ContextTerminated:
            return
        except Exception:  # logging connections must never take the daemon down
            logger.error("connection monitor failed; connections are no longer logged", exc_info=True)
        finally:
            pair.close()

    def _handle(self, event: dict) -> None:
        # pyzmq may hand `value` over as an Event flag; it is a plain number (an fd or a code).
        kind, descriptor = event["event"], int(event["value"])
        if kind == zmq.EVENT_ACCEPTED:
            peer = peer_address(descriptor)
            self._peers[descriptor] = peer
            self._connection_line(peer, "client connected peer=%s fd=%s connections=%s", descriptor)
        elif kind == zmq.EVENT_DISCONNECTED:
            peer = self._peers.pop(descriptor, "unknown")
            self._connection_line(peer, "client disconnected peer=%s fd=%s connections=%s", descriptor)
        elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            logger.debug("handshake succeeded peer=%s fd=%s", self._peers.get(descriptor, "unknown"), descriptor)
        elif kind & HANDSHAKE_FAILURES:
            self._failed_at = time.monotonic()
            self._log_handshake_failure(kind, descriptor)
        elif kind == zmq.EVENT_ACCEPT_FAILED:
            self._emit(logging.WARNING, "accept", "accepting a connection failed errno=%s", descriptor)

    def _connection_line(self, peer: str, message: str, descriptor: int) -> None:
        host = peer.rsplit(":", 1)[0] if ":" in peer else peer
        failing = time.monotonic() - self._failed_at < FAILURE_QUIET_SECONDS
        limiter = self._log if failing else self._connection_log
        limiter.log(logging.INFO, host, message, peer, descriptor, len(self._peers))

    def _log_handshake_failure(self, kind: int, descriptor: int) -> None:
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            # `value` is the ZAP status code here, e.g. 400 for a refused key.
            self._emit(logging.WARNING, "auth", "rejected a client handshake: authentication failed status=%s", descriptor)
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self._emit(
                logging.WARNING,
                "protocol",
                "rejected a client handshake: ZMTP protocol error %s (a client without CURVE keys, or not ZeroMQ)",
                descriptor,
            )
        else:
            self._emit(logging.WARNING, "handshake", "a client handshake failed errno=%s", descriptor)

    def _emit(self, level: int, key: str, message: str, *args: object) -> None:
        host = key.rsplit(":", 1)[0] if ":" in key else key
        self._log.log(level, host, message, *args)
