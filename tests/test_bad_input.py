"""Bad input: every case gets an error reply with its code, field and value, and changes nothing."""

import logging
import math
import time

import msgpack
import pytest
import zmq

from sigbridge.client import SigBridgeClient, bars_message
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.protocol import MAX_CONTAINERS, PROTOCOL_VERSION, encode
from sigbridge.daemon.sessions import StreamKey
from sigbridge.daemon.storage import BarStore
from sigbridge.daemon.trainer import ModelRegistry

from conftest import start_daemon

IDENTITY = b"\x00ea-1"
BYSTANDER = b"\x00bystander"
KEY = StreamKey("ea-1", "GBPUSD", "H1")
MAX_BARS_PER_MESSAGE = 500
MAX_MESSAGE_BYTES = 1_000_000
DAY = 86_400


def request(body, request_id=1):
    return encode({"v": PROTOCOL_VERSION, "id": request_id, **body})


def hello_body(client="probe", symbol="GBPUSD", **changes):
    body = {"type": "hello", "client": client, "symbol": symbol, "timeframe": "H1", "digits": 5, "point": 1e-05, "utc_offset": 0}
    body.update(changes)
    return body


@pytest.fixture(scope="module")
def served(tmp_path_factory, fast_config, eurusd):
    """A dispatcher with a stored stream of 100 bars on IDENTITY and a bystander stream."""
    state = tmp_path_factory.mktemp("bad-input")
    config = fast_config.replace("paths", state_dir=state)
    config = config.replace(
        "server", max_bars_per_message=MAX_BARS_PER_MESSAGE, max_message_bytes=MAX_MESSAGE_BYTES
    )
    store = BarStore(config.paths.bars_database, synchronous="normal")
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), None, store=store)
    assert dispatcher.handle(IDENTITY, request(hello_body(client="ea-1")))["type"] == "welcome"
    assert dispatcher.handle(IDENTITY, request(bars_message("GBPUSD", "H1", eurusd.bars[:100])))["accepted"] == 100
    assert dispatcher.handle(BYSTANDER, request(hello_body(client="bystander")))["type"] == "welcome"
    yield dispatcher, store, {"next": 0}
    store.close()


def next_bars(eurusd, **changes):
    """The `bars` body of the stream's next three bars, with columns changed by `changes`."""
    body = bars_message("GBPUSD", "H1", eurusd.bars[100:103])
    for name, change in changes.items():
        body[name] = change(body[name]) if callable(change) else change
    return body


def replace_at(index, value):
    def change(column):
        column = list(column)
        column[index] = value
        return column

    return change


def future_times(column):
    start = int(time.time()) + 2 * DAY
    return [start + 3600 * row for row in range(len(column))]


def ping(**changes):
    return {"v": PROTOCOL_VERSION, "type": "ping", "id": 1, **changes}


# (case, payload builder taking the eurusd fixture, code, field, text in the message, reply id)
CASES = [
    ("undecodable msgpack", lambda _: b"\xc1\x00", ErrorCode.MALFORMED, None, "not valid msgpack", None),
    ("truncated msgpack", lambda _: encode(ping())[:-1], ErrorCode.MALFORMED, None, "not valid msgpack", None),
    ("not a map", lambda _: msgpack.packb([1, 2]), ErrorCode.MALFORMED, None, "received list", None),
    ("two objects", lambda _: encode(ping()) + encode(ping()), ErrorCode.MALFORMED, None, "more than one", None),
    ("integer map key", lambda _: msgpack.packb({1: 2}), ErrorCode.MALFORMED, None, "map key", None),
    ("bin value", lambda _: msgpack.packb(ping(x=b"\x00"), use_bin_type=True), ErrorCode.MALFORMED, None, "bin", None),
    ("unsupported version", lambda _: encode(ping(v=2)), ErrorCode.UNSUPPORTED_VERSION, "v", "v=2", 1),
    ("missing version", lambda _: encode({"type": "ping", "id": 1}), ErrorCode.UNSUPPORTED_VERSION, "v", "v=None", 1),
    ("unknown type", lambda _: encode(ping(type="subscribe")), ErrorCode.UNKNOWN_TYPE, "type", "'subscribe'", 1),
    ("id not an integer", lambda _: encode(ping(id="one")), ErrorCode.INVALID_FIELD, "id", "'one'", None),
    ("negative id", lambda _: encode(ping(id=-5)), ErrorCode.INVALID_FIELD, "id", "-5", None),
    ("extra field", lambda _: encode(ping(extra=1)), ErrorCode.INVALID_FIELD, "extra", "extra", 1),
    (
        "missing field",
        lambda _: request({key: value for key, value in hello_body().items() if key != "digits"}),
        ErrorCode.INVALID_FIELD, "digits", "missing", 1,
    ),
    ("digits wrong type", lambda _: request(hello_body(digits="5")), ErrorCode.INVALID_FIELD, "digits", "'5'", 1),
    ("point not positive", lambda _: request(hello_body(point=-1e-05)), ErrorCode.INVALID_FIELD, "point", "-1e-05", 1),
    ("point NaN", lambda _: request(hello_body(point=math.nan)), ErrorCode.INVALID_FIELD, "point", "nan", 1),
    ("unknown timeframe", lambda _: request(hello_body(timeframe="H7")), ErrorCode.INVALID_FIELD, "timeframe", "'H7'", 1),
    ("empty symbol", lambda _: request(hello_body(symbol="")), ErrorCode.INVALID_FIELD, "symbol", "''", 1),
    ("control character", lambda _: request(hello_body(client="ea\n1")), ErrorCode.INVALID_FIELD, "client", "'ea\\n1'", 1),
    ("utc_offset too large", lambda _: request(hello_body(utc_offset=20 * 3600)), ErrorCode.INVALID_FIELD, "utc_offset", "72000", 1),
    ("price as string", lambda e: request(next_bars(e, open=replace_at(1, "1.1"))), ErrorCode.INVALID_FIELD, "open", "'1.1'", 1),
    ("price as bool", lambda e: request(next_bars(e, close=replace_at(0, True))), ErrorCode.INVALID_FIELD, "close", "True", 1),
    ("time as float", lambda e: request(next_bars(e, time=replace_at(0, 1.5))), ErrorCode.INVALID_FIELD, "time", "1.5", 1),
    ("column too short", lambda e: request(next_bars(e, low=lambda column: column[:-1])), ErrorCode.INVALID_FIELD, "low", "2 values", 1),
    ("column not an array", lambda e: request(next_bars(e, close=1.2)), ErrorCode.INVALID_FIELD, "close", "float", 1),
    (
        "no bars",
        lambda e: request(next_bars(e, **{name: [] for name in ("time", "open", "high", "low", "close", "tick_volume", "spread", "volume")})),
        ErrorCode.INVALID_FIELD, "time", "empty", 1,
    ),
    ("NaN price", lambda e: request(next_bars(e, low=replace_at(1, math.nan))), ErrorCode.INVALID_BAR, "low", "nan", 1),
    ("infinite price", lambda e: request(next_bars(e, high=replace_at(1, math.inf))), ErrorCode.INVALID_BAR, "high", "inf", 1),
    ("zero price", lambda e: request(next_bars(e, open=replace_at(0, 0.0))), ErrorCode.INVALID_BAR, "open", "0.0", 1),
    ("negative price", lambda e: request(next_bars(e, close=replace_at(2, -1.0))), ErrorCode.INVALID_BAR, "close", "-1.0", 1),
    (
        "high below low",
        lambda e: request(next_bars(e, high=replace_at(2, float(e.bars.low[102]) - 0.001))),
        ErrorCode.INVALID_BAR, "high", "high must be >=", 1,
    ),
    ("negative tick volume", lambda e: request(next_bars(e, tick_volume=replace_at(0, -1))), ErrorCode.INVALID_BAR, "tick_volume", "-1", 1),
    (
        "absurd price",
        lambda e: request(next_bars(e, **{name: replace_at(0, 1e13) for name in ("open", "high", "low", "close")})),
        ErrorCode.INVALID_BAR, "open", "open=10000000000000.0", 1,
    ),
    (
        "bars out of order",
        lambda e: request(next_bars(e, time=lambda column: [column[1], column[0], column[2]])),
        ErrorCode.BARS_OUT_OF_ORDER, "time", "strictly increasing", 1,
    ),
    (
        "duplicated time in message",
        lambda e: request(next_bars(e, time=lambda column: [column[0], column[0], column[2]])),
        ErrorCode.BARS_OUT_OF_ORDER, "time", "strictly increasing", 1,
    ),
    (
        "time never held",
        lambda e: request(next_bars(e, time=lambda column: [int(e.bars.time[50]) + 60, *column[1:]])),
        ErrorCode.BARS_OUT_OF_ORDER, "time", "not a bar already held", 1,
    ),
    (
        "changed older bar",
        lambda e: request(bars_message("GBPUSD", "H1", e.bars[98:101]) | {"close": [float(e.bars.close[98]) + 1e-4, *e.bars.close[99:101].tolist()]}),
        ErrorCode.BAR_CONFLICT, "close", "cannot change", 1,
    ),
    ("time in the future", lambda e: request(next_bars(e, time=future_times)), ErrorCode.INVALID_BAR, "time", "after the current server time", 1),
    (
        "time in milliseconds",
        lambda e: request(next_bars(e, time=lambda column: [value * 1000 for value in column])),
        ErrorCode.INVALID_BAR, "time", "milliseconds", 1,
    ),
    ("negative time", lambda e: request(next_bars(e, time=[-7200, -3600, -1])), ErrorCode.INVALID_BAR, "time", "-7200", 1),
    (
        "bars over the message limit",
        lambda e: request(bars_message("GBPUSD", "H1", e.bars[100 : 101 + MAX_BARS_PER_MESSAGE])),
        ErrorCode.MESSAGE_TOO_LARGE, "time", f"limit of {MAX_BARS_PER_MESSAGE}", 1,
    ),
    (
        "array over the decoder limit",
        lambda e: request(bars_message("GBPUSD", "H1", e.bars[100 : 110 + MAX_BARS_PER_MESSAGE])),
        ErrorCode.MESSAGE_TOO_LARGE, None, "array is too long", None,
    ),
    ("string too long", lambda _: request(hello_body(symbol="S" * 2000)), ErrorCode.MESSAGE_TOO_LARGE, None, "string or map", None),
    (
        "map too large",
        lambda _: encode(ping(**{f"key{index}": index for index in range(100)})),
        ErrorCode.MESSAGE_TOO_LARGE, None, "string or map", None,
    ),
    (
        "too many containers",
        lambda _: encode(ping(x=[[] for _ in range(MAX_CONTAINERS + 5)])),
        ErrorCode.MESSAGE_TOO_LARGE, None, f"more than {MAX_CONTAINERS} arrays", None,
    ),
    ("deep nesting", lambda _: b"\x91" * 100_000 + b"\x00", ErrorCode.MALFORMED, None, "deeper", None),
    ("frame over the byte limit", lambda _: b"\x00" * (MAX_MESSAGE_BYTES + 1), ErrorCode.MESSAGE_TOO_LARGE, None, "bytes exceeds", None),
    ("bars before hello", lambda e: request(bars_message("USDJPY", "H1", e.bars[:3])), ErrorCode.UNKNOWN_STREAM, "symbol", "'USDJPY'", 1),
]


@pytest.mark.parametrize(
    "payload_for, code, field, text, reply_id", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input_rejected(served, eurusd, payload_for, code, field, text, reply_id):
    dispatcher, store, bystander = served
    stream = dispatcher.streams[KEY]
    before = (stream.bars_seen, stream.last_time, len(store.load_bars(KEY)), len(dispatcher.streams))

    reply = dispatcher.handle(IDENTITY, payload_for(eurusd))

    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["name"] == code.name
    assert reply["field"] == field
    assert text in reply["message"]
    assert reply["id"] == reply_id
    # Nothing was half-applied: the stream, its stored bars and the stream count are as before.
    stream = dispatcher.streams[KEY]
    assert (stream.bars_seen, stream.last_time, len(store.load_bars(KEY)), len(dispatcher.streams)) == before
    # Everyone else is still served.
    index = bystander["next"]
    bystander["next"] += 1
    served_reply = dispatcher.handle(BYSTANDER, request(bars_message("GBPUSD", "H1", eurusd.bars[index : index + 1])))
    assert served_reply["accepted"] == 1


def test_bad_input_valid_bars_still_accepted(served, eurusd):
    dispatcher, store, _ = served
    reply = dispatcher.handle(IDENTITY, request(next_bars(eurusd)))
    assert reply["accepted"] == 3
    assert len(store.load_bars(KEY)) == 103


def test_too_many_streams_per_client(tmp_path, fast_config):
    config = fast_config.replace("paths", state_dir=tmp_path).replace("server", max_streams_per_client=2)
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), None)
    for symbol in ("EURUSD", "GBPUSD"):
        assert dispatcher.handle(IDENTITY, request(hello_body(client="ea-1", symbol=symbol)))["type"] == "welcome"
    reply = dispatcher.handle(IDENTITY, request(hello_body(client="ea-1", symbol="USDJPY")))
    assert reply["code"] == ErrorCode.TOO_MANY_STREAMS
    assert reply["field"] == "symbol"
    assert "client='ea-1'" in reply["message"]
    assert len(dispatcher.streams) == 2
    # Another client name still opens streams.
    assert dispatcher.handle(BYSTANDER, request(hello_body(client="ea-2", symbol="USDJPY")))["type"] == "welcome"


def test_too_many_streams_on_server(tmp_path, fast_config):
    config = fast_config.replace("paths", state_dir=tmp_path).replace("server", max_streams=3)
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), None)
    for number in range(3):
        assert dispatcher.handle(IDENTITY, request(hello_body(client=f"ea-{number}")))["type"] == "welcome"
    reply = dispatcher.handle(IDENTITY, request(hello_body(client="ea-9")))
    assert reply["code"] == ErrorCode.TOO_MANY_STREAMS
    assert "server.max_streams" in reply["message"]
    # A stream already open is still welcome.
    assert dispatcher.handle(IDENTITY, request(hello_body(client="ea-0")))["type"] == "welcome"


def test_repeated_bad_input_log_rate_limited(tmp_path, fast_config, caplog):
    config = fast_config.replace("paths", state_dir=tmp_path)
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), None)
    with caplog.at_level(logging.WARNING, logger="sigbridge.daemon.dispatcher"):
        for _ in range(50):
            dispatcher.handle(IDENTITY, b"\xc1")
        dispatcher.handle(BYSTANDER, b"\xc1")
    rejected = [record for record in caplog.records if "rejected request" in record.getMessage()]
    from_client = [record for record in rejected if IDENTITY.hex() in record.getMessage()]
    assert 1 <= len(from_client) <= 5
    assert len(rejected) == len(from_client) + 1


# Over a real socket: a frame beyond ZeroMQ's limit drops only the sender's connection.


def test_frame_over_socket_limit_drops_connection_only(daemon_state, eurusd):
    config = daemon_state.replace("server", max_message_bytes=100_000)
    running = start_daemon(config, train=False)
    context = zmq.Context.instance()
    offender = context.socket(zmq.DEALER)
    offender.setsockopt(zmq.LINGER, 0)
    try:
        with SigBridgeClient(running.endpoint) as bystander:
            # A symbol without a model bundle, so no model is loaded.
            bystander.hello(client="bystander", symbol="GBPUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)
            offender.connect(running.endpoint)
            # 3 MB is beyond the socket's limit (max_message_bytes plus one MiB): libzmq drops
            # the connection without a reply.
            offender.send(b"\x00" * 3_000_000)
            assert not offender.poll(1500)
            assert bystander.send_bars("GBPUSD", "H1", eurusd.bars[:10])["accepted"] == 10
            # The offender's socket reconnects by itself and is served again.
            offender.send(encode(ping(id=7)))
            assert offender.poll(5000)
            reply = msgpack.unpackb(offender.recv(), raw=False)
    finally:
        offender.close()
        running.stop()
    assert reply["type"] == "pong"
    assert reply["id"] == 7


# The `row` of each error reply: the offending bar's index in the request, nil for the others.
ROWS = {
    "price as string": 1,
    "price as bool": 0,
    "time as float": 0,
    "NaN price": 1,
    "infinite price": 1,
    "zero price": 0,
    "negative price": 2,
    "high below low": 2,
    "negative tick volume": 0,
    "absurd price": 0,
    "bars out of order": 1,
    "duplicated time in message": 1,
    "time never held": 0,
    "changed older bar": 0,
    "time in the future": 0,
    "time in milliseconds": 0,
    "negative time": 0,
}


def test_bad_input_rows_name_cases():
    assert set(ROWS) <= {case[0] for case in CASES}


@pytest.mark.parametrize("name, payload_for", [case[:2] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_row(served, eurusd, name, payload_for):
    reply = served[0].handle(IDENTITY, payload_for(eurusd))
    assert reply["type"] == "error"
    assert reply["row"] == ROWS.get(name)
