"""Load generation: DEALER clients that play closed bars to a daemon and time each reply.

Every client is one stream (its own client name, the same symbol and model) with one request in
flight, as an Expert Advisor on one chart waits for each signal before the next bar. All clients
run in one thread of the benchmark process around a `zmq.Poller`. A request is encoded before
its timer starts, so the figures are the daemon and transport time without the encoding.
"""

from __future__ import annotations

import time

import msgpack
import numpy as np
import zmq

from sigbridge.bars import Bars
from sigbridge.client import bars_message
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode

SYMBOL = "EURUSD"
TIMEFRAME = "H1"
REPLY_TIMEOUT_MS = 60_000


class ReplyError(RuntimeError):
    """Raised when the daemon replies with something other than the expected signal."""


class _Client:
    def __init__(self, context: zmq.Context, endpoint: str, name: str, bars: Bars) -> None:
        self.name = name
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.columns = {
            "time": bars.time.tolist(),
            "open": bars.open.tolist(),
            "high": bars.high.tolist(),
            "low": bars.low.tolist(),
            "close": bars.close.tolist(),
            "tick_volume": bars.tick_volume.tolist(),
            "spread": bars.spread.tolist(),
        }
        self.cursor = 0
        self.sent_at = 0.0
        self.expected_id = 0

    def bar_payload(self) -> bytes:
        """Encode the `bars` request for the client's next bar and move the cursor on."""
        index = self.cursor
        if index >= len(self.columns["time"]):
            raise RuntimeError(f"client {self.name} ran out of bars after {index}; give it a longer slice")
        self.cursor += 1
        self.expected_id = index
        message = {"v": PROTOCOL_VERSION, "id": index, "type": "bars", "symbol": SYMBOL, "timeframe": TIMEFRAME}
        for name, values in self.columns.items():
            message[name] = [values[index]]
        return encode(message)

    def check_reply(self, payload: bytes) -> dict:
        reply = msgpack.unpackb(payload, raw=False)
        if reply.get("type") != "signal" or reply.get("id") != self.expected_id:
            raise ReplyError(f"client {self.name} expected the signal for id={self.expected_id}, received {reply}")
        return reply


class ClientPool:
    """Clients that each play their own slice of bars to one daemon.

    Args:
        endpoint: the daemon's endpoint.
        slices: one bar series per client, oldest first; the first `backfill` bars of each go in
            one message when the pool opens.
        point: the symbol's point, sent in `hello`.
    """

    def __init__(self, endpoint: str, slices: list[Bars], *, point: float, digits: int) -> None:
        self._context = zmq.Context.instance()
        self.endpoint = endpoint
        self.point = point
        self.digits = digits
        self.clients = [_Client(self._context, endpoint, f"bench-{number}", bars) for number, bars in enumerate(slices)]
        self._slices = slices
        self.signals = 0

    def close(self) -> None:
        for client in self.clients:
            client.socket.close()

    def open(self, backfill: int, numbers: range) -> None:
        """Send hello and a backfill of `backfill` bars in one message for the clients `numbers`."""
        for number in numbers:
            client, bars = self.clients[number], self._slices[number]
            hello = {
                "type": "hello",
                "client": client.name,
                "symbol": SYMBOL,
                "timeframe": TIMEFRAME,
                "digits": self.digits,
                "point": self.point,
                "utc_offset": 0,
            }
            self._request(client, hello)
            reply = self._request(client, bars_message(SYMBOL, TIMEFRAME, bars[:backfill]))
            if reply.get("type") != "signal":
                raise ReplyError(f"client {client.name} expected a signal after its backfill, received {reply}")
            client.cursor = backfill

    def _request(self, client: _Client, body: dict) -> dict:
        client.socket.send(encode({"v": PROTOCOL_VERSION, "id": 0, **body}))
        if not client.socket.poll(REPLY_TIMEOUT_MS):
            raise ReplyError(f"no reply to {body['type']} for client {client.name} within {REPLY_TIMEOUT_MS} ms")
        return msgpack.unpackb(client.socket.recv(), raw=False)

    def sequential_latency(self, count: int) -> np.ndarray:
        """Time the round trips, in seconds, of `count` bars sent by client 0 alone, one after the other."""
        client = self.clients[0]
        samples = np.empty(count)
        for index in range(count):
            payload = client.bar_payload()
            started = time.perf_counter()
            client.socket.send(payload)
            if not client.socket.poll(REPLY_TIMEOUT_MS):
                raise ReplyError(f"no signal for client {client.name} within {REPLY_TIMEOUT_MS} ms")
            reply = client.socket.recv()
            samples[index] = time.perf_counter() - started
            client.check_reply(reply)
        self.signals += count
        return samples

    def closed_loop(self, clients: int, signals: int) -> tuple[float, np.ndarray]:
        """Run the first `clients` clients concurrently until `signals` replies came back.

        Returns:
            Signals per second over the run, and every round trip in seconds.
        """
        active = self.clients[:clients]
        poller = zmq.Poller()
        by_socket = {}
        for client in active:
            poller.register(client.socket, zmq.POLLIN)
            by_socket[client.socket] = client
        samples: list[float] = []
        started = time.perf_counter()
        for client in active:
            payload = client.bar_payload()
            client.sent_at = time.perf_counter()
            client.socket.send(payload)
        in_flight = len(active)
        while in_flight:
            events = poller.poll(REPLY_TIMEOUT_MS)
            if not events:
                raise ReplyError(f"no reply within {REPLY_TIMEOUT_MS} ms with {in_flight} requests in flight")
            for socket, _event in events:
                client = by_socket[socket]
                reply = socket.recv()
                samples.append(time.perf_counter() - client.sent_at)
                client.check_reply(reply)
                in_flight -= 1
                if len(samples) + in_flight < signals:
                    payload = client.bar_payload()
                    client.sent_at = time.perf_counter()
                    socket.send(payload)
                    in_flight += 1
        elapsed = time.perf_counter() - started
        self.signals += len(samples)
        return len(samples) / elapsed, np.array(samples)
