"""The sigbridge wire protocol: msgpack maps over ZeroMQ, decoded and validated without sockets.

Every request is one msgpack map with the keys `v` (protocol version), `type` and `id` (the
client's request id, echoed in the reply) plus the fields of its type. docs/protocol.md is the
reference for clients; this module is the implementation it describes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import numpy as np

from sigbridge.bars import Bars
from sigbridge.daemon.codes import ErrorCode

PROTOCOL_VERSION = 1

# MetaTrader 5 timeframe names (ENUM_TIMEFRAMES without the PERIOD_ prefix).
TIMEFRAMES = (
    "M1", "M2", "M3", "M4", "M5", "M6", "M10", "M12", "M15", "M20", "M30",
    "H1", "H2", "H3", "H4", "H6", "H8", "H12", "D1", "W1", "MN1",
)

MAX_ID = 2**63 - 1
MAX_NAME_LENGTH = 64
# Brokers' server time is UTC plus at most 14 hours (and minus at most 12).
MAX_UTC_OFFSET_SECONDS = 14 * 3600
# Arrays and maps one frame may hold. A request is one map with at most 10 arrays (the bar
# columns). The limit stops a frame of many tiny containers, because those cost far more memory
# as Python objects than as bytes.
MAX_CONTAINERS = 32
# Highest accepted price. Bitcoin quoted in Indonesian rupiah or Vietnamese dong trades around
# 1e9 to 3e9, and features of prices below this limit stay finite in the model's float32.
MAX_PRICE = 1e12


class ProtocolError(Exception):
    """Raised for a request that cannot be applied; becomes an `error` reply.

    Attributes:
        code: the `ErrorCode` sent to the client.
        field: the offending field, when one is to blame.
        request_id: the request's `id` when it could be read, else None.
        row: index of the offending bar in a `bars` request's columns, when one bar is to blame.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        request_id: int | None = None,
        row: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.request_id = request_id
        self.row = row

    @property
    def message(self) -> str:
        return str(self)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds applied while decoding, so a hostile frame cannot exhaust memory."""

    max_message_bytes: int = 16 * 1024 * 1024
    max_bars_per_message: int = 100_000


@dataclasses.dataclass(frozen=True)
class Hello:
    id: int
    client: str
    symbol: str
    timeframe: str
    digits: int
    point: float
    utc_offset: int


@dataclasses.dataclass(frozen=True)
class BarsRequest:
    id: int
    symbol: str
    timeframe: str
    bars: Bars


@dataclasses.dataclass(frozen=True)
class Ping:
    id: int


@dataclasses.dataclass(frozen=True)
class Rollback:
    """Serve an older model bundle of a symbol and timeframe and pin it (a control request)."""

    id: int
    symbol: str
    timeframe: str
    version: int


@dataclasses.dataclass(frozen=True)
class Unpin:
    """Remove a pin: serve the newest bundle and resume retraining (a control request)."""

    id: int
    symbol: str
    timeframe: str


Request = Hello | BarsRequest | Ping | Rollback | Unpin

# Fields of each request type besides the envelope (`v`, `type`, `id`): name -> required.
REQUEST_FIELDS: dict[str, dict[str, bool]] = {
    "hello": {
        "client": True, "symbol": True, "timeframe": True,
        "digits": True, "point": True, "utc_offset": True,
    },
    "bars": {
        "symbol": True, "timeframe": True, "time": True, "open": True, "high": True,
        "low": True, "close": True, "tick_volume": True, "spread": True, "volume": False,
    },
    "ping": {},
    "rollback": {"symbol": True, "timeframe": True, "version": True},
    "unpin": {"symbol": True, "timeframe": True},
}
ENVELOPE_FIELDS = ("v", "type", "id")


def encode(message: dict[str, Any]) -> bytes:
    """Pack a reply or request map; floats stay float64 and strings UTF-8."""
    return msgpack.packb(message, use_bin_type=True, use_single_float=False)


def _unpack(payload: bytes, limits: Limits) -> Any:
    if len(payload) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"message of {len(payload)} bytes exceeds the limit of {limits.max_message_bytes} bytes; "
            "send the backfill in several `bars` messages",
        )
    # Arrays longer than one bar over the limit are refused while decoding; the bar-count check
    # in `_decode_bars` then names the field and the request id for a slightly longer array.
    count_container = _container_counter()
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_array_len=limits.max_bars_per_message + 1,
            max_map_len=64,
            max_str_len=1024,
            max_bin_len=0,
            max_ext_len=0,
            list_hook=count_container,
            object_hook=count_container,
        )
    except msgpack.ExtraData:
        raise ProtocolError(
            ErrorCode.MALFORMED, "frame holds more than one msgpack object; send one map per frame"
        ) from None
    except _TooManyContainers:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"frame holds more than {MAX_CONTAINERS} arrays and maps; a request is one map of bar columns",
        ) from None
    except msgpack.StackError:
        raise ProtocolError(
            ErrorCode.MALFORMED, "frame nests arrays or maps deeper than the decoder allows; send one flat map"
        ) from None
    except ValueError as error:
        # msgpack raises ValueError (and subclasses) for both bad bytes and exceeded limits.
        raise _decoding_error(str(error), limits) from None
    except Exception as error:  # msgpack's C unpacker raises a few non-ValueError types.
        raise ProtocolError(
            ErrorCode.MALFORMED, f"frame is not valid msgpack: {type(error).__name__}: {error}"
        ) from None


class _TooManyContainers(Exception):
    """Raised inside msgpack's decoder once a frame exceeds MAX_CONTAINERS."""


def _container_counter():
    """A list and object hook for `msgpack.unpackb` that stops after MAX_CONTAINERS containers."""
    count = 0

    def count_container(container):
        nonlocal count
        count += 1
        if count > MAX_CONTAINERS:
            raise _TooManyContainers
        return container

    return count_container


def _decoding_error(text: str, limits: Limits) -> ProtocolError:
    if "max_bin_len" in text or "max_ext_len" in text:
        return ProtocolError(
            ErrorCode.MALFORMED,
            f"frame holds a msgpack bin or ext value ({text}); send strings as msgpack str and "
            "times as integers",
        )
    if "max_array_len" in text:
        return ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"an array is too long ({text}); send at most {limits.max_bars_per_message} bars per message",
        )
    if "exceeds" in text:
        return ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"a string or map is too long ({text}); strings hold at most 1024 bytes and maps 64 entries",
        )
    return ProtocolError(ErrorCode.MALFORMED, f"frame is not valid msgpack: {text}")


def decode_request(payload: bytes, limits: Limits = Limits()) -> Request:
    """Decode and validate one request frame.

    Raises:
        ProtocolError: with the code, the field and, where readable, the request id.
    """
    message = _unpack(payload, limits)
    if not isinstance(message, dict):
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"a request must be a msgpack map, received {type(message).__name__}",
        )
    if any(not isinstance(key, str) for key in message):
        raise ProtocolError(ErrorCode.MALFORMED, "every key of a request map must be a msgpack str")
    request_id = message.get("id")
    readable_id = request_id if _is_int(request_id) and 0 <= request_id <= MAX_ID else None
    version = message.get("v")
    if not _is_int(version) or version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"unsupported protocol version v={version!r}; this server speaks v={PROTOCOL_VERSION}",
            field="v",
            request_id=readable_id,
        )
    if readable_id is None:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`id` must be an integer in [0, 2^63-1], received id={request_id!r}",
            field="id",
        )
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in REQUEST_FIELDS:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type={kind!r}; expected one of {sorted(REQUEST_FIELDS)}",
            field="type",
            request_id=request_id,
        )
    try:
        _check_field_names(message, REQUEST_FIELDS[kind], kind)
        if kind == "hello":
            return _decode_hello(message, request_id)
        if kind == "bars":
            return _decode_bars(message, request_id, limits)
        if kind == "rollback":
            return _decode_rollback(message, request_id)
        if kind == "unpin":
            return Unpin(id=request_id, symbol=_string(message, "symbol", 32), timeframe=_timeframe(message))
        return Ping(id=request_id)
    except ProtocolError as error:
        error.request_id = request_id
        raise


def _check_field_names(message: dict, fields: dict[str, bool], kind: str) -> None:
    for name, required in fields.items():
        if required and name not in message:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"`{kind}` is missing the required field `{name}`", field=name
            )
    extra = sorted(set(message) - set(fields) - set(ENVELOPE_FIELDS))
    if extra:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`{kind}` has unknown field(s) {extra}; expected only {sorted(fields)}",
            field=extra[0],
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(message: dict, name: str, max_length: int = MAX_NAME_LENGTH) -> str:
    value = message[name]
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`{name}` must be a non-empty string of at most {max_length} characters, "
            f"received {name}={value!r}",
            field=name,
        )
    if any(ord(char) < 32 for char in value):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"`{name}` must not contain control characters, received {value!r}", field=name
        )
    return value


def _timeframe(message: dict) -> str:
    value = message["timeframe"]
    if value not in TIMEFRAMES:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`timeframe` must be a MetaTrader timeframe name such as H1 or M15, received "
            f"timeframe={value!r}",
            field="timeframe",
        )
    return value


def _decode_rollback(message: dict, request_id: int) -> Rollback:
    version = message["version"]
    if not _is_int(version) or not 1 <= version <= MAX_ID:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`version` must be a model bundle version, an integer >= 1, received version={version!r}",
            field="version",
        )
    return Rollback(
        id=request_id, symbol=_string(message, "symbol", 32), timeframe=_timeframe(message), version=version
    )


def _decode_hello(message: dict, request_id: int) -> Hello:
    digits = message["digits"]
    if not _is_int(digits) or not 0 <= digits <= 10:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"`digits` must be an integer in [0, 10], received digits={digits!r}", field="digits"
        )
    point = message["point"]
    if isinstance(point, bool) or not isinstance(point, (int, float)) or not math.isfinite(point) or point <= 0:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"`point` must be a positive number such as 1e-05, received point={point!r}", field="point"
        )
    utc_offset = message["utc_offset"]
    if not _is_int(utc_offset) or abs(utc_offset) > MAX_UTC_OFFSET_SECONDS:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`utc_offset` must be the broker's server time minus UTC in whole seconds, within "
            f"+-{MAX_UTC_OFFSET_SECONDS}, received utc_offset={utc_offset!r}",
            field="utc_offset",
        )
    return Hello(
        id=request_id,
        client=_string(message, "client"),
        symbol=_string(message, "symbol", 32),
        timeframe=_timeframe(message),
        digits=digits,
        point=float(point),
        utc_offset=utc_offset,
    )


def _column(message: dict, name: str, *, integer: bool, size: int | None) -> np.ndarray:
    values = message[name]
    if not isinstance(values, list):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`{name}` must be an array of numbers (one per bar), received {type(values).__name__}",
            field=name,
        )
    if size is not None and len(values) != size:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"`{name}` has {len(values)} values but `time` has {size}; every column needs one value per bar",
            field=name,
        )
    expected = "integers" if integer else "numbers"
    # Checked per value: numpy would silently turn True into 1 inside a numeric array.
    for row, value in enumerate(values):
        if not _is_number(value, integer):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"`{name}` must contain only {expected}, received {value!r} at bar {row}",
                field=name,
                row=row,
            )
    if integer:
        outside = next((row for row, value in enumerate(values) if not -(2**63) <= value < 2**63), None)
        if outside is not None:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"`{name}` holds {values[outside]} at bar {outside}, which is outside int64",
                field=name,
                row=outside,
            )
    array = np.asarray(values)
    return array.astype(np.int64 if integer else np.float64)


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, (int, float))


def _decode_bars(message: dict, request_id: int, limits: Limits) -> BarsRequest:
    symbol = _string(message, "symbol", 32)
    timeframe = _timeframe(message)
    time = _column(message, "time", integer=True, size=None)
    if len(time) == 0:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "`time` is empty; send at least one closed bar", field="time")
    if len(time) > limits.max_bars_per_message:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"{len(time)} bars exceed the limit of {limits.max_bars_per_message} per message; split the backfill",
            field="time",
        )
    columns = {"time": time}
    for name in ("open", "high", "low", "close"):
        columns[name] = _column(message, name, integer=False, size=len(time))
    for name in ("tick_volume", "spread"):
        columns[name] = _column(message, name, integer=True, size=len(time))
    if "volume" in message:
        columns["volume"] = _column(message, "volume", integer=True, size=len(time))
    return BarsRequest(id=request_id, symbol=symbol, timeframe=timeframe, bars=Bars.from_columns(**columns))
