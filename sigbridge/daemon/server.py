"""The ZeroMQ ROUTER transport: receive frames, hand them to the dispatcher, send replies.

The socket is created, used and closed in the thread that calls `serve`. A client frame is
`[payload]` from a DEALER or `[b"", payload]` from a REQ socket; the ROUTER prepends the peer's
identity, and the reply goes back with the same envelope.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq

from sigbridge.daemon import protocol, replies
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.connections import ConnectionMonitor, Peer, message_peer
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.security import CurveAuthenticator, CurveKeys
from sigbridge.logsetup import RateLimitedLog

logger = logging.getLogger(__name__)

# How long one poll waits before the loop checks the stop event again, in milliseconds.
POLL_INTERVAL_MS = 100
# Bytes the ZeroMQ frame limit allows above `server.max_message_bytes`.
MAXMSGSIZE_MARGIN = 1 << 20
# Frames handled per wake-up before polling again, so a flood cannot starve the stop check.
MAX_FRAMES_PER_WAKE_UP = 1000
# At shutdown: seconds spent replying to requests already queued, and milliseconds the replies
# then get to leave before the socket is dropped (at least `server.linger_ms`).
DRAIN_SECONDS = 5.0
SHUTDOWN_LINGER_MS = 2000


# A received message: its frames (identity first), its `perf_counter()` receipt time and its peer.
Received = tuple[list[bytes], float, Peer]


def _receive(socket: zmq.Socket) -> Received:
    """Receive one message without waiting; raises zmq.Again when none is queued."""
    parts = socket.recv_multipart(zmq.NOBLOCK, copy=False)
    received_at = time.perf_counter()
    return [part.bytes for part in parts], received_at, message_peer(parts[-1])


def is_ipv6_endpoint(endpoint: str) -> bool:
    """Return whether a ZeroMQ endpoint names an IPv6 address, which needs the socket's IPV6 option."""
    return endpoint.startswith("tcp://[")


class BindError(RuntimeError):
    """Raised when the server endpoint cannot be bound."""


class Server:
    """Serves one ROUTER socket until the stop event is set.

    Args:
        dispatcher: applies requests and builds replies.
        context: the ZeroMQ context; the shared instance when None. CURVE needs a context of
            its own per server, because ZeroMQ allows one authentication handler per context.
        curve: the server key pair and allowed client keys, or None for no encryption.
        tick: called from the serving loop at least every POLL_INTERVAL_MS while idle, for
            housekeeping such as the systemd watchdog; it must return quickly.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config.server
        self._context = context or zmq.Context.instance()
        self._curve = curve
        self._tick = tick
        self.authenticator: CurveAuthenticator | None = None
        self.monitor: ConnectionMonitor | None = None
        # A client sending malformed envelopes in a loop must not flood the log.
        self._malformed_log = RateLimitedLog(logger)
        self.endpoint: str | None = None

    def serve(self, stop: threading.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Bind, call `on_ready(endpoint)`, then answer requests until `stop` is set.

        After `stop`, requests already queued on the socket get their replies before it closes.

        Raises:
            BindError: the endpoint is invalid or in use.
        """
        socket = self._context.socket(zmq.ROUTER)
        try:
            socket.setsockopt(zmq.LINGER, self.config.linger_ms)
            # libzmq drops the connection on a frame over MAXMSGSIZE without a reply, so the socket
            # limit sits one MiB above the decoder's: frames in between get a MESSAGE_TOO_LARGE reply.
            socket.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes + MAXMSGSIZE_MARGIN)
            # Queues per connection are bounded in messages, so memory per connection is at most
            # about max_queued_messages * (max_message_bytes + MAXMSGSIZE_MARGIN) in each direction.
            socket.setsockopt(zmq.RCVHWM, self.config.max_queued_messages)
            socket.setsockopt(zmq.SNDHWM, self.config.max_queued_messages)
            if self._curve is not None:
                self.authenticator = CurveAuthenticator(self._context, self._curve)
                self.authenticator.start()
                self.authenticator.apply(socket)
            self.monitor = ConnectionMonitor(socket, self._context)
            if is_ipv6_endpoint(self.config.bind):
                socket.setsockopt(zmq.IPV6, 1)
            try:
                socket.bind(self.config.bind)
            except zmq.ZMQError as error:
                raise BindError(
                    f"cannot bind {self.config.bind}: {error}; choose a free endpoint in server.bind or --bind"
                ) from None
            self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
            logger.info("listening endpoint=%s curve=%s", self.endpoint, "on" if self._curve else "off")
            if on_ready is not None:
                on_ready(self.endpoint)
            self._loop(socket, stop)
            if stop.is_set():
                try:
                    self._drain(socket)
                except zmq.ContextTerminated:
                    logger.info("ZeroMQ context terminated; queued requests stay unanswered")
        finally:
            if self.monitor is not None:
                self.monitor.stop()
            socket.close(linger=max(self.dispatcher.config.server.linger_ms, SHUTDOWN_LINGER_MS))
            if self.authenticator is not None:
                self.authenticator.stop()
            logger.info("stopped listening endpoint=%s", self.endpoint)

    @property
    def connections(self) -> int:
        """Open client connections, as the socket monitor counts them."""
        return self.monitor.connections if self.monitor is not None else 0

    def _drain(self, socket: zmq.Socket) -> None:
        """Reply to the requests queued when the stop came, for at most DRAIN_SECONDS."""
        deadline = time.monotonic() + DRAIN_SECONDS
        answered = unanswered = 0
        while time.monotonic() < deadline:
            received = []
            while len(received) < MAX_FRAMES_PER_WAKE_UP:
                try:
                    received.append(_receive(socket))
                except zmq.Again:
                    break
            if not received:
                break
            size = self.dispatcher.config.server.max_batch
            for start in range(0, len(received), size):
                # Batches can be slow, e.g. when another connection holds the bar database's lock.
                if time.monotonic() >= deadline:
                    unanswered += len(received) - start
                    break
                self._answer_batch(socket, received[start : start + size])
                answered += len(received[start : start + size])
        if unanswered:
            logger.warning("shutdown deadline reached; left requests unanswered count=%s", unanswered)
        logger.info("replied to requests queued at shutdown count=%s", answered)

    def _loop(self, socket: zmq.Socket, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        while not stop.is_set():
            if self._tick is not None:
                self._tick()
            try:
                if not poller.poll(POLL_INTERVAL_MS):
                    continue
                # Frames received in one wake-up form a micro-batch: their signals share one
                # forward pass per model, in groups of at most `server.max_batch` requests.
                received = self._receive_batch(socket, poller)
                size = self.dispatcher.config.server.max_batch
                for start in range(0, len(received), size):
                    if start and self._tick is not None:
                        # A slow batch, e.g. one waiting for a locked bar database, must not
                        # keep the watchdog waiting for the rest of the wake-up.
                        self._tick()
                    self._answer_batch(socket, received[start : start + size])
            except zmq.ContextTerminated:
                logger.info("ZeroMQ context terminated; stopping the server loop")
                return

    def _receive_batch(self, socket: zmq.Socket, poller: zmq.Poller) -> list[Received]:
        """Receive the frames queued now, up to MAX_FRAMES_PER_WAKE_UP; see `_receive`.

        With `server.batch_wait_us` above 0, wait up to that long after the first frame for more,
        unless `server.max_batch` frames arrived before.
        """
        server = self.dispatcher.config.server
        wait = server.batch_wait_us / 1e6
        received: list[Received] = []
        deadline = None
        while len(received) < MAX_FRAMES_PER_WAKE_UP:
            try:
                message = _receive(socket)
            except zmq.Again:
                if not wait or not received or len(received) >= server.max_batch:
                    break
                if deadline is None:
                    deadline = received[0][1] + wait
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                # zmq polls in whole milliseconds, so a shorter rest is slept.
                if remaining >= 0.001:
                    poller.poll(int(remaining * 1000))
                else:
                    time.sleep(remaining)
                continue
            received.append(message)
        return received

    def _answer_batch(self, socket: zmq.Socket, received: list[Received]) -> None:
        """Answer received frames in their arrival order, the valid ones through one dispatcher batch."""
        # Per frame: identity, envelope, and the reply, or None where the dispatcher builds it.
        outgoing: list[tuple[bytes, list[bytes], dict | None]] = []
        requests: list[tuple[bytes, bytes, float, Peer]] = []
        for frames, received_at, peer in received:
            identity, envelope, payload = frames[0], frames[1:-1], frames[-1]
            if len(frames) < 2 or any(envelope):
                # A ROUTER frame always has an identity; REQ adds one empty delimiter, nothing else does.
                error = protocol.ProtocolError(
                    ErrorCode.MALFORMED,
                    f"expected one payload frame (DEALER) or an empty delimiter and a payload (REQ), "
                    f"received {len(frames) - 1} frames",
                )
                self._malformed_log.log(
                    logging.WARNING, identity, "malformed envelope client_identity=%s frames=%s", identity.hex(), len(frames) - 1
                )
                envelope = [b""] if frames[1:2] == [b""] else []
                outgoing.append((identity, envelope, replies.error_reply(error)))
            else:
                outgoing.append((identity, envelope, None))
                requests.append((identity, payload, received_at, peer))

        handled = iter(self._handle_batch(requests))
        for identity, envelope, reply in outgoing:
            if reply is None:
                reply = next(handled)
            try:
                socket.send_multipart([identity, *envelope, protocol.encode(reply)], zmq.NOBLOCK)
            except zmq.Again:
                logger.warning("dropped a reply: send queue full client_identity=%s", identity.hex())

    def _handle_batch(self, requests: list[tuple[bytes, bytes, float, Peer]]) -> list[dict]:
        if not requests:
            return []
        try:
            return self.dispatcher.handle_batch(requests)
        except Exception:  # last resort: one failed batch must not stop the server
            identities = " ".join(request[0].hex() for request in requests)
            logger.error("failed to handle a batch of requests client_identities=%s", identities, exc_info=True)
            error = protocol.ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                "the server failed while handling this request; see the server log. Bars it "
                "accepted are kept, so re-sending them is safe",
            )
            return [replies.error_reply(error)] * len(requests)
