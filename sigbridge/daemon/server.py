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

from sigbridge.daemon import protocol
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher

logger = logging.getLogger(__name__)

# How long one poll waits before the loop checks the stop event again, in milliseconds.
POLL_INTERVAL_MS = 100
# Bytes the ZeroMQ frame limit allows above `server.max_message_bytes`.
MAXMSGSIZE_MARGIN = 1 << 20
# Frames handled per wake-up before polling again, so a flood cannot starve the stop check.
MAX_BATCH = 1000


class BindError(RuntimeError):
    """Raised when the server endpoint cannot be bound."""


class Server:
    """Serves one ROUTER socket until the stop event is set."""

    def __init__(self, dispatcher: Dispatcher, *, context: zmq.Context | None = None) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config.server
        self._context = context or zmq.Context.instance()
        self.endpoint: str | None = None

    def serve(self, stop: threading.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Bind, call `on_ready(endpoint)`, then answer requests until `stop` is set.

        Raises:
            BindError: the endpoint is invalid or in use.
        """
        socket = self._context.socket(zmq.ROUTER)
        try:
            socket.setsockopt(zmq.LINGER, self.config.linger_ms)
            # libzmq drops the connection on a frame over MAXMSGSIZE without a reply, so the socket
            # limit sits one MiB above the decoder's: frames in between get a MESSAGE_TOO_LARGE reply.
            socket.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes + MAXMSGSIZE_MARGIN)
            try:
                socket.bind(self.config.bind)
            except zmq.ZMQError as error:
                raise BindError(
                    f"cannot bind {self.config.bind}: {error}; choose a free endpoint in server.bind or --bind"
                ) from None
            self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
            logger.info("listening endpoint=%s", self.endpoint)
            if on_ready is not None:
                on_ready(self.endpoint)
            self._loop(socket, stop)
        finally:
            socket.close()
            logger.info("stopped listening endpoint=%s", self.endpoint)

    def _loop(self, socket: zmq.Socket, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        while not stop.is_set():
            try:
                if not poller.poll(POLL_INTERVAL_MS):
                    continue
                for _ in range(MAX_BATCH):
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    self._answer(socket, frames, time.perf_counter())
            except zmq.ContextTerminated:
                logger.info("ZeroMQ context terminated; stopping the server loop")
                return

    def _answer(self, socket: zmq.Socket, frames: list[bytes], received_at: float) -> None:
        identity, envelope, payload = frames[0], frames[1:-1], frames[-1]
        if len(frames) < 2 or any(envelope):
            # A ROUTER frame always has an identity; REQ adds one empty delimiter, nothing else does.
            error = protocol.ProtocolError(
                ErrorCode.MALFORMED,
                f"expected one payload frame (DEALER) or an empty delimiter and a payload (REQ), "
                f"received {len(frames) - 1} frames",
            )
            logger.warning("malformed envelope client_identity=%s frames=%s", identity.hex(), len(frames) - 1)
            reply = protocol.error_reply(error)
            envelope = [b""] if frames[1:2] == [b""] else []
        else:
            try:
                reply = self.dispatcher.handle(identity, payload, received_at)
            except Exception:  # last resort: one failed request must not stop the server
                logger.error("failed to handle a request client_identity=%s", identity.hex(), exc_info=True)
                reply = protocol.error_reply(
                    protocol.ProtocolError(
                        ErrorCode.INTERNAL_ERROR,
                        "the server failed while handling this request; see the server log. Bars it "
                        "accepted are kept, so re-sending them is safe",
                    )
                )
        try:
            socket.send_multipart([identity, *envelope, protocol.encode(reply)], zmq.NOBLOCK)
        except zmq.Again:
            logger.warning("dropped a reply: send queue full client_identity=%s", identity.hex())
