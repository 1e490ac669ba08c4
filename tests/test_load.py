"""Load: many clients stream bars for many streams at once, pipelined, against one daemon.

20 clients with 5 streams each send a backfill and then one closed bar per request as fast as
the replies allow, with up to 32 requests in flight per client. Every reply must come back with
the id, stream and bar time of its request, and every stream must end with exactly its own bars.
"""

import sqlite3
import threading

import msgpack
import numpy as np
import zmq

from sigbridge.bars import COLUMNS, Bars
from sigbridge.client import bars_message
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode

from conftest import start_daemon

CLIENTS = 20
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD")  # only EURUSD H1 has a model
BACKFILL = 300
STREAMED = 150
MAX_BARS = 400
IN_FLIGHT = 32
WEEK = 7 * 86_400


def stream_bars(eurusd, number: int) -> Bars:
    """Bars of stream `number`: the bundled bars moved 5 weeks back per stream, prices scaled.

    Streams then cover disjoint time ranges and distinct prices, so a bar that reached the wrong
    stream would show in its bar times and stored prices.
    """
    source = eurusd.bars[: BACKFILL + STREAMED]
    scale = 1.0 + number / 1000.0
    columns = {name: np.array(getattr(source, name)) for name in COLUMNS}
    columns["time"] = columns["time"] - number * 5 * WEEK
    for name in ("open", "high", "low", "close"):
        columns[name] = columns[name] * scale
    return Bars(**columns)


class LoadClient(threading.Thread):
    def __init__(self, endpoint: str, number: int, eurusd) -> None:
        super().__init__(name=f"load-client-{number}", daemon=True)
        self.endpoint = endpoint
        self.name_sent = f"load-{number}"
        self.streams = {symbol: stream_bars(eurusd, number * len(SYMBOLS) + index) for index, symbol in enumerate(SYMBOLS)}
        self.failures: list[str] = []
        self.replies = 0
        self.sent = 0
        self.final: dict[str, dict] = {}

    def run(self) -> None:
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        try:
            self._run(socket)
        except Exception as error:  # reported by the test
            self.failures.append(f"{type(error).__name__}: {error}")
        finally:
            socket.close()

    def _request(self, socket, request_id: int, body: dict) -> dict:
        socket.send(encode({"v": PROTOCOL_VERSION, "id": request_id, **body}))
        if not socket.poll(60_000):
            raise TimeoutError(f"no reply to id={request_id}")
        return msgpack.unpackb(socket.recv(), raw=False)

    def _hello(self, socket, request_id: int, symbol: str) -> dict:
        body = {"type": "hello", "client": self.name_sent, "symbol": symbol, "timeframe": "H1", "digits": 5, "point": 1e-05, "utc_offset": 0}
        reply = self._request(socket, request_id, body)
        if reply.get("type") != "welcome" or reply.get("symbol") != symbol:
            raise AssertionError(f"hello {symbol}: {reply}")
        return reply

    def _run(self, socket) -> None:
        for index, symbol in enumerate(SYMBOLS):
            self._hello(socket, index + 1, symbol)

        # Requests in round-robin over the streams: the backfill first, then one bar each.
        plan = []
        for symbol, bars in self.streams.items():
            plan.append((symbol, 0, BACKFILL))
        for offset in range(BACKFILL, BACKFILL + STREAMED):
            for symbol in SYMBOLS:
                plan.append((symbol, offset, offset + 1))
        outstanding: dict[int, tuple[str, int, int]] = {}
        next_id = 1000
        position = 0
        while position < len(plan) or outstanding:
            while position < len(plan) and len(outstanding) < IN_FLIGHT:
                symbol, start, stop = plan[position]
                body = bars_message(symbol, "H1", self.streams[symbol][start:stop])
                socket.send(encode({"v": PROTOCOL_VERSION, "id": next_id, **body}))
                outstanding[next_id] = (symbol, start, stop)
                next_id += 1
                position += 1
                self.sent += 1
            if not socket.poll(60_000):
                raise TimeoutError(f"{len(outstanding)} replies missing")
            reply = msgpack.unpackb(socket.recv(), raw=False)
            self.replies += 1
            self._check(reply, outstanding.pop(reply.get("id"), None))

        for index, symbol in enumerate(SYMBOLS):
            self.final[symbol] = self._hello(socket, 90 + index, symbol)

    def _check(self, reply: dict, request) -> None:
        if request is None:
            self.failures.append(f"reply to an unknown or repeated id: {reply}")
            return
        symbol, start, stop = request
        expected_time = int(self.streams[symbol].time[stop - 1])
        problems = []
        if reply.get("type") not in ("signal", "status"):
            problems.append("type")
        if reply.get("symbol") != symbol or reply.get("timeframe") != "H1":
            problems.append("stream")
        if reply.get("accepted") != stop - start or reply.get("duplicates") != 0:
            problems.append("counts")
        bar_time = reply.get("bar_time") if reply.get("type") == "signal" else reply.get("last_bar_time")
        if bar_time != expected_time:
            problems.append("bar time")
        if reply.get("type") == "signal" and symbol != "EURUSD":
            problems.append("signal without a model")
        if problems:
            self.failures.append(f"{', '.join(problems)} wrong for {symbol} bars {start}:{stop}: {reply}")


def test_load_many_clients_and_streams(daemon_state, eurusd):
    config = daemon_state.replace("server", max_bars_per_stream=MAX_BARS).replace("storage", synchronous="normal")
    running = start_daemon(config, train=False)
    try:
        clients = [LoadClient(running.endpoint, number, eurusd) for number in range(CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(600)
    finally:
        running.stop()

    requests_per_client = len(SYMBOLS) * (1 + STREAMED)
    for client in clients:
        assert not client.is_alive(), f"{client.name} still running"
        assert client.failures == [], f"{client.name}: {client.failures[:3]}"
        assert client.sent == requests_per_client
        assert client.replies == requests_per_client
        for symbol, welcome in client.final.items():
            # The buffer is capped by server.max_bars_per_stream; the database keeps every bar.
            assert welcome["bars_held"] == MAX_BARS
            assert welcome["last_bar_time"] == int(client.streams[symbol].time[-1])

    with sqlite3.connect(config.paths.bars_database) as connection:
        for client in clients:
            for symbol, bars in client.streams.items():
                rows = connection.execute(
                    "SELECT bars.time, bars.close FROM bars JOIN streams ON streams.id = bars.stream_id "
                    "WHERE streams.client = ? AND streams.symbol = ? ORDER BY bars.time",
                    (client.name_sent, symbol),
                ).fetchall()
                assert [row[0] for row in rows] == bars.time.tolist()
                assert [row[1] for row in rows] == bars.close.tolist()
