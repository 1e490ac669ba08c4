"""Request handling: one decoded request in, one reply map out, with no socket in sight."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from sigbridge import __version__
from sigbridge.bars import PRICE_COLUMNS
from sigbridge.config import Config
from sigbridge.daemon import ingest, protocol, replies
from sigbridge.daemon.bar_limits import check_bar_limits
from sigbridge.daemon.batching import PendingSignal, run_signals
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.connections import Peer
from sigbridge.daemon.control import apply_control, check_control_allowed
from sigbridge.daemon.protocol import BarsRequest, Hello, Ping, ProtocolError, Rollback, Unpin
from sigbridge.daemon.sessions import AppendResult, BarsRejected, Signal, Stream, StreamKey
from sigbridge.daemon.restore import load_stream, load_streams
from sigbridge.daemon.storage import BarStore, StorageError
from sigbridge.daemon.stream_state import bars_needed, stream_state
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.daemon.trainer import Trainer
from sigbridge.logsetup import RateLimitedLog

logger = logging.getLogger(__name__)

SERVER_NAME = f"sigbridge {__version__}"
# The peer of a request handled in process, without a socket.
NO_PEER = Peer(None, None)
NOT_STORED_MESSAGE = (
    "the server cannot store this request (see its log); nothing was applied, send it again later "
    "(after `hello` if the reply to that failed too)"
)
INTERNAL_ERROR_MESSAGE = (
    "the server failed while handling this request; see the server log. Bars it accepted are kept, "
    "so re-sending them is safe"
)


class Dispatcher:
    """Applies requests to the streams and builds replies.

    Streams are keyed by the client name from `hello`, so a client that reconnects with a new
    socket resumes its streams. A route maps a socket identity and stream to that key.

    With a `store`, the streams it holds are restored at construction, and every stream and
    accepted bar is written to it before the reply is built.
    """

    def __init__(
        self,
        config: Config,
        registry: ModelRegistry,
        trainer: Trainer | None,
        store: BarStore | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.trainer = trainer
        self.store = store
        self.limits = protocol.Limits(
            max_message_bytes=config.server.max_message_bytes,
            max_bars_per_message=config.server.max_bars_per_message,
        )
        self.streams: dict[StreamKey, Stream] = {}
        self._routes: dict[tuple[bytes, str, str], StreamKey] = {}
        self._streams_per_client: dict[str, int] = defaultdict(int)
        # One client sending bad frames in a loop must not flood the log.
        self._rejections = RateLimitedLog(logger)
        # The stream of the request being applied, set by `_hello` and `_bars` for `handle_batch`.
        self._request_key: StreamKey | None = None
        # Stored streams closed because they could not be read back after a failed commit. They
        # still count against the stream limits until their next `hello` reloads them.
        self._closed: set[StreamKey] = set()
        if store is not None:
            for stream in load_streams(store, config):
                self.streams[stream.key] = stream
                self._streams_per_client[stream.key.client] += 1

    def apply_config(self, config: Config) -> None:
        """Switch to a reloaded config; the caller keeps the keys that need a restart unchanged."""
        self.config = config
        self.limits = protocol.Limits(
            max_message_bytes=config.server.max_message_bytes,
            max_bars_per_message=config.server.max_bars_per_message,
        )
        for stream in self.streams.values():
            stream.max_bars = config.server.max_bars_per_stream

    def handle(
        self, identity: bytes, payload: bytes, received_at: float | None = None, peer: Peer = NO_PEER
    ) -> dict:
        """Apply one request frame and return the reply map; never raises for bad input."""
        received_at = time.perf_counter() if received_at is None else received_at
        return self.handle_batch([(identity, payload, received_at, peer)])[0]

    def handle_batch(self, frames: Sequence[tuple]) -> list[dict]:
        """Apply request frames in arrival order and return their replies in the same order.

        Bars requests whose stream has a full window wait until every frame is applied. Then
        each model runs one forward pass over all of their windows (micro-batching). A client
        that pipelines requests gets its replies in order. Never raises for bad input.

        The bar database writes of all the frames share one commit, made before this returns:
        every reply that acknowledges bars is sent after they are on disk. When that commit fails,
        those requests get INTERNAL_ERROR replies and their streams are rebuilt from the database.

        Args:
            frames: (socket identity, payload, `time.perf_counter()` at receipt, `Peer`) per
                request. The peer may be left out, as in-process callers do; control requests
                from an unknown peer are then treated as remote.
        """
        answers: list[dict] = []
        pending: list[PendingSignal] = []
        pending_slots: list[int] = []
        # Slots of the requests that wrote to the bar database; one commit covers them all.
        stored_slots: list[int] = []
        # The stream each request opened, routed or appended to, by slot; None for the others.
        slot_keys: list[StreamKey | None] = []
        # Leaving the block starts the commit, which syncs the disk in the store's commit thread
        # while the forward passes run.
        transaction = self.store.transaction(background=True) if self.store is not None else None
        try:
            with transaction or contextlib.nullcontext():
                for frame in frames:
                    identity, payload, received_at = frame[:3]
                    peer = frame[3] if len(frame) > 3 else NO_PEER
                    writes = len(transaction.written) if transaction else 0
                    self._request_key = None
                    reply = self._handle_one(identity, payload, received_at, peer)
                    slot_keys.append(self._request_key)
                    if transaction and len(transaction.written) > writes:
                        stored_slots.append(len(answers))
                    if isinstance(reply, PendingSignal):
                        pending.append(reply)
                        pending_slots.append(len(answers))
                        reply = {"id": reply.request_id}
                    answers.append(reply)
        except BaseException:
            if transaction is not None:
                self._undo_batch(transaction.written, None)
            raise
        commit_error = None
        try:
            signals = list(run_signals(pending, self.config.signal))
        finally:
            # Checked even when the forward passes raised, so memory never stays ahead of the disk.
            if transaction is not None:
                try:
                    transaction.wait()
                except StorageError as error:
                    commit_error = error
                    self._undo_batch(transaction.written, error)
        if commit_error is not None:
            # Every reply about an undone stream may report its undone bars (a duplicate of one, a
            # welcome's last_bar_time), so all of them fail, not only the requests that wrote.
            undone = set(transaction.written)
            failed = set(stored_slots)
            failed.update(slot for slot, key in enumerate(slot_keys) if key in undone and answers[slot].get("type") != "error")
            for slot in sorted(failed):
                not_stored = ProtocolError(ErrorCode.INTERNAL_ERROR, NOT_STORED_MESSAGE, request_id=answers[slot]["id"])
                answers[slot] = replies.error_reply(not_stored)
            signals = [(index, signal) for index, signal in signals if pending_slots[index] not in failed]
        for index, signal in signals:
            answers[pending_slots[index]] = self._signal_reply(pending[index], signal)
        return answers

    def _undo_batch(self, keys: list[StreamKey], error: StorageError | None) -> None:
        """Rebuild the streams written in a batch whose commit failed, from the database.

        The trainer drops their undone bars. A stream whose row was created in the batch, or
        that cannot be read back, is closed: its connection gets UNKNOWN_STREAM, and the `hello`
        that the client then sends reloads it from the database.
        """
        if error is not None:
            logger.error("cannot store a batch of requests; replying with errors: %s", error)
        for key in dict.fromkeys(keys):
            try:
                stream = self._load_stored(key)
            except StorageError as failed:
                logger.error(
                    "cannot reload stream client=%s symbol=%s timeframe=%s; it is closed until its next hello: %s",
                    key.client,
                    key.symbol,
                    key.timeframe,
                    failed,
                )
                if key in self.streams:
                    self._closed.add(key)
                self._close(key, counted=True)
                stream = None
            else:
                if stream is not None:
                    self.streams[key] = stream
                else:
                    self._close(key, counted=False)
            if self.trainer is not None:
                self.trainer.forget(key, replacement=stream)

    def _close(self, key: StreamKey, *, counted: bool) -> None:
        """Remove a stream from memory and its routes; `counted` keeps its place in the stream limits."""
        if self.streams.pop(key, None) is not None and not counted:
            self._streams_per_client[key.client] -= 1
        for route in [route for route, routed in self._routes.items() if routed == key]:
            del self._routes[route]

    def _load_stored(self, key: StreamKey) -> Stream | None:
        """Rebuild a stream from the database, or return None when the database has no such stream."""
        stored = self.store.streams(key) if self.store is not None else []
        return load_stream(self.store, stored[0], self.config) if stored else None

    def _handle_one(self, identity: bytes, payload: bytes, received_at: float, peer: Peer) -> dict | PendingSignal:
        try:
            request = protocol.decode_request(payload, self.limits)
            try:
                return self._apply(identity, request, received_at, peer)
            except ProtocolError as error:
                if error.request_id is None:
                    error.request_id = request.id
                raise
            except Exception:  # last resort: a failed request must not stop the server
                logger.error(
                    "failed to handle a request client_identity=%s id=%s", identity.hex(), request.id, exc_info=True
                )
                raise ProtocolError(ErrorCode.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE, request_id=request.id) from None
        except ProtocolError as error:
            self._rejections.log(
                logging.WARNING,
                identity,
                "rejected request client_identity=%s id=%s code=%s: %s",
                identity.hex(),
                error.request_id,
                error.code.name,
                error.message,
            )
            return replies.error_reply(error)

    def _apply(self, identity: bytes, request, received_at: float, peer: Peer) -> dict | PendingSignal:
        if isinstance(request, Ping):
            return replies.pong_reply(request.id, time.time())
        if isinstance(request, Hello):
            return self._hello(identity, request, peer)
        if isinstance(request, (Rollback, Unpin)):
            check_control_allowed(request, self.config.security.control_from, peer.address)
            return apply_control(request, self.registry)
        return self._bars(identity, request, received_at)

    def _hello(self, identity: bytes, hello: Hello, peer: Peer) -> dict:
        key = StreamKey(hello.client, hello.symbol, hello.timeframe)
        self._request_key = key
        stream = self.streams.get(key)
        if stream is None and self.store is not None:
            # A stream closed after a failed commit is still in the database.
            stream = self._reload_closed(key, hello)
        if stream is None:
            if self._streams_per_client[hello.client] >= self.config.server.max_streams_per_client:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"client={hello.client!r} already has {self.config.server.max_streams_per_client} "
                    "streams open (server.max_streams_per_client)",
                    field="symbol",
                    request_id=hello.id,
                )
            if len(self.streams) + len(self._closed) >= self.config.server.max_streams:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"the server already has {self.config.server.max_streams} streams open (server.max_streams)",
                    field="symbol",
                    request_id=hello.id,
                )
            self._save_stream(key, hello)
            stream = Stream(
                key,
                point=hello.point,
                digits=hello.digits,
                utc_offset=hello.utc_offset,
                features=self.config.features,
                max_bars=self.config.server.max_bars_per_stream,
            )
            self.streams[key] = stream
            self._streams_per_client[hello.client] += 1
            logger.info(
                "opened stream client=%s symbol=%s timeframe=%s digits=%s utc_offset=%s",
                hello.client,
                hello.symbol,
                hello.timeframe,
                hello.digits,
                hello.utc_offset,
            )
        else:
            if (stream.point, stream.digits, stream.utc_offset) != (hello.point, hello.digits, hello.utc_offset):
                self._save_stream(key, hello)
            stream.point, stream.digits, stream.utc_offset = hello.point, hello.digits, hello.utc_offset

        # One socket per stream: a reconnect moves the stream to the new socket identity.
        for route in [route for route, routed in self._routes.items() if routed == key]:
            del self._routes[route]
        self._routes[(identity, hello.symbol, hello.timeframe)] = key
        logger.info(
            "hello client=%s symbol=%s timeframe=%s client_identity=%s peer=%s fd=%s",
            hello.client,
            hello.symbol,
            hello.timeframe,
            identity.hex(),
            peer.address,
            peer.fd,
        )

        bundle = self.registry.get(hello.symbol, hello.timeframe)
        state, message = self._stream_state(stream, bundle)
        return replies.welcome_reply(
            hello.id,
            server=SERVER_NAME,
            symbol=hello.symbol,
            timeframe=hello.timeframe,
            state=state,
            message=message,
            bars_held=len(stream.bars),
            last_bar_time=stream.last_time,
            bars_needed=self._bars_needed(stream, bundle is not None),
            model_version=None if bundle is None else bundle.version,
            max_bars_per_message=self.config.server.max_bars_per_message,
        )

    def _reload_closed(self, key: StreamKey, hello: Hello) -> Stream | None:
        try:
            stream = self._load_stored(key)
        except StorageError as error:
            logger.error(
                "cannot reload stream client=%s symbol=%s timeframe=%s: %s", key.client, key.symbol, key.timeframe, error
            )
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                "the server cannot read this stream from its database (see its log); send `hello` again later",
                request_id=hello.id,
            ) from None
        counted = key in self._closed
        self._closed.discard(key)
        if stream is None:
            if counted:
                self._streams_per_client[key.client] -= 1
            return None
        self.streams[key] = stream
        if not counted:
            self._streams_per_client[key.client] += 1
        logger.info("reloaded stream client=%s symbol=%s timeframe=%s", key.client, key.symbol, key.timeframe)
        return stream

    def _save_stream(self, key: StreamKey, hello: Hello) -> None:
        if self.store is None:
            return
        try:
            self.store.save_stream(key, point=hello.point, digits=hello.digits, utc_offset=hello.utc_offset)
        except StorageError as error:
            logger.error(
                "cannot store stream client=%s symbol=%s timeframe=%s: %s", key.client, key.symbol, key.timeframe, error
            )
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                "the server cannot store this stream (see its log); nothing was applied, send `hello` again later",
                request_id=hello.id,
            ) from None

    def _stream_state(self, stream: Stream, bundle) -> tuple[str, str]:
        return stream_state(stream, bundle, self.trainer, self.config)

    def _bars_needed(self, stream: Stream, has_model: bool) -> int:
        return bars_needed(stream, has_model, self.trainer, self.config)

    def _bars(self, identity: bytes, request: BarsRequest, received_at: float) -> dict | PendingSignal:
        key = self._routes.get((identity, request.symbol, request.timeframe))
        if key is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_STREAM,
                f"no stream symbol={request.symbol!r} timeframe={request.timeframe!r} on this connection; "
                "send `hello` for it first",
                field="symbol",
                request_id=request.id,
            )
        self._request_key = key
        stream = self.streams[key]
        check_bar_limits(
            request.bars,
            now=time.time(),
            utc_offset=stream.utc_offset,
            max_future_seconds=self.config.server.max_future_seconds,
        )
        try:
            stream, result = ingest.append_bars(self.store, stream, request.bars)
        except BarsRejected as error:
            code = ErrorCode.INVALID_BAR
            if error.out_of_order:
                code = ErrorCode.BAR_CONFLICT if error.column in PRICE_COLUMNS else ErrorCode.BARS_OUT_OF_ORDER
            raise ProtocolError(code, str(error), field=error.column, request_id=request.id, row=error.row) from None
        except ingest.NotStored as error:
            self.streams[key] = error.stream
            logger.error(
                "cannot store bars client=%s symbol=%s timeframe=%s: %s", key.client, key.symbol, key.timeframe, error
            )
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                "the server cannot store these bars (see its log); nothing was applied, send them again later",
                request_id=request.id,
            ) from None
        self.streams[key] = stream
        logger.debug(
            "accepted bars client=%s symbol=%s timeframe=%s bar_time=%s accepted=%s duplicates=%s",
            key.client,
            key.symbol,
            key.timeframe,
            stream.last_time,
            result.accepted,
            result.duplicates,
        )
        if self.trainer is not None and result.accepted:
            # Records the bars for retraining; in lockstep, a due stream retrains here, before its signal.
            self.trainer.observe(stream)
        return self._reply_for_stream(stream, request.id, result, received_at)

    def _reply_for_stream(
        self, stream: Stream, request_id: int, result: AppendResult, received_at: float
    ) -> dict | PendingSignal:
        """Return the status reply, or the pending signal when the stream has a model and a full window."""
        key = stream.key
        bundle = self.registry.get(key.symbol, key.timeframe)
        common = {
            "symbol": key.symbol,
            "timeframe": key.timeframe,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
        }
        if bundle is not None:
            window = stream.latest_window()
            if window is not None:
                return PendingSignal(
                    bundle=bundle,
                    window=window,
                    bar_time=int(stream.last_time),
                    request_id=request_id,
                    received_at=received_at,
                    fields=common,
                )
        elif self.trainer is not None and self._bars_needed(stream, has_model=False) == 0:
            self.trainer.request(key.symbol, key.timeframe, stream.bars, stream.point, stream_key=key)
        state, message = self._stream_state(stream, bundle)
        return replies.status_reply(
            request_id,
            state=state,
            message=message,
            bars_held=len(stream.bars),
            bars_needed=self._bars_needed(stream, bundle is not None),
            last_bar_time=stream.last_time,
            model_version=None if bundle is None else bundle.version,
            **common,
        )

    def _signal_reply(self, pending: PendingSignal, signal: Signal | None) -> dict:
        if signal is None:
            # The forward pass failed and was logged; the bars stay accepted.
            error = ProtocolError(ErrorCode.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE, request_id=pending.request_id)
            return replies.error_reply(error)
        return replies.signal_reply(
            pending.request_id,
            bar_time=signal.bar_time,
            direction=signal.direction,
            score=signal.score,
            distance=signal.distance,
            model_version=signal.model_version,
            latency_us=int((time.perf_counter() - pending.received_at) * 1e6),
            **pending.fields,
        )
