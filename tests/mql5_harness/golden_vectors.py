"""Golden msgpack vectors shared by the Python tests and the MQL5 self-test.

Each vector is a message built here with `sigbridge.daemon.protocol` (the reply builders and
`encode`), so its bytes are what the daemon sends or accepts. `render_header()` turns the vectors
into `mql5_client/Include/SigBridge/GoldenVectors.mqh`: the hex bytes plus MQL5 code that builds
the same requests with the include files' builders and checks every field the reply parser
returns. Run this file with `--write` after a protocol change; tests/test_mql5_client.py fails
while the header and this file disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from sigbridge.daemon import protocol, replies
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.protocol import ProtocolError

REPOSITORY = Path(__file__).resolve().parents[2]
HEADER_PATH = REPOSITORY / "mql5_client" / "Include" / "SigBridge" / "GoldenVectors.mqh"

# Non-ASCII text: a two-byte, a three-byte and a four-byte UTF-8 character (a UTF-16 surrogate pair).
UNICODE_NAME = "Z\u00fcrich \u20ac-desk \U0001d11e"


@dataclasses.dataclass(frozen=True)
class RequestVector:
    """A request the MQL5 builders must encode to exactly these bytes.

    `leading` and `trailing` add bars around a `bars` request's bars in the MQL5 rates array,
    so the builder's start index and count are exercised.
    """

    name: str
    message: dict[str, Any]
    leading: int = 0
    trailing: int = 0


@dataclasses.dataclass(frozen=True)
class ReplyVector:
    """A reply the MQL5 parser must accept with these field values, or reject when not `valid`."""

    name: str
    message: dict[str, Any]
    valid: bool = True
    # Keys the parser does not know and must skip.
    ignored: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PrimitiveVector:
    """A msgpack array of plain values for the writer and reader primitives."""

    name: str
    values: list[Any]


def _request(kind: str, request_id: int, **fields: Any) -> dict[str, Any]:
    # Wire order of the Python reference client: envelope first, then the fields.
    return {"v": protocol.PROTOCOL_VERSION, "id": request_id, "type": kind, **fields}


def _bars(count: int, first_time: int, seed: int) -> dict[str, list]:
    """Deterministic H1 bars with prices around 1.1 and volumes that cross msgpack int formats."""
    columns: dict[str, list] = {name: [] for name in ("time", "open", "high", "low", "close", "tick_volume", "spread", "volume")}
    price = 1.1 + seed * 0.01
    for index in range(count):
        step = ((index * 7919 + seed * 104729) % 2001 - 1000) * 1e-5
        open_price = round(price, 5)
        close_price = round(price + step, 5)
        columns["time"].append(first_time + 3600 * index)
        columns["open"].append(open_price)
        columns["high"].append(round(max(open_price, close_price) + 0.00037, 5))
        columns["low"].append(round(min(open_price, close_price) - 0.00021, 5))
        columns["close"].append(close_price)
        columns["tick_volume"].append((index * 65521 + seed) % 300000)
        columns["spread"].append(index % 40)
        columns["volume"].append(0 if index % 3 else (index + 1) * 2**31)
        price = close_price
    return columns


REQUESTS = (
    RequestVector(
        "hello_ascii",
        _request("hello", 1, client="ea-eurusd", symbol="EURUSD", timeframe="H1", digits=5, point=1e-05, utc_offset=7200),
    ),
    RequestVector(
        "hello_unicode",
        _request("hello", 300, client=UNICODE_NAME, symbol="XAUUSD", timeframe="M15", digits=2, point=0.01, utc_offset=-10800),
    ),
    RequestVector(
        "bars_three",
        _request(
            "bars",
            70000,
            symbol="EURUSD",
            timeframe="H1",
            time=[1750636800, 1750640400, 1750644000],
            open=[1.15432, 1.15501, 1.1549],
            high=[1.15533, 1.15562, 1.15613],
            low=[1.15402, 1.15448, 1.15455],
            close=[1.15501, 1.1549, 1.15592],
            tick_volume=[644, 70000, 4294967296],
            spread=[7, 0, 255],
            volume=[0, 0, 5000000000],
        ),
    ),
    RequestVector(
        "bars_window",
        _request("bars", 2**32 + 5, symbol="GBPUSD", timeframe="M5", **_bars(20, 1751328000, seed=3)),
        leading=2,
        trailing=1,
    ),
    RequestVector("ping_largest_id", _request("ping", protocol.MAX_ID)),
)


def _error(
    code: ErrorCode, message: str, *, field: str | None, request_id: int | None, row: int | None = None
) -> dict[str, Any]:
    return replies.error_reply(ProtocolError(code, message, field=field, request_id=request_id, row=row))


def _welcome_fresh() -> dict[str, Any]:
    return replies.welcome_reply(
        1,
        server="sigbridge 0.1.0",
        symbol="EURUSD",
        timeframe="H1",
        state="warming_up",
        message="collecting history: initial training starts after 1013 more bars",
        bars_held=0,
        last_bar_time=None,
        bars_needed=1013,
        model_version=None,
        max_bars_per_message=100_000,
    )


def _welcome_resumed() -> dict[str, Any]:
    return replies.welcome_reply(
        2,
        server="sigbridge 0.1.0",
        symbol="EURUSD",
        timeframe="H1",
        state="ready",
        message="serving model_version=3",
        bars_held=2000,
        last_bar_time=1750636800,
        bars_needed=0,
        model_version=3,
        max_bars_per_message=500,
    )


def _signal(**changes: Any) -> dict[str, Any]:
    fields = dict(
        symbol="EURUSD",
        timeframe="H1",
        bar_time=1750640400,
        direction=-1,
        score=-0.4321,
        distance=0.00123,
        model_version=3,
        latency_us=850,
        accepted=1,
        duplicates=0,
    )
    fields.update(changes)
    return replies.signal_reply(7, **fields)


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in message.items() if name != key}


REPLIES = (
    ReplyVector("welcome_fresh", _welcome_fresh()),
    ReplyVector("welcome_resumed", _welcome_resumed()),
    ReplyVector("signal_sell", _signal()),
    ReplyVector("signal_duplicate", _signal(direction=0, score=0.0312, distance=-0.0004, accepted=0, duplicates=1)),
    ReplyVector(
        "status_training",
        replies.status_reply(
            8,
            symbol="EURUSD",
            timeframe="H1",
            state="training",
            message="training the initial model on 1200 bars",
            bars_held=1200,
            bars_needed=0,
            last_bar_time=1750640400,
            model_version=None,
            accepted=1,
            duplicates=0,
        ),
    ),
    ReplyVector(
        "error_out_of_order",
        _error(
            ErrorCode.BARS_OUT_OF_ORDER,
            "bar time=1750636800 at bar 0 is not later than the last bar received (time=1750640400) "
            "and is not a bar already held; send closed bars oldest first",
            field="time",
            request_id=9,
            row=0,
        ),
    ),
    ReplyVector(
        "error_without_id",
        _error(ErrorCode.MALFORMED, "frame is not valid msgpack: unpack(b) received extra data.", field=None, request_id=None),
    ),
    ReplyVector(
        "error_unicode",
        _error(
            ErrorCode.INVALID_FIELD,
            f"`client` must not contain control characters, received '{UNICODE_NAME}\\x07'",
            field="client",
            request_id=10,
        ),
    ),
    ReplyVector("pong", replies.pong_reply(12, 1750640400.25)),
    ReplyVector(
        "welcome_extended",
        {**_welcome_resumed(), "extension": [1, {"nested": None}, "x", b"\x00\x01"], "flag": True, "ratio": 0.5},
        ignored=("extension", "flag", "ratio"),
    ),
    ReplyVector("invalid_version", {**_welcome_fresh(), "v": 2}, valid=False),
    ReplyVector("invalid_missing_score", _without(_signal(), "score"), valid=False),
    ReplyVector("invalid_score_type", {**_signal(), "score": "-0.4321"}, valid=False),
    ReplyVector("invalid_welcome_without_id", {**_welcome_fresh(), "id": None}, valid=False),
    ReplyVector("invalid_unknown_type", {**_welcome_fresh(), "type": "greeting"}, valid=False),
)

# Reply builders of sigbridge.daemon.protocol without a vector, and why the EA never parses them.
REPLIES_NOT_PARSED = {
    "model": "answers rollback and unpin, control requests that the EA does not send",
}

PRIMITIVES = (
    PrimitiveVector(
        "integers",
        [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
         -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)],
    ),
    PrimitiveVector("doubles", [0.0, -0.0, 1.0, -1.5, 1e-05, 1.15432, 0.1 + 0.2, 1e300, -2.2250738585072014e-308]),
    PrimitiveVector(
        "strings",
        ["", "a", "x" * 31, "y" * 32, "z" * 255, "w" * 256, UNICODE_NAME, "quote \" and backslash \\"],
    ),
    PrimitiveVector("constants", [None, True, False]),
    PrimitiveVector("nested", [[], {}, [1, [2, [3, None]]], {"key": [None, 1.5]}, "after"]),
)

# Where the MQL5 parser stores each reply field: SigBridgeReply member, its kind, and the flag
# that is false for nil. `v` is checked by the parser itself.
REPLY_MEMBERS: dict[str, tuple[str, str, str | None]] = {
    "type": ("type", "string", None),
    "id": ("id", "long", "hasId"),
    "symbol": ("symbol", "string", None),
    "timeframe": ("timeframe", "string", None),
    "model_version": ("modelVersion", "long", "hasModelVersion"),
    "state": ("state", "string", None),
    "message": ("message", "string", None),
    "bars_held": ("barsHeld", "long", None),
    "bars_needed": ("barsNeeded", "long", None),
    "last_bar_time": ("lastBarTime", "long", "hasLastBarTime"),
    "server": ("server", "string", None),
    "max_bars_per_message": ("maxBarsPerMessage", "long", None),
    "accepted": ("accepted", "long", None),
    "duplicates": ("duplicates", "long", None),
    "bar_time": ("barTime", "long", None),
    "direction": ("direction", "long", None),
    "score": ("score", "double", None),
    "distance": ("distance", "double", None),
    "latency_us": ("latencyUs", "long", None),
    "code": ("errorCode", "long", None),
    "name": ("errorName", "string", None),
    "field": ("errorField", "string", "hasErrorField"),
    "row": ("errorRow", "long", "hasErrorRow"),
    "time": ("serverTime", "double", None),
}

# Builder inputs: SigBridgeHello member for each hello field.
HELLO_MEMBERS = {
    "client": "client",
    "symbol": "symbol",
    "timeframe": "timeframe",
    "digits": "digits",
    "point": "point",
    "utc_offset": "utcOffset",
}

# MqlRates member for each bars column.
RATES_MEMBERS = {
    "time": "time",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "tick_volume": "tick_volume",
    "spread": "spread",
    "volume": "real_volume",
}


def vector_bytes(message: Any) -> bytes:
    return protocol.encode(message)


# ---------------------------------------------------------------------------------------------
# MQL5 source rendering. The output is pure ASCII, so MetaEditor reads it the same in any
# encoding; non-ASCII strings become ushort arrays of UTF-16 code units.


class _Function:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._texts = 0

    def add(self, line: str) -> None:
        self.lines.append("   " + line)

    def text(self, value: str) -> str:
        """An MQL5 expression for `value`."""
        if all(32 <= ord(char) < 127 for char in value):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        self._texts += 1
        units = value.encode("utf-16-le")
        codes = [int.from_bytes(units[index : index + 2], "little") for index in range(0, len(units), 2)]
        name = f"text{self._texts}"
        self.add(f"ushort {name}[]={{{','.join(f'0x{code:04X}' for code in codes)}}};")
        return f"ShortArrayToString({name})"

    def render(self) -> str:
        body = "\n".join(self.lines)
        return (
            "//+------------------------------------------------------------------+\n"
            f"void {self.name}(SigBridgeSelfTestResult &result)\n  {{\n{body}\n  }}\n"
        )


def _integer(value: int) -> str:
    if value == -(2**63):
        return "(-9223372036854775807-1)"
    return str(value)


def _double(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"golden doubles must be finite, received {value!r}")
    text = repr(float(value))
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("e" + exponent if exponent else "")


def _hex_constant(name: str) -> str:
    """An MQL5 expression for the vector's hex bytes."""
    return f"SigBridgeGoldenHex_{name}()"


def _render_request(vector: RequestVector) -> str:
    message = vector.message
    function = _Function(f"SigBridgeGoldenRequest_{vector.name}")
    function.add("MsgpackWriter writer;")
    label = function.text(vector.name)
    if message["type"] == "hello":
        function.add("SigBridgeHello hello;")
        for field, member in HELLO_MEMBERS.items():
            value = message[field]
            if isinstance(value, str):
                function.add(f"hello.{member}={function.text(value)};")
            elif isinstance(value, float):
                function.add(f"hello.{member}={_double(value)};")
            else:
                function.add(f"hello.{member}={_integer(value)};")
        call = f"SigBridgeBuildHello(writer,{_integer(message['id'])},hello)"
    elif message["type"] == "bars":
        count = len(message["time"])
        total = vector.leading + count + vector.trailing
        function.add("MqlRates rates[];")
        function.add(f"SelfTestCheck(result,ArrayResize(rates,{total})=={total},{label},\"resize rates\");")
        # Decoy bars around the vector's bars must not reach the output.
        for index in list(range(vector.leading)) + list(range(vector.leading + count, total)):
            for member in RATES_MEMBERS.values():
                value = "99.0" if member in ("open", "high", "low", "close") else "9"
                function.add(f"rates[{index}].{member}={value};")
        for row in range(count):
            index = vector.leading + row
            for column, member in RATES_MEMBERS.items():
                value = message[column][row]
                literal = _double(value) if isinstance(value, float) else _integer(value)
                if member == "time":
                    literal = f"(datetime){literal}"
                function.add(f"rates[{index}].{member}={literal};")
        symbol = function.text(message["symbol"])
        timeframe = function.text(message["timeframe"])
        call = (
            f"SigBridgeBuildBars(writer,{_integer(message['id'])},{symbol},{timeframe},rates,"
            f"{vector.leading},{count})"
        )
    elif message["type"] == "ping":
        call = f"SigBridgeBuildPing(writer,{_integer(message['id'])})"
    else:
        raise ValueError(f"no MQL5 builder for request type {message['type']!r}")
    function.add(f"SelfTestCheck(result,{call},{label},\"build\");")
    function.add(f"SelfTestExpectHex(result,{label},writer.toHex(),{_hex_constant(vector.name)});")
    return function.render()


def _render_reply(vector: ReplyVector) -> str:
    function = _Function(f"SigBridgeGoldenReply_{vector.name}")
    label = function.text(vector.name)
    function.add("SigBridgeReply reply;")
    function.add("string error=\"\";")
    function.add(f"bool parsed=SelfTestParseReply({_hex_constant(vector.name)},reply,error);")
    if not vector.valid:
        function.add(f"SelfTestCheck(result,!parsed,{label},\"accepted an invalid reply\");")
        return function.render()
    function.add(f"SelfTestCheck(result,parsed,{label},error);")
    function.add("if(!parsed)")
    function.add("   return;")
    for key, value in vector.message.items():
        if key == "v" or key in vector.ignored:
            continue
        if key not in REPLY_MEMBERS:
            raise KeyError(
                f"reply field {key!r} of vector {vector.name!r} has no SigBridgeReply member; add it to "
                "Replies.mqh and to REPLY_MEMBERS"
            )
        member, kind, flag = REPLY_MEMBERS[key]
        field_label = function.text(f"{vector.name}.{key}")
        if flag is not None:
            function.add(f"SelfTestExpectBool(result,{field_label},reply.{flag},{'false' if value is None else 'true'});")
            if value is None:
                continue
        if kind == "string":
            function.add(f"SelfTestExpectString(result,{field_label},reply.{member},{function.text(value)});")
        elif kind == "double":
            function.add(f"SelfTestExpectDouble(result,{field_label},reply.{member},{_double(value)});")
        else:
            function.add(f"SelfTestExpectLong(result,{field_label},(long)reply.{member},{_integer(value)});")
    return function.render()


def _render_primitive(vector: PrimitiveVector) -> str:
    function = _Function(f"SigBridgeGoldenPrimitive_{vector.name}")
    label = function.text(vector.name)
    writes: list[str] = [f"writer.writeArrayHeader({len(vector.values)});"]
    reads: list[str] = [f"SelfTestReadArrayHeader(result,reader,{label},{len(vector.values)});"]
    for value in vector.values:
        if value is None:
            writes.append("writer.writeNil();")
            reads.append(f"SelfTestReadNil(result,reader,{label});")
        elif isinstance(value, bool):
            literal = "true" if value else "false"
            writes.append(f"writer.writeBool({literal});")
            reads.append(f"SelfTestReadBool(result,reader,{label},{literal});")
        elif isinstance(value, int):
            writes.append(f"writer.writeInt({_integer(value)});")
            reads.append(f"SelfTestReadInt(result,reader,{label},{_integer(value)});")
        elif isinstance(value, float):
            writes.append(f"writer.writeDouble({_double(value)});")
            reads.append(f"SelfTestReadDouble(result,reader,{label},{_double(value)});")
        elif isinstance(value, str):
            if len(value) > 200 and len(set(value)) == 1:
                # A long run of one character: built at run time to keep the header short.
                expression = f"SelfTestRepeat(\"{value[0]}\",{len(value)})"
            else:
                expression = function.text(value)
            writes.append(f"writer.writeString({expression});")
            reads.append(f"SelfTestReadString(result,reader,{label},{expression});")
        else:
            # Containers are only skipped: the reader has no tree API, replies are flat.
            writes = []
            break
    if writes:
        function.add("MsgpackWriter writer;")
        for line in writes:
            function.add(line)
        function.add(f"SelfTestExpectHex(result,{label},writer.toHex(),{_hex_constant(vector.name)});")
        function.add("MsgpackReader reader;")
        function.add(f"if(!SelfTestOpenReader(result,reader,{label},{_hex_constant(vector.name)}))")
        function.add("   return;")
        for line in reads:
            function.add(line)
    else:
        function.add("MsgpackReader reader;")
        function.add(f"if(!SelfTestOpenReader(result,reader,{label},{_hex_constant(vector.name)}))")
        function.add("   return;")
        function.add(f"SelfTestReadArrayHeader(result,reader,{label},{len(vector.values)});")
        for value in vector.values:
            if isinstance(value, str):
                function.add(f"SelfTestReadString(result,reader,{label},{function.text(value)});")
            else:
                function.add(f"SelfTestCheck(result,reader.skip(),{label},reader.error());")
    function.add(f"SelfTestCheck(result,reader.atEnd(),{label},\"bytes left after the last value\");")
    return function.render()


def _render_hex(name: str, payload: bytes) -> str:
    """A function returning the hex of `payload`, 96 digits per statement to keep lines short."""
    text = payload.hex()
    lines = "".join(f'   hex+="{text[start : start + 96]}";\n' for start in range(0, len(text), 96))
    return f'string SigBridgeGoldenHex_{name}(void)\n  {{\n   string hex="";\n{lines}   return(hex);\n  }}\n'


def _box(*lines: str) -> str:
    """A MetaEditor-style comment box around `lines`."""
    rule = "//+" + "-" * 66 + "+\n"
    return rule + "".join(f"//| {line:<65}|\n" for line in lines) + rule


def render_header() -> str:
    """The full text of GoldenVectors.mqh."""
    parts = [
        _box(
            "GoldenVectors.mqh",
            "Generated by tests/mql5_harness/golden_vectors.py from the",
            "daemon's protocol module; do not edit. After a protocol change,",
            "run that file with --write.",
        ),
        "// Included by SelfTest.mqh, which defines the SelfTest... helpers.\n\n",
    ]
    for vector in (*REQUESTS, *REPLIES, *PRIMITIVES):
        payload = vector_bytes(vector.values if isinstance(vector, PrimitiveVector) else vector.message)
        parts.append(_render_hex(vector.name, payload))
    functions = [_render_request(vector) for vector in REQUESTS]
    functions += [_render_reply(vector) for vector in REPLIES]
    functions += [_render_primitive(vector) for vector in PRIMITIVES]
    parts.extend(functions)
    names = [f"SigBridgeGoldenRequest_{vector.name}" for vector in REQUESTS]
    names += [f"SigBridgeGoldenReply_{vector.name}" for vector in REPLIES]
    names += [f"SigBridgeGoldenPrimitive_{vector.name}" for vector in PRIMITIVES]
    calls = "\n".join(f"   {name}(result);" for name in names)
    parts.append(
        "//+------------------------------------------------------------------+\n"
        "//| Runs every golden vector check.                                  |\n"
        "//+------------------------------------------------------------------+\n"
        f"void SigBridgeGoldenRunAll(SigBridgeSelfTestResult &result)\n  {{\n{calls}\n  }}\n"
        "//+------------------------------------------------------------------+\n"
    )
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {HEADER_PATH.name} instead of comparing")
    arguments = parser.parse_args(argv)
    text = render_header()
    if arguments.write:
        HEADER_PATH.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {HEADER_PATH}")
        return 0
    current = HEADER_PATH.read_text(encoding="utf-8") if HEADER_PATH.exists() else ""
    if current != text:
        print(f"{HEADER_PATH} is out of date; run {Path(__file__).name} --write", file=sys.stderr)
        return 1
    print(f"{HEADER_PATH} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
