"""Request handling: one decoded request in, one reply map out, with no socket in sight."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from sigbridge import __version__
from sigbridge.config import Config, bars_for_first_signal
from sigbridge.daemon import protocol
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.protocol import BarsRequest, Hello, Ping, ProtocolError
from sigbridge.daemon.sessions import AppendResult, BarsRejected, Stream, StreamKey, predict_latest
from sigbridge.daemon.trainer import InitialTrainer, ModelRegistry

logger = logging.getLogger(__name__)

SERVER_NAME = f"sigbridge {__version__}"


def bars_to_train(config: Config) -> int:
    """Bars a stream needs before initial training is tried: a first window, the minimum
    examples plus the validation tail, and about three ZigZag depths whose labels are unconfirmed.
    """
    examples = config.training.min_examples / (1.0 - config.training.validation_fraction)
    unconfirmed = 2 * config.labels.depth + config.labels.backstep
    return bars_for_first_signal(config.features) + int(examples) + unconfirmed


class Dispatcher:
    """Applies requests to the streams and builds replies.

    Streams are keyed by the client name from `hello`, so a client that reconnects with a new
    socket resumes its streams. A route maps a socket identity and stream to that key.
    """

    def __init__(self, config: Config, registry: ModelRegistry, trainer: InitialTrainer | None) -> None:
        self.config = config
        self.registry = registry
        self.trainer = trainer
        self.limits = protocol.Limits(
            max_message_bytes=config.server.max_message_bytes,
            max_bars_per_message=config.server.max_bars_per_message,
        )
        self.streams: dict[StreamKey, Stream] = {}
        self._routes: dict[tuple[bytes, str, str], StreamKey] = {}
        self._streams_per_client: dict[str, int] = defaultdict(int)

    def handle(self, identity: bytes, payload: bytes, received_at: float | None = None) -> dict:
        """Apply one request frame and return the reply map; never raises for bad input."""
        received_at = time.perf_counter() if received_at is None else received_at
        try:
            request = protocol.decode_request(payload, self.limits)
            try:
                return self._apply(identity, request, received_at)
            except ProtocolError:
                raise
            except Exception:  # last resort: a failed request must not stop the server
                logger.error(
                    "failed to handle a request client_identity=%s id=%s", identity.hex(), request.id, exc_info=True
                )
                raise ProtocolError(
                    ErrorCode.INTERNAL_ERROR,
                    "the server failed while handling this request; see the server log. Bars it "
                    "accepted are kept, so re-sending them is safe",
                    request_id=request.id,
                ) from None
        except ProtocolError as error:
            logger.warning(
                "rejected request client_identity=%s id=%s code=%s: %s",
                identity.hex(),
                error.request_id,
                error.code.name,
                error.message,
            )
            return protocol.error_reply(error)

    def _apply(self, identity: bytes, request, received_at: float) -> dict:
        if isinstance(request, Ping):
            return protocol.pong_reply(request.id, time.time())
        if isinstance(request, Hello):
            return self._hello(identity, request)
        return self._bars(identity, request, received_at)

    def _hello(self, identity: bytes, hello: Hello) -> dict:
        key = StreamKey(hello.client, hello.symbol, hello.timeframe)
        stream = self.streams.get(key)
        if stream is None:
            if self._streams_per_client[hello.client] >= self.config.server.max_streams_per_client:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"client={hello.client!r} already has {self.config.server.max_streams_per_client} "
                    "streams open (server.max_streams_per_client)",
                    field="symbol",
                    request_id=hello.id,
                )
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
            stream.point, stream.digits, stream.utc_offset = hello.point, hello.digits, hello.utc_offset

        # One socket per stream: a reconnect moves the stream to the new socket identity.
        for route in [route for route, routed in self._routes.items() if routed == key]:
            del self._routes[route]
        self._routes[(identity, hello.symbol, hello.timeframe)] = key

        bundle = self.registry.get(hello.symbol, hello.timeframe)
        state, message = self._stream_state(stream, bundle)
        return protocol.welcome_reply(
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

    def _stream_state(self, stream: Stream, bundle) -> tuple[str, str]:
        """The stream's state name and a human-readable message, as sent in welcome and status.

        States: "ready" (signals flow), "warming_up" (too few bars for a window or for initial
        training), "queued" and "training" (initial training pending), "waiting_for_history"
        (training needs more bars or failed and waits to retry), "no_model" (training is off).
        """
        if bundle is not None:
            needed = stream.bars_needed()
            if needed:
                return "warming_up", f"{needed} more bars needed for the first input window"
            return "ready", f"serving model_version={bundle.version}"
        key = stream.key
        state = self.trainer.state(key.symbol, key.timeframe) if self.trainer else None
        if state is not None:
            return state.state, state.message
        if self.trainer is None:
            return "no_model", "no model bundle for this symbol and timeframe, and training is off"
        needed = self._bars_needed(stream, has_model=False)
        return "warming_up", f"collecting history: initial training starts after {needed} more bars"
    def _bars_needed(self, stream: Stream, has_model: bool) -> int:
        if has_model:
            return stream.bars_needed()
        state = self.trainer.state(stream.key.symbol, stream.key.timeframe) if self.trainer else None
        target = bars_to_train(self.config)
        if state is not None and state.state == "waiting_for_history":
            target = state.retry_at_bars
        return max(stream.bars_needed(), target - stream.bars_seen)

    def _bars(self, identity: bytes, request: BarsRequest, received_at: float) -> dict:
        key = self._routes.get((identity, request.symbol, request.timeframe))
        if key is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_STREAM,
                f"no stream symbol={request.symbol!r} timeframe={request.timeframe!r} on this connection; "
                "send `hello` for it first",
                field="symbol",
                request_id=request.id,
            )
        stream = self.streams[key]
        try:
            result = stream.append(request.bars)
        except BarsRejected as error:
            code = ErrorCode.BARS_OUT_OF_ORDER if error.out_of_order else ErrorCode.INVALID_BAR
            raise ProtocolError(code, str(error), field=error.column, request_id=request.id) from None
        logger.debug(
            "accepted bars client=%s symbol=%s timeframe=%s bar_time=%s accepted=%s duplicates=%s",
            key.client,
            key.symbol,
            key.timeframe,
            stream.last_time,
            result.accepted,
            result.duplicates,
        )
        return self._reply_for_stream(stream, request.id, result, received_at)

    def _reply_for_stream(self, stream: Stream, request_id: int, result: AppendResult, received_at: float) -> dict:
        key = stream.key
        bundle = self.registry.get(key.symbol, key.timeframe)
        common = {
            "symbol": key.symbol,
            "timeframe": key.timeframe,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
        }
        if bundle is not None:
            signal = predict_latest(stream, bundle, self.config.signal)
            if signal is not None:
                return protocol.signal_reply(
                    request_id,
                    bar_time=signal.bar_time,
                    direction=signal.direction,
                    score=signal.score,
                    distance=signal.distance,
                    model_version=signal.model_version,
                    latency_us=int((time.perf_counter() - received_at) * 1e6),
                    **common,
                )
        elif self.trainer is not None and self._bars_needed(stream, has_model=False) == 0:
            self.trainer.request(key.symbol, key.timeframe, stream.bars, stream.point)
        state, message = self._stream_state(stream, bundle)
        return protocol.status_reply(
            request_id,
            state=state,
            message=message,
            bars_held=len(stream.bars),
            bars_needed=self._bars_needed(stream, bundle is not None),
            last_bar_time=stream.last_time,
            model_version=None if bundle is None else bundle.version,
            **common,
        )
