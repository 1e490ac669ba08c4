"""The wire protocol without sockets: request decoding and validation, reply builders, and the
examples and tables in docs/protocol.md checked against the code."""

import importlib.util
import json
import math
import re
import struct
from pathlib import Path

import msgpack
import numpy as np
import pytest

from sigbridge.bars import BarValidationError, validate_bars
from sigbridge.daemon import replies
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.protocol import (
    MAX_ID,
    PROTOCOL_VERSION,
    REQUEST_FIELDS,
    TIMEFRAMES,
    BarsRequest,
    Hello,
    Limits,
    Ping,
    ProtocolError,
    decode_request,
    encode,
)

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "protocol.md"
GENERATOR_PATH = ROOT / "docs" / "make_protocol_examples.py"
REQUEST_ID = 7
# 2025-12-15 01:00, 02:00 and 03:00 in the broker's server time.
BAR_TIMES = [1765760400, 1765764000, 1765767600]


def hello_message(**changes):
    message = {
        "v": 1,
        "type": "hello",
        "id": REQUEST_ID,
        "client": "ea-eurusd-h1",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "digits": 5,
        "point": 1e-05,
        "utc_offset": 7200,
    }
    message.update(changes)
    return message


def bars_message(count=3, **changes):
    message = {
        "v": 1,
        "type": "bars",
        "id": REQUEST_ID,
        "symbol": "EURUSD",
        "timeframe": "H1",
        "time": BAR_TIMES[:count] if count <= len(BAR_TIMES) else [1765760400 + 3600 * i for i in range(count)],
        "open": [1.17352] * count,
        "high": [1.17405] * count,
        "low": [1.17351] * count,
        "close": [1.17367] * count,
        "tick_volume": [584] * count,
        "spread": [7] * count,
    }
    message.update(changes)
    return message


def ping_message(**changes):
    return {"v": 1, "type": "ping", "id": REQUEST_ID, **changes}


def without(message, name):
    return {key: value for key, value in message.items() if key != name}


def decode_error(message, limits=Limits()) -> ProtocolError:
    """Decode a map (packed here) or raw bytes and return the ProtocolError it raises."""
    payload = message if isinstance(message, bytes) else encode(message)
    with pytest.raises(ProtocolError) as caught:
        decode_request(payload, limits)
    return caught.value


# Valid requests.


def test_decode_hello_valid():
    request = decode_request(encode(hello_message()))
    assert request == Hello(
        id=REQUEST_ID, client="ea-eurusd-h1", symbol="EURUSD", timeframe="H1", digits=5, point=1e-05, utc_offset=7200
    )


def test_decode_hello_integer_point():
    request = decode_request(encode(hello_message(point=1)))
    assert isinstance(request.point, float)
    assert request.point == 1.0


@pytest.mark.parametrize(
    "name, value",
    [
        ("client", "x" * 64),
        ("client", "EA Zürich ✓"),
        ("symbol", "S" * 32),
        ("symbol", "EURUSD.m"),
        ("digits", 0),
        ("digits", 10),
        ("utc_offset", -50400),
        ("utc_offset", 50400),
        ("point", 1e-10),
    ],
)
def test_decode_hello_boundary_values(name, value):
    request = decode_request(encode(hello_message(**{name: value})))
    assert getattr(request, name) == value


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_decode_hello_every_timeframe(timeframe):
    assert decode_request(encode(hello_message(timeframe=timeframe))).timeframe == timeframe


def test_decode_bars_valid():
    request = decode_request(encode(bars_message()))
    assert isinstance(request, BarsRequest)
    assert request.id == REQUEST_ID
    assert request.symbol == "EURUSD"
    assert request.timeframe == "H1"
    assert request.bars.time.tolist() == BAR_TIMES
    assert request.bars.time.dtype == np.int64
    assert request.bars.high.tolist() == [1.17405] * 3
    assert request.bars.close.dtype == np.float64
    assert request.bars.tick_volume.tolist() == [584] * 3
    assert request.bars.spread.tolist() == [7] * 3


def test_decode_bars_volume_defaults_to_zero():
    request = decode_request(encode(bars_message()))
    assert request.bars.volume.tolist() == [0, 0, 0]


def test_decode_bars_with_volume():
    request = decode_request(encode(bars_message(volume=[10, 20, 30])))
    assert request.bars.volume.tolist() == [10, 20, 30]


def test_decode_bars_integer_prices():
    request = decode_request(encode(bars_message(open=[1, 2, 3])))
    assert request.bars.open.dtype == np.float64
    assert request.bars.open.tolist() == [1.0, 2.0, 3.0]


def test_decode_bars_float32_prices():
    payload = msgpack.packb(bars_message(), use_bin_type=True, use_single_float=True)
    request = decode_request(payload)
    assert request.bars.open.dtype == np.float64
    assert request.bars.open[0] == pytest.approx(1.17352, rel=1e-7)


def test_decode_bars_single_bar():
    assert len(decode_request(encode(bars_message(count=1))).bars) == 1


def test_decode_bars_nan_price_passes_decoding():
    # The decoder checks types only. The stream's bar check rejects the NaN with INVALID_BAR.
    request = decode_request(encode(bars_message(open=[math.nan, 1.17352, 1.17352])))
    assert math.isnan(request.bars.open[0])
    with pytest.raises(BarValidationError) as caught:
        validate_bars(request.bars)
    assert caught.value.column == "open"


def test_decode_ping_valid():
    assert decode_request(encode(ping_message())) == Ping(id=REQUEST_ID)


@pytest.mark.parametrize("request_id", [0, 1, 2**32, MAX_ID])
def test_decode_id_range(request_id):
    assert decode_request(encode(ping_message(id=request_id))).id == request_id


def test_decode_field_order_free():
    message = dict(reversed(list(hello_message().items())))
    assert decode_request(encode(message)) == decode_request(encode(hello_message()))


# MALFORMED: the frame is not one msgpack map with string keys.


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x92\x01", id="truncated-array"),
        pytest.param(b"\x81\xa1v\xa2\xff\xfe", id="invalid-utf8"),
        pytest.param(msgpack.packb({1: 1}), id="integer-key"),
        pytest.param(encode(ping_message()) + b"\xc0", id="trailing-object"),
    ],
)
def test_decode_malformed_bytes(payload):
    error = decode_error(payload)
    assert error.code == ErrorCode.MALFORMED
    assert error.field is None
    assert error.request_id is None


def test_decode_trailing_object_message():
    error = decode_error(encode(ping_message()) + b"\xc0")
    assert "more than one msgpack object" in error.message


@pytest.mark.parametrize(
    "value, type_name",
    [([1, 2], "list"), (5, "int"), ("ping", "str"), (None, "NoneType"), (1.5, "float")],
)
def test_decode_malformed_not_map(value, type_name):
    error = decode_error(encode(value))
    assert error.code == ErrorCode.MALFORMED
    assert error.field is None
    assert error.request_id is None
    assert type_name in error.message


# UNSUPPORTED_VERSION and UNKNOWN_TYPE: the envelope.


@pytest.mark.parametrize("version", [2, 0, 1.0, True, "1", None])
def test_decode_unsupported_version(version):
    error = decode_error(ping_message(v=version))
    assert error.code == ErrorCode.UNSUPPORTED_VERSION
    assert error.field == "v"
    assert error.request_id == REQUEST_ID
    assert f"v={version!r}" in error.message


def test_decode_missing_version():
    error = decode_error(without(ping_message(), "v"))
    assert error.code == ErrorCode.UNSUPPORTED_VERSION
    assert error.field == "v"
    assert error.request_id == REQUEST_ID


@pytest.mark.parametrize("kind", ["pong", "welcome", "HELLO", "", 5, None])
def test_decode_unknown_type(kind):
    error = decode_error(ping_message(type=kind))
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.field == "type"
    assert error.request_id == REQUEST_ID
    assert f"type={kind!r}" in error.message


def test_decode_missing_type():
    error = decode_error(without(ping_message(), "type"))
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert error.field == "type"
    assert error.request_id == REQUEST_ID


# INVALID_FIELD: the request id.


@pytest.mark.parametrize("request_id", [-1, MAX_ID + 1, 2**64 - 1, True, False, 1.0, "7", None])
def test_decode_invalid_id(request_id):
    error = decode_error(ping_message(id=request_id))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == "id"
    assert error.request_id is None
    assert f"id={request_id!r}" in error.message


def test_decode_missing_id():
    error = decode_error(without(ping_message(), "id"))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == "id"
    assert error.request_id is None


# INVALID_FIELD: missing and unknown fields.


@pytest.mark.parametrize(
    "make_message, name",
    [(hello_message, name) for name in REQUEST_FIELDS["hello"]]
    + [(bars_message, name) for name, required in REQUEST_FIELDS["bars"].items() if required],
)
def test_decode_missing_field(make_message, name):
    message = without(make_message(), name)
    error = decode_error(message)
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert f"`{name}`" in error.message


@pytest.mark.parametrize(
    "message, name",
    [
        (hello_message(magic=1), "magic"),
        (bars_message(Time=BAR_TIMES), "Time"),
        (bars_message(real_volume=[0, 0, 0]), "real_volume"),
        (ping_message(symbol="EURUSD"), "symbol"),
    ],
)
def test_decode_unknown_field(message, name):
    error = decode_error(message)
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert repr(name) in error.message


def test_decode_unknown_fields_first_sorted():
    error = decode_error(ping_message(zeta=1, alpha=2))
    assert error.field == "alpha"
    assert "'zeta'" in error.message


# INVALID_FIELD: hello values.


@pytest.mark.parametrize(
    "name, value",
    [
        ("client", ""),
        ("client", "   "),
        ("client", "x" * 65),
        ("client", "ea\nh1"),
        ("client", 5),
        ("client", None),
        ("symbol", "S" * 33),
        ("symbol", ""),
        ("symbol", ["EURUSD"]),
        ("timeframe", "H7"),
        ("timeframe", "h1"),
        ("timeframe", "PERIOD_H1"),
        ("timeframe", 16385),
        ("digits", -1),
        ("digits", 11),
        ("digits", True),
        ("digits", 5.0),
        ("digits", "5"),
        ("point", 0),
        ("point", -1e-05),
        ("point", math.nan),
        ("point", math.inf),
        ("point", True),
        ("point", "0.00001"),
        ("point", None),
        ("utc_offset", 50401),
        ("utc_offset", -50401),
        ("utc_offset", True),
        ("utc_offset", 7200.0),
    ],
)
def test_decode_hello_invalid_value(name, value):
    error = decode_error(hello_message(**{name: value}))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert repr(value) in error.message


# INVALID_FIELD: bars values.


@pytest.mark.parametrize(
    "name, value",
    [
        ("symbol", ""),
        ("symbol", 5),
        ("timeframe", "H7"),
        ("timeframe", None),
    ],
)
def test_decode_bars_invalid_stream_field(name, value):
    error = decode_error(bars_message(**{name: value}))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert repr(value) in error.message


@pytest.mark.parametrize(
    "name, value, type_name",
    [
        ("time", 1765760400, "int"),
        ("time", None, "NoneType"),
        ("open", 1.17352, "float"),
        ("close", {"0": 1.1}, "dict"),
        ("spread", "7,7,7", "str"),
        ("volume", None, "NoneType"),
    ],
)
def test_decode_bars_column_not_array(name, value, type_name):
    error = decode_error(bars_message(**{name: value}))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert type_name in error.message


def test_decode_bars_empty_time():
    error = decode_error(bars_message(count=0))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == "time"
    assert error.request_id == REQUEST_ID
    assert "empty" in error.message


@pytest.mark.parametrize(
    "name, values, bad",
    [
        ("time", [1765760400.0, 1765764000.0, 1765767600.0], 1765760400.0),
        ("time", [1765760400, "1765764000", 1765767600], "1765764000"),
        ("time", [1765760400, None, 1765767600], None),
        ("time", [[1765760400], [1765764000], [1765767600]], [1765760400]),
        ("time", [True, False, True], True),
        ("open", ["1.17352", 1.17352, 1.17352], "1.17352"),
        ("high", [1.17405, None, 1.17405], None),
        ("low", [True, True, False], True),
        ("tick_volume", [584, 1.5, 584], 1.5),
        ("spread", [7, 7, 7.0], 7.0),
        ("volume", [0, "0", 0], "0"),
    ],
)
def test_decode_bars_wrong_value_type(name, values, bad):
    error = decode_error(bars_message(**{name: values}))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert f"received {bad!r}" in error.message


@pytest.mark.parametrize("name", ["open", "high", "low", "close", "tick_volume", "spread", "volume"])
def test_decode_bars_column_length_mismatch(name):
    error = decode_error(bars_message(**{name: [1] * 2}))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == name
    assert error.request_id == REQUEST_ID
    assert f"`{name}` has 2 values but `time` has 3" in error.message


def test_decode_bars_time_beyond_int64():
    error = decode_error(bars_message(count=1, time=[2**64 - 1]))
    assert error.code == ErrorCode.INVALID_FIELD
    assert error.field == "time"
    assert error.request_id == REQUEST_ID


# MESSAGE_TOO_LARGE: decoding limits.


def test_decode_frame_at_byte_limit():
    payload = encode(ping_message())
    assert decode_request(payload, Limits(max_message_bytes=len(payload))) == Ping(id=REQUEST_ID)


def test_decode_frame_over_byte_limit():
    payload = encode(ping_message())
    error = decode_error(payload, Limits(max_message_bytes=len(payload) - 1))
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE
    assert error.field is None
    assert error.request_id is None
    assert f"message of {len(payload)} bytes" in error.message
    assert f"limit of {len(payload) - 1} bytes" in error.message


def test_decode_bars_at_count_limit():
    request = decode_request(encode(bars_message(count=5)), Limits(max_bars_per_message=5))
    assert len(request.bars) == 5


def test_decode_bars_over_count_limit():
    error = decode_error(bars_message(count=6), Limits(max_bars_per_message=5))
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE
    assert error.request_id == REQUEST_ID
    assert "6 bars exceed the limit of 5" in error.message


def test_decode_bars_far_over_count_limit():
    error = decode_error(bars_message(count=7), Limits(max_bars_per_message=5))
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE
    assert error.request_id is None
    assert "at most 5 bars per message" in error.message


def test_decode_string_over_byte_limit():
    error = decode_error(hello_message(client="x" * 1025))
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE
    assert "1025" in error.message


def test_decode_map_over_entry_limit():
    extra = {f"field{index:02}": 0 for index in range(62)}
    error = decode_error(ping_message(**extra))
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE
    assert "65" in error.message


# Edge cases of the decoder: odd msgpack types and values that numpy would coerce.


@pytest.mark.parametrize("kind", [["hello"], {"hello": 1}])
def test_decode_unhashable_type(kind):
    error = decode_error(ping_message(type=kind))
    assert error.code == ErrorCode.UNKNOWN_TYPE


def test_decode_bytes_and_str_unknown_keys():
    message = msgpack.packb({"v": 1, "type": "ping", "id": REQUEST_ID, b"": 1, "extra": 2}, use_bin_type=True)
    error = decode_error(message)
    assert error.code == ErrorCode.MALFORMED


@pytest.mark.parametrize("name", ["time", "tick_volume", "spread"])
def test_decode_bool_among_integers(name):
    values = {"time": [1765760400, True, 1765767600], "tick_volume": [584, True, 584], "spread": [7, False, 7]}
    error = decode_error(bars_message(**{name: values[name]}))
    assert error.field == name


def test_decode_bool_among_floats():
    error = decode_error(bars_message(open=[1.17352, True, 1.17352]))
    assert error.field == "open"


def test_decode_bin_string():
    payload = msgpack.packb(hello_message(symbol=b"EURUSD"), use_bin_type=True)
    error = decode_error(payload)
    assert error.code == ErrorCode.MALFORMED
    assert "msgpack str" in error.message


def test_decode_bars_over_count_limit_field():
    error = decode_error(bars_message(count=6), Limits(max_bars_per_message=5))
    assert error.field == "time"


def test_decode_bars_time_beyond_int64_message():
    error = decode_error(bars_message(count=1, time=[2**64 - 1]))
    assert str(2**64 - 1) in error.message


# Reply builders.


def welcome_example(**changes):
    fields = dict(
        server="sigbridge 0.1.0",
        symbol="EURUSD",
        timeframe="H1",
        state="ready",
        message="serving model_version=1",
        bars_held=3000,
        last_bar_time=BAR_TIMES[0],
        bars_needed=0,
        model_version=1,
        max_bars_per_message=100_000,
    )
    fields.update(changes)
    return replies.welcome_reply(REQUEST_ID, **fields)


def signal_example():
    return replies.signal_reply(
        REQUEST_ID,
        symbol="EURUSD",
        timeframe="H1",
        bar_time=BAR_TIMES[0],
        direction=-1,
        score=-0.32,
        distance=-0.0018,
        model_version=1,
        latency_us=2776,
        accepted=1,
        duplicates=0,
    )


def status_example():
    return replies.status_reply(
        REQUEST_ID,
        symbol="EURUSD",
        timeframe="H1",
        state="training",
        message="training the initial model on 3000 bars",
        bars_held=3000,
        bars_needed=0,
        last_bar_time=BAR_TIMES[0],
        model_version=None,
        accepted=1,
        duplicates=0,
    )


def error_example(request_id=REQUEST_ID):
    error = ProtocolError(ErrorCode.UNKNOWN_STREAM, "send `hello` first", field="symbol", request_id=request_id)
    return replies.error_reply(error)


REPLY_EXAMPLES = {
    "welcome": welcome_example,
    "signal": signal_example,
    "status": status_example,
    "pong": lambda: replies.pong_reply(REQUEST_ID, 1765757000.125),
    "error": error_example,
}


@pytest.mark.parametrize("kind", sorted(REPLY_EXAMPLES))
def test_reply_envelope(kind):
    reply = REPLY_EXAMPLES[kind]()
    assert list(reply)[:3] == ["v", "type", "id"]
    assert reply["v"] == PROTOCOL_VERSION
    assert reply["type"] == kind
    assert reply["id"] == REQUEST_ID


def test_error_reply_fields():
    assert error_example() == {
        "v": 1,
        "type": "error",
        "id": REQUEST_ID,
        "code": 5,
        "name": "UNKNOWN_STREAM",
        "message": "send `hello` first",
        "field": "symbol",
        "row": None,
    }


def test_error_reply_code_is_plain_int():
    assert type(error_example()["code"]) is int


def test_error_reply_unreadable_id():
    assert error_example(request_id=None)["id"] is None


def test_welcome_reply_nil_fields():
    reply = welcome_example(last_bar_time=None, model_version=None)
    assert reply["last_bar_time"] is None
    assert reply["model_version"] is None


def test_encode_float64():
    assert encode({"x": 0.5}) == b"\x81\xa1x\xcb" + struct.pack(">d", 0.5)


def test_encode_str_not_bin():
    assert encode({"x": "EURUSD"})[3] == 0xA6


@pytest.mark.parametrize("kind", sorted(REPLY_EXAMPLES))
def test_reply_round_trip(kind):
    reply = REPLY_EXAMPLES[kind]()
    assert msgpack.unpackb(encode(reply), raw=False) == reply


# docs/protocol.md against the code.


def doc_text():
    return DOC_PATH.read_text(encoding="utf-8")


def doc_section(heading):
    """Return the text under a `## heading` up to the next `## ` heading."""
    text = doc_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def doc_field_tables(heading):
    """Map each `### \\`name\\`` under a `## heading` to the rows of its field table."""
    tables = {}
    for block in re.split(r"\n### ", doc_section(heading))[1:]:
        name = re.match(r"`(\w+)`", block).group(1)
        rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", block, flags=re.MULTILINE)
        tables[name] = rows
    return tables


def load_generator():
    spec = importlib.util.spec_from_file_location("make_protocol_examples", GENERATOR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_examples():
    """Return {message type: (map, dump offsets, dump bytes)} parsed from the generated section."""
    pattern = re.compile(r"### `(\w+)`\n.*?```json\n(.*?)\n```\s*```text\n(.*?)\n```", re.DOTALL)
    examples = {}
    for kind, map_text, dump in pattern.findall(doc_section("Examples with bytes")):
        offsets, data = [], bytearray()
        for line in dump.splitlines():
            offsets.append(int(line[:8], 16))
            # `hexdump -C` layout: 8 offset digits, 2 spaces, then bytes up to column 59.
            data += bytes(int(token, 16) for token in line[10:59].split())
        examples[kind] = (json.loads(map_text), offsets, bytes(data))
    return examples


MESSAGE_TYPES = ["hello", "bars", "ping", "rollback", "unpin", "welcome", "signal", "status", "pong", "model", "error"]


def test_doc_examples_up_to_date():
    generator = load_generator()
    _, section, _ = generator.split_doc(doc_text())
    assert section == generator.render_section(), "run: python docs/make_protocol_examples.py"


def test_doc_examples_cover_every_type():
    assert sorted(doc_examples()) == sorted(MESSAGE_TYPES)


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_doc_dump_equals_encode(kind):
    message, _, data = doc_examples()[kind]
    assert data == encode(message)


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_doc_dump_offsets(kind):
    _, offsets, data = doc_examples()[kind]
    assert offsets == list(range(0, len(data), 16))


@pytest.mark.parametrize("kind", ["hello", "bars", "ping", "rollback", "unpin"])
def test_doc_request_examples_decode(kind):
    message, _, data = doc_examples()[kind]
    assert decode_request(data).id == message["id"]


@pytest.mark.parametrize("kind", sorted(REPLY_EXAMPLES))
def test_doc_reply_examples_field_order(kind):
    message, _, _ = doc_examples()[kind]
    assert list(message) == list(REPLY_EXAMPLES[kind]())


@pytest.mark.parametrize("kind", ["hello", "bars"])
def test_doc_request_fields(kind):
    rows = doc_field_tables("Requests")[kind]
    assert [name for name, _ in rows] == list(REQUEST_FIELDS[kind])


@pytest.mark.parametrize("kind", ["hello", "bars"])
def test_doc_request_optional_fields(kind):
    rows = doc_field_tables("Requests")[kind]
    documented = {name: "optional" not in msgpack_type for name, msgpack_type in rows}
    assert documented == REQUEST_FIELDS[kind]


def test_doc_ping_has_no_fields():
    assert doc_field_tables("Requests")["ping"] == []


@pytest.mark.parametrize("kind", sorted(REPLY_EXAMPLES))
def test_doc_reply_fields(kind):
    rows = doc_field_tables("Replies")[kind]
    assert ["v", "type", "id"] + [name for name, _ in rows] == list(REPLY_EXAMPLES[kind]())


def test_doc_error_codes():
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", doc_section("Error codes"), flags=re.MULTILINE)
    assert [(int(number), name) for number, name in rows] == [(int(code), code.name) for code in ErrorCode]


def test_doc_timeframes():
    hello_rows = dict(doc_field_tables("Requests")["hello"])
    assert "timeframe" in hello_rows
    row = re.search(r"^\| `timeframe` \|.*$", doc_section("Requests"), flags=re.MULTILINE).group(0)
    assert re.findall(r"`([A-Z]+\d+)`", row) == list(TIMEFRAMES)
