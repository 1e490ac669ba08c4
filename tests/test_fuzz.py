"""Property-based fuzzing: random and mutated requests each get one well-formed reply, and a valid
stream served alongside them is unaffected."""

import math

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigbridge.client import SigBridgeClient, bars_message
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode
from sigbridge.daemon.sessions import Stream, StreamKey
from sigbridge.daemon.storage import BarStore
from sigbridge.daemon.trainer import ModelRegistry

from conftest import start_daemon

REPLY_TYPES = {"error", "pong", "welcome", "status", "signal"}
FUZZ_IDENTITY = b"\x00fuzz"
CONTROL_IDENTITY = b"\x00control"
CONTROL_CLIENT = "control-stream-4f1c9a"
# Bars of the control stream sent before fuzzing; one more follows each fuzzed request.
CONTROL_BACKFILL = 250

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def base_messages(eurusd):
    """Valid requests of each type, for the fuzz client."""
    hello = {
        "v": PROTOCOL_VERSION, "id": 1, "type": "hello", "client": "fuzz", "symbol": "EURUSD",
        "timeframe": "H1", "digits": 5, "point": 1e-05, "utc_offset": 0,
    }
    bars = {"v": PROTOCOL_VERSION, "id": 2, **bars_message("EURUSD", "H1", eurusd.bars[:5])}
    return [hello, bars, {"v": PROTOCOL_VERSION, "id": 3, "type": "ping"}]


@st.composite
def mutated_message(draw, bases):
    message = dict(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(st.sampled_from(["drop", "add", "replace", "column"]))
        keys = sorted(message)
        if action == "drop" and keys:
            del message[draw(st.sampled_from(keys))]
        elif action == "add":
            message[draw(st.text(max_size=10))] = draw(values)
        elif action == "replace" and keys:
            message[draw(st.sampled_from(keys))] = draw(values)
        elif action == "column":
            columns = [key for key in keys if isinstance(message[key], list) and message[key]]
            if columns:
                name = draw(st.sampled_from(columns))
                column = list(message[name])
                column[draw(st.integers(min_value=0, max_value=len(column) - 1))] = draw(scalars)
                message[name] = column
    return message


def encoded(message) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def holds_bytes(value) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, dict):
        return any(holds_bytes(key) or holds_bytes(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_bytes(item) for item in value)
    return False


@st.composite
def payloads(draw, bases):
    """(payload, the request id the reply must carry, or None when any id is fine)."""
    kind = draw(st.sampled_from(["random bytes", "random value", "mutated map", "mutated bytes"]))
    if kind == "random bytes":
        return draw(st.binary(max_size=200)), None
    if kind == "random value":
        return encoded(draw(values)), None
    message = draw(mutated_message(bases))
    payload = encoded(message)
    if kind == "mutated bytes" and payload:
        data = bytearray(payload)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            position = draw(st.integers(min_value=0, max_value=len(data) - 1))
            data[position] = draw(st.integers(min_value=0, max_value=255))
        if draw(st.booleans()):
            data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
        return bytes(data), None
    request_id = message.get("id")
    # The server decodes no msgpack bin value at all, so a map holding one has no readable id.
    readable = (
        not holds_bytes(message)
        and message.get("v") == PROTOCOL_VERSION
        and isinstance(request_id, int)
        and not isinstance(request_id, bool)
        and 0 <= request_id < 2**63
        and all(isinstance(key, str) for key in message)
    )
    return payload, request_id if readable else None


def check_reply(reply, request_id) -> None:
    """A reply the client can rely on: encodable, typed, correlated, with a known error code."""
    decoded = msgpack.unpackb(encode(reply), raw=False)
    assert decoded["v"] == PROTOCOL_VERSION
    assert decoded["type"] in REPLY_TYPES
    assert "id" in decoded
    if request_id is not None:
        assert decoded["id"] == request_id
    if decoded["type"] == "error":
        assert decoded["code"] in {int(code) for code in ErrorCode}
        assert decoded["name"] == ErrorCode(decoded["code"]).name
        assert isinstance(decoded["message"], str) and decoded["message"]
        assert decoded["field"] is None or isinstance(decoded["field"], str)
        assert decoded["code"] != ErrorCode.INTERNAL_ERROR, decoded["message"]
    for name in ("score", "distance"):
        if name in decoded:
            assert math.isfinite(decoded[name])


class ControlStream:
    """A valid stream fed one bar after every fuzzed request; it must never notice the fuzzing."""

    def __init__(self, eurusd, send):
        self.bars = eurusd.bars
        self.send = send
        self.sent = 0
        hello = {
            "v": PROTOCOL_VERSION, "id": 1, "type": "hello", "client": CONTROL_CLIENT, "symbol": "EURUSD",
            "timeframe": "H1", "digits": 5, "point": 1e-05, "utc_offset": 0,
        }
        assert send(encode(hello))["type"] == "welcome"
        self.next_bars(CONTROL_BACKFILL)

    def next_bars(self, count=1):
        body = bars_message("EURUSD", "H1", self.bars[self.sent : self.sent + count])
        reply = self.send(encode({"v": PROTOCOL_VERSION, "id": 10_000 + self.sent, **body}))
        self.sent += count
        assert reply["type"] in ("signal", "status"), reply
        assert reply["id"] == 10_000 + self.sent - count
        assert reply["accepted"] == count
        assert reply["duplicates"] == 0
        if reply["type"] == "signal":
            assert reply["bar_time"] == int(self.bars.time[self.sent - 1])
        return reply


def test_fuzz_dispatcher(tmp_path, daemon_state, eurusd):
    config = daemon_state.replace("server", max_streams_per_client=8)
    store = BarStore(tmp_path / "bars.sqlite3", synchronous="normal")
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), None, store=store)
    control = ControlStream(eurusd, lambda payload: dispatcher.handle(CONTROL_IDENTITY, payload))

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=payloads(base_messages(eurusd)))
    def fuzz(case):
        payload, request_id = case
        check_reply(dispatcher.handle(FUZZ_IDENTITY, payload), request_id)
        control.next_bars()

    try:
        fuzz()
        # The control stream contains exactly its own bars, with the features of an undisturbed stream.
        stream = dispatcher.streams[StreamKey(CONTROL_CLIENT, "EURUSD", "H1")]
        reference = Stream(
            stream.key, point=1e-05, digits=5, utc_offset=0, features=config.features, max_bars=config.server.max_bars_per_stream
        )
        reference.append(eurusd.bars[: control.sent])
        assert stream.bars_seen == control.sent
        np.testing.assert_array_equal(stream.bars.close, reference.bars.close)
        np.testing.assert_array_equal(stream.latest_window(), reference.latest_window())
        assert len(store.load_bars(stream.key)) == control.sent
    finally:
        store.close()


def test_fuzz_over_socket(daemon_state, eurusd):
    running = start_daemon(daemon_state.replace("server", max_streams_per_client=8), train=False)
    try:
        with SigBridgeClient(running.endpoint, timeout=10) as fuzzer, SigBridgeClient(running.endpoint, timeout=10) as other:

            def over_socket(client):
                def send(payload):
                    client.send_raw([payload])
                    return client.receive()

                return send

            control = ControlStream(eurusd, over_socket(other))
            send = over_socket(fuzzer)

            @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(case=payloads(base_messages(eurusd)), frames=st.sampled_from([1, 1, 1, 2]))
            def fuzz(case, frames):
                payload, request_id = case
                if frames == 2:
                    # Two frames from a DEALER: a malformed envelope, unless the first is empty,
                    # which makes it a REQ envelope whose reply comes back after an empty frame.
                    socket = fuzzer._connect()
                    socket.send_multipart([payload, payload])
                    assert socket.poll(10_000)
                    reply = msgpack.unpackb(socket.recv_multipart()[-1], raw=False)
                    if payload:
                        assert reply["code"] == ErrorCode.MALFORMED
                        request_id = None
                else:
                    reply = send(payload)
                check_reply(reply, request_id)
                control.next_bars()

            fuzz()
            assert other.ping()["type"] == "pong"
    finally:
        running.stop()
