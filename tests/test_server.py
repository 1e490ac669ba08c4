"""The daemon over real ZeroMQ sockets on loopback, with the real trained model."""

import math
import time

import msgpack
import numpy as np
import pytest
import zmq

from sigbridge.bars import Bars
from sigbridge.client import ClientError, SigBridgeClient, bars_message
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode

from conftest import TRAIN_BARS, start_daemon


def hello_for(eurusd, client="test-client", symbol="EURUSD"):
    return {"client": client, "symbol": symbol, "timeframe": "H1", "digits": eurusd.digits, "point": eurusd.point}


def error_code(reply):
    assert reply["type"] == "error", reply
    return ErrorCode(reply["code"])


def test_serve_backfill_then_signal(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        welcome = client.hello(**hello_for(eurusd))
        assert welcome["model_version"] == 1
        assert welcome["state"] == "warming_up"
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[:TRAIN_BARS])
        assert reply["type"] == "signal"
        assert reply["bar_time"] == int(eurusd.bars.time[TRAIN_BARS - 1])
        assert reply["accepted"] == TRAIN_BARS
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[TRAIN_BARS : TRAIN_BARS + 1])
        assert reply["type"] == "signal"
        assert reply["bar_time"] == int(eurusd.bars.time[TRAIN_BARS])
        assert reply["direction"] in (-1, 0, 1)
        assert -1.0 < reply["score"] < 1.0
        assert math.isfinite(reply["distance"])
        assert reply["model_version"] == 1
        assert reply["latency_us"] > 0


def test_serve_status_while_warming_up(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[:50])
        assert reply["type"] == "status"
        assert reply["state"] == "warming_up"
        assert reply["bars_needed"] == 196 - 50
        assert reply["bars_held"] == 50
        assert reply["model_version"] == 1


def test_serve_ping(daemon):
    with SigBridgeClient(daemon.endpoint) as client:
        reply = client.ping()
    assert reply["type"] == "pong"
    assert abs(reply["time"] - time.time()) < 60


def test_serve_request_ids_correlate(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        socket = client._connect()
        for request_id in (7, 8, 9):
            socket.send(encode({"v": PROTOCOL_VERSION, "type": "ping", "id": request_id}))
        replies = [client.receive() for _ in range(3)]
    assert [reply["id"] for reply in replies] == [7, 8, 9]


def test_serve_resend_counts_duplicates(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        client.send_bars("EURUSD", "H1", eurusd.bars[:300])
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[290:301])
    assert reply["duplicates"] == 10
    assert reply["accepted"] == 1


def test_serve_reconnect_resumes_stream(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        client.send_bars("EURUSD", "H1", eurusd.bars[:300])
    with SigBridgeClient(daemon.endpoint) as client:
        welcome = client.hello(**hello_for(eurusd))
        assert welcome["bars_held"] == 300
        assert welcome["last_bar_time"] == int(eurusd.bars.time[299])
        reply = client.send_bars("EURUSD", "H1", eurusd.bars[300:301])
    assert reply["type"] == "signal"


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"\xc1\xff not msgpack", ErrorCode.MALFORMED),
        (msgpack.packb([1, 2, 3]), ErrorCode.MALFORMED),
        (encode({"v": 99, "type": "ping", "id": 1}), ErrorCode.UNSUPPORTED_VERSION),
        (encode({"v": PROTOCOL_VERSION, "type": "subscribe", "id": 1}), ErrorCode.UNKNOWN_TYPE),
        (encode({"v": PROTOCOL_VERSION, "type": "ping", "id": "one"}), ErrorCode.INVALID_FIELD),
        (encode({"v": PROTOCOL_VERSION, "type": "hello", "id": 1, "client": "x"}), ErrorCode.INVALID_FIELD),
    ],
)
def test_serve_rejects_bad_frame(daemon, payload, code):
    with SigBridgeClient(daemon.endpoint) as client:
        client.send_raw([payload])
        reply = client.receive()
        assert error_code(reply) == code
        assert reply["message"]
        # The daemon keeps serving the same connection.
        assert client.ping()["type"] == "pong"


def test_serve_rejects_bars_before_hello(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        reply = client.request(bars_message("EURUSD", "H1", eurusd.bars[:5]), raise_errors=False)
    assert error_code(reply) == ErrorCode.UNKNOWN_STREAM


def test_serve_rejects_bars_out_of_order(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        client.send_bars("EURUSD", "H1", eurusd.bars[100:200])
        reply = client.request(bars_message("EURUSD", "H1", eurusd.bars[50:60]), raise_errors=False)
        assert error_code(reply) == ErrorCode.BARS_OUT_OF_ORDER
        assert reply["field"] == "time"
        # Nothing was half-applied: the stream still ends at bar 199.
        welcome = client.hello(**hello_for(eurusd))
    assert welcome["last_bar_time"] == int(eurusd.bars.time[199])
    assert welcome["bars_held"] == 100


def test_serve_rejects_invalid_bar(daemon, eurusd):
    bars = eurusd.bars[:10]
    high = bars.high.copy()
    high[4] = bars.low[4] - 0.001
    broken = Bars.from_columns(bars.time, bars.open, high, bars.low, bars.close, bars.tick_volume, bars.spread)
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd))
        reply = client.request(bars_message("EURUSD", "H1", broken), raise_errors=False)
        assert error_code(reply) == ErrorCode.INVALID_BAR
        assert "bar 4" in reply["message"]
        welcome = client.hello(**hello_for(eurusd))
    assert welcome["bars_held"] == 0


def test_serve_rejects_too_many_streams(daemon_state, eurusd):
    running = start_daemon(daemon_state.replace("server", max_streams_per_client=2))
    try:
        with SigBridgeClient(running.endpoint) as client:
            client.hello(**hello_for(eurusd, symbol="EURUSD"))
            client.hello(**hello_for(eurusd, symbol="GBPUSD"))
            with pytest.raises(ClientError) as excinfo:
                client.hello(**hello_for(eurusd, symbol="USDCHF"))
    finally:
        running.stop()
    assert excinfo.value.reply["code"] == ErrorCode.TOO_MANY_STREAMS


def test_serve_rejects_oversized_message(daemon_state, eurusd):
    running = start_daemon(daemon_state.replace("server", max_bars_per_message=100))
    try:
        with SigBridgeClient(running.endpoint) as client:
            client.hello(**hello_for(eurusd))
            reply = client.request(bars_message("EURUSD", "H1", eurusd.bars[:500]), raise_errors=False)
            assert error_code(reply) == ErrorCode.MESSAGE_TOO_LARGE
            assert client.send_bars("EURUSD", "H1", eurusd.bars[:100])["accepted"] == 100
    finally:
        running.stop()


def test_serve_req_socket_envelope(daemon):
    context = zmq.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(daemon.endpoint)
    try:
        socket.send(encode({"v": PROTOCOL_VERSION, "type": "ping", "id": 5}))
        assert socket.poll(5000)
        reply = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
    assert reply["type"] == "pong"
    assert reply["id"] == 5


def test_serve_streams_stay_apart(daemon, eurusd):
    """Two clients on the same symbol keep separate bar buffers."""
    with SigBridgeClient(daemon.endpoint) as first, SigBridgeClient(daemon.endpoint) as second:
        first.hello(**hello_for(eurusd, client="first"))
        second.hello(**hello_for(eurusd, client="second"))
        first.send_bars("EURUSD", "H1", eurusd.bars[:400])
        second.send_bars("EURUSD", "H1", eurusd.bars[:250])
        a = first.send_bars("EURUSD", "H1", eurusd.bars[400:401])
        b = second.send_bars("EURUSD", "H1", eurusd.bars[250:251])
    assert a["bar_time"] == int(eurusd.bars.time[400])
    assert b["bar_time"] == int(eurusd.bars.time[250])


def test_serve_trains_initial_model_without_blocking(daemon, eurusd):
    """A new stream without a bundle trains from its backfill while other streams get signals."""
    with SigBridgeClient(daemon.endpoint) as trainee, SigBridgeClient(daemon.endpoint) as other:
        trainee.hello(**hello_for(eurusd, client="trainee", symbol="NEWSYM"))
        reply = trainee.send_bars("NEWSYM", "H1", eurusd.bars[:1500])
        assert reply["type"] == "status"
        assert reply["state"] in ("queued", "training")
        assert reply["model_version"] is None

        other.hello(**hello_for(eurusd, client="other"))
        other.send_bars("EURUSD", "H1", eurusd.bars[:300])
        served_during_training = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            welcome = trainee.hello(**hello_for(eurusd, client="trainee", symbol="NEWSYM"))
            if welcome["model_version"] is not None:
                break
            index = 300 + served_during_training
            reply = other.send_bars("EURUSD", "H1", eurusd.bars[index : index + 1])
            assert reply["type"] == "signal"
            served_during_training += 1
            # Paced like a live feed, so the bundled bars last until the worker has trained.
            time.sleep(0.02)
        assert welcome["model_version"] == 1
        assert served_during_training > 0
        reply = trainee.send_bars("NEWSYM", "H1", eurusd.bars[1500:1501])
    assert reply["type"] == "signal"
    assert reply["model_version"] == 1


def test_serve_training_waits_for_history(daemon, eurusd):
    with SigBridgeClient(daemon.endpoint) as client:
        client.hello(**hello_for(eurusd, symbol="SHORT"))
        reply = client.send_bars("SHORT", "H1", eurusd.bars[:300])
    assert reply["type"] == "status"
    assert reply["state"] == "warming_up"
    assert reply["bars_needed"] > 0
    assert "initial training starts after" in reply["message"]
