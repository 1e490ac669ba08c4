"""Reference client: speaks the protocol as the MQL5 Expert Advisor does, and plays bar files.

`SigBridgeClient` uses one DEALER socket with request ids. When a reply does not come in time it
closes the socket and opens a new one, so a late reply can never be taken for the next one.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import itertools
import logging
import statistics
import time
from typing import Any, TextIO

import msgpack
import zmq

from sigbridge.bars import Bars
from sigbridge.daemon import protocol

logger = logging.getLogger(__name__)


class ClientError(Exception):
    """Raised for an `error` reply; carries the reply map."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('name')} ({reply.get('code')}): {reply.get('message')}")
        self.reply = reply


class ReplyTimeout(TimeoutError):
    """Raised when the daemon does not reply in time."""


class SigBridgeClient:
    """A DEALER client of the daemon.

    Args:
        endpoint: the daemon's ZeroMQ endpoint.
        timeout: seconds to wait for each reply.
        context: the ZeroMQ context; the shared instance when None.
        curve: for a daemon with CURVE on, (server public key, client public key, client secret
            key), each 40 Z85 characters.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        context: zmq.Context | None = None,
        curve: tuple[bytes, bytes, bytes] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.curve = curve
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._socket: zmq.Socket | None = None

    def __enter__(self) -> SigBridgeClient:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = self._context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            if self.endpoint.startswith("tcp://["):
                # ZeroMQ connects to an IPv6 address only with the IPV6 option on.
                self._socket.setsockopt(zmq.IPV6, 1)
            if self.curve is not None:
                server_key, public_key, secret_key = self.curve
                self._socket.curve_serverkey = server_key
                self._socket.curve_publickey = public_key
                self._socket.curve_secretkey = secret_key
            self._socket.connect(self.endpoint)
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def send_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are, for tests of malformed input."""
        self._connect().send_multipart(frames)

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """Receive and decode the next reply, whatever its id."""
        socket = self._connect()
        if not socket.poll(int((self.timeout if timeout is None else timeout) * 1000)):
            self.close()
            raise ReplyTimeout(f"no reply from {self.endpoint} within {self.timeout} s; is `sigbridge serve` running?")
        return msgpack.unpackb(socket.recv(), raw=False)

    def request(self, message: dict[str, Any], *, raise_errors: bool = True) -> dict[str, Any]:
        """Send one request with a fresh id and return the reply with the same id."""
        request_id = next(self._ids)
        message = {"v": protocol.PROTOCOL_VERSION, "id": request_id, **message}
        self._connect().send(protocol.encode(message))
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise ReplyTimeout(f"no reply to request id={request_id} from {self.endpoint} within {self.timeout} s")
            reply = self.receive(remaining)
            # An error reply without an id is the reply to a request the server could not read.
            if reply.get("id") == request_id or (reply.get("type") == "error" and reply.get("id") is None):
                break
            logger.debug("discarding a stale reply id=%s", reply.get("id"))
        if raise_errors and reply.get("type") == "error":
            raise ClientError(reply)
        return reply

    def ping(self) -> dict[str, Any]:
        return self.request({"type": "ping"})

    def hello(
        self, *, client: str, symbol: str, timeframe: str, digits: int, point: float, utc_offset: int = 0
    ) -> dict[str, Any]:
        return self.request(
            {
                "type": "hello",
                "client": client,
                "symbol": symbol,
                "timeframe": timeframe,
                "digits": digits,
                "point": point,
                "utc_offset": utc_offset,
            }
        )

    def send_bars(self, symbol: str, timeframe: str, bars: Bars) -> dict[str, Any]:
        return self.request(bars_message(symbol, timeframe, bars))


def bars_message(symbol: str, timeframe: str, bars: Bars) -> dict[str, Any]:
    """The `bars` request body (without `v` and `id`) for closed bars, oldest first."""
    return {
        "type": "bars",
        "symbol": symbol,
        "timeframe": timeframe,
        "time": bars.time.tolist(),
        "open": bars.open.tolist(),
        "high": bars.high.tolist(),
        "low": bars.low.tolist(),
        "close": bars.close.tolist(),
        "tick_volume": bars.tick_volume.tolist(),
        "spread": bars.spread.tolist(),
    }


SIGNAL_COLUMNS = ("bar_time", "time_text", "close", "type", "state", "direction", "score", "distance", "model_version", "latency_us")


@dataclasses.dataclass
class FeedSummary:
    backfill: int = 0
    streamed: int = 0
    signals: int = 0
    statuses: int = 0
    round_trip_ms: list[float] = dataclasses.field(default_factory=list)


def _time_text(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def wait_for_model(client: SigBridgeClient, hello: dict[str, Any], timeout: float, progress: TextIO | None) -> dict:
    """Repeat `hello` once a second until the daemon has a model for the stream, or time out."""
    deadline = time.monotonic() + timeout
    welcome = client.hello(**hello)
    shown = None
    while welcome.get("model_version") is None:
        if time.monotonic() >= deadline:
            raise ReplyTimeout(
                f"the daemon had no model for {hello['symbol']} {hello['timeframe']} after {timeout:.0f} s; "
                f"last state: {welcome.get('state')}: {welcome.get('message')}"
            )
        if progress is not None and welcome.get("message") != shown:
            shown = welcome.get("message")
            print(f"daemon: {welcome.get('state')}: {shown}", file=progress, flush=True)
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        welcome = client.hello(**hello)
    return welcome


def feed(
    client: SigBridgeClient,
    bars: Bars,
    *,
    hello: dict[str, Any],
    backfill: int,
    wait_model: float,
    out: TextIO,
    progress: TextIO | None = None,
) -> FeedSummary:
    """Send `backfill` bars at once, then the rest one closed bar at a time, writing each reply as CSV.

    Bars the daemon already holds for this client (after a restart of the feed) are skipped.
    """
    summary = FeedSummary()
    welcome = client.hello(**hello)
    if welcome.get("last_bar_time") is not None:
        bars = bars[int((bars.time <= welcome["last_bar_time"]).sum()) :]
    chunk = int(welcome.get("max_bars_per_message") or 10_000)
    backfill = min(backfill, len(bars))
    symbol, timeframe = hello["symbol"], hello["timeframe"]
    for start in range(0, backfill, chunk):
        reply = client.send_bars(symbol, timeframe, bars[start : min(start + chunk, backfill)])
        summary.backfill += reply.get("accepted", 0)
    if progress is not None:
        print(f"sent a backfill of {summary.backfill} bars", file=progress, flush=True)
    if wait_model > 0:
        wait_for_model(client, hello, wait_model, progress)

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SIGNAL_COLUMNS)
    for index in range(backfill, len(bars)):
        started = time.perf_counter()
        reply = client.send_bars(symbol, timeframe, bars[index : index + 1])
        summary.round_trip_ms.append((time.perf_counter() - started) * 1000)
        summary.streamed += 1
        kind = reply.get("type")
        summary.signals += kind == "signal"
        summary.statuses += kind == "status"
        writer.writerow(
            [
                int(bars.time[index]),
                _time_text(int(bars.time[index])),
                f"{bars.close[index]:.{hello['digits']}f}",
                kind,
                reply.get("state", ""),
                reply.get("direction", ""),
                f"{reply['score']:.4f}" if "score" in reply else "",
                f"{reply['distance']:.{hello['digits']}f}" if "distance" in reply else "",
                reply.get("model_version") if reply.get("model_version") is not None else "",
                reply.get("latency_us", ""),
            ]
        )
    out.flush()
    return summary


def describe(summary: FeedSummary) -> str:
    text = (
        f"backfill {summary.backfill} bars, streamed {summary.streamed} bars: "
        f"{summary.signals} signals, {summary.statuses} status replies"
    )
    if summary.round_trip_ms:
        times = sorted(summary.round_trip_ms)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        text += f"; round trip median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms"
    return text
