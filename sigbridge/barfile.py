"""Loader for MetaTrader 5 bar exports in any common delimiter, encoding and header spelling.

The terminal's own export (File > Export bars) is tab-separated with the header
`<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>`. Files re-saved by a
spreadsheet or written by a script differ in delimiter, encoding, header spelling and date format.
Every error names the physical line (1-based, the header is line 1) and the column as written in
the header.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import itertools
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sigbridge.bars import Bars, BarValidationError, validate_bars

logger = logging.getLogger(__name__)

# Bar length in seconds per MetaTrader timeframe name; MN1 is a nominal 30 days.
TIMEFRAME_SECONDS: dict[str, int] = {
    **{f"M{minutes}": 60 * minutes for minutes in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)},
    **{f"H{hours}": 3600 * hours for hours in (1, 2, 3, 4, 6, 8, 12)},
    "D1": 86400,
    "W1": 604800,
    "MN1": 2592000,
}

# Header names after `_normalize_header`, mapped to column roles. The role "time" is the time of
# day when a date column exists. Otherwise a "time" column contains the whole bar time
# (role "datetime").
_HEADER_ROLES = {
    "date": "date",
    "time": "time",
    "datetime": "datetime",
    "timestamp": "datetime",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "tickvol": "tick_volume",
    "tickvolume": "tick_volume",
    "vol": "volume",
    "volume": "volume",
    "realvolume": "volume",
    "spread": "spread",
}
_PRICE_ROLES = ("open", "high", "low", "close")
_COUNT_ROLES = ("tick_volume", "volume", "spread")

# Column names assumed for a file without a header line, in the two accepted column orders.
_TERMINAL_HEADER = (
    "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>", "<VOL>", "<SPREAD>"
)
_DATETIME_HEADER = (
    "<DATETIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>", "<VOL>", "<SPREAD>"
)
_EXPECTED_COLUMNS = (
    "expected <DATE> and <TIME> (or one <DATETIME> column), <OPEN>, <HIGH>, <LOW>, <CLOSE>, "
    "and optionally <TICKVOL>, <VOL>, <SPREAD>"
)

_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma"}
_DATE_FORMATS = (
    (re.compile(r"\d{4}\.\d{1,2}\.\d{1,2}"), "%Y.%m.%d"),
    (re.compile(r"\d{4}-\d{1,2}-\d{1,2}"), "%Y-%m-%d"),
    (re.compile(r"\d{4}/\d{1,2}/\d{1,2}"), "%Y/%m/%d"),
    (re.compile(r"\d{8}"), "%Y%m%d"),
)
_CLOCK_FORMATS = (
    (re.compile(r"\d{1,2}:\d{2}:\d{2}"), "%H:%M:%S"),
    (re.compile(r"\d{1,2}:\d{2}"), "%H:%M"),
)
_DATETIME_PATTERN = re.compile(r"([0-9./-]+)(?:([ T])([0-9:]+))?")
_EXPECTED_DATE = "a date such as 2025.06.23, 2025-06-23, 2025/06/23 or 20250623"
_EXPECTED_CLOCK = "a time such as 00:00:00 or 00:00"

# `_time_format` result for a column of integer Unix seconds. Values from 2100 on are rejected
# because they are almost certainly milliseconds.
_UNIX_SECONDS = "unix seconds"
_MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01 00:00:00 UTC

_NAME_TOKEN = re.compile(r"[^_.\- ]+")


class BarFileError(ValueError):
    """Raised when a bar file cannot be read; the message starts with the file, line and column.

    Attributes:
        path: the file path, or the `source` given to `parse_bars`.
        line: 1-based physical line of the problem, counting the header as line 1, or None when
            the problem concerns the whole file.
        column: the column name as written in the header, or None. A file without a header
            gets the terminal's names, such as <HIGH>, or <DATETIME> for a single time column.
    """

    def __init__(
        self, detail: str, *, path: str, line: int | None = None, column: str | None = None
    ) -> None:
        where = path if line is None else f"{path} line {line}"
        if column is not None:
            where = f"{where}, column {column}"
        super().__init__(f"{where}: {detail}")
        self.path = path
        self.line = line
        self.column = column


@dataclasses.dataclass(frozen=True)
class BarFile:
    """Bars loaded from a file, with the format details detected on the way.

    `digits` is the largest number of decimal places in the open, high, low and close text, and
    `point` is 10**-digits. `symbol` and `timeframe` are guessed from the file name, and both are
    None unless the name contains a MetaTrader timeframe name after the symbol.
    """

    bars: Bars
    digits: int
    point: float
    delimiter: str
    encoding: str
    symbol: str | None
    timeframe: str | None


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Column position and header name per role: "datetime" (or "date" and "time"), "open", ..."""

    index: dict[str, int]
    names: dict[str, str]


@dataclasses.dataclass(frozen=True)
class _Table:
    """Data lines split into text columns, with what error messages need to point at a line."""

    source: str
    layout: _Layout
    columns: list[list[str]]
    line_numbers: list[int]  # physical line number per bar row
    has_decimal_comma: bool  # a comma occurs in the text and is not the delimiter

    def column(self, role: str) -> list[str]:
        return self.columns[self.layout.index[role]]

    def error(self, row: int, role: str, detail: str) -> BarFileError:
        line = self.line_numbers[row]
        return BarFileError(detail, path=self.source, line=line, column=self.layout.names[role])


def read_bars(path: str | os.PathLike, *, validate: bool = True) -> BarFile:
    """Read a bar export, detecting encoding, delimiter, header and date format.

    Args:
        path: the file to read.
        validate: check the bars with `validate_bars` (finite positive prices, consistent OHLC,
            strictly increasing time).

    Returns:
        The bars with the detected digits, delimiter and encoding, and the symbol and timeframe
        guessed from the file name.

    Raises:
        BarFileError: for undecodable text, an unknown layout, an unparsable field, or bars that
            fail validation; it names the line and column.
        OSError: when the file cannot be read.
    """
    source = os.fsdecode(path)
    with open(path, "rb") as file:
        data = file.read()
    text, encoding = _decode(data, source)
    bars, digits, delimiter = parse_bars(text, source=source, validate=validate)
    symbol, timeframe = _guess_symbol_and_timeframe(source)
    logger.debug(
        "loaded bar file path=%s symbol=%s timeframe=%s bars=%d digits=%d encoding=%s",
        source, symbol, timeframe, len(bars), digits, encoding,
    )
    return BarFile(
        bars=bars,
        digits=digits,
        point=10.0**-digits,
        delimiter=delimiter,
        encoding=encoding,
        symbol=symbol,
        timeframe=timeframe,
    )


def parse_bars(
    text: str, *, source: str = "<text>", validate: bool = True
) -> tuple[Bars, int, str]:
    """Parse already-decoded bar text.

    Bar times are read as written (broker server time) and converted to seconds since the epoch
    as if they were UTC, so no timezone shift is applied.

    Args:
        text: the file content, with CRLF, LF or CR line ends. Blank lines are skipped but
            still count as lines in error messages. Double quotes are removed.
        source: the name used in error messages, usually the file path.
        validate: check the bars with `validate_bars`.

    Returns:
        (bars, digits, delimiter), where digits is the largest number of decimal places in the
        open, high, low and close text.

    Raises:
        BarFileError: naming the line and column of the first problem.
    """
    table, delimiter = _split_table(text, source)

    # Prices: a decimal comma is accepted when the delimiter is not a comma.
    prices = {}
    for role in _PRICE_ROLES:
        values = table.column(role)
        if table.has_decimal_comma and any("," in value for value in values):
            values = [value.replace(",", ".") for value in values]
        prices[role] = values
    digits = max(_decimal_places(values) for values in prices.values())

    # Numbers and times; missing volume and spread columns become zeros in `Bars.from_columns`.
    numbers = {role: _parse_floats(table, role, values) for role, values in prices.items()}
    for role in _COUNT_ROLES:
        if role in table.layout.index:
            numbers[role] = _parse_integers(table, role, table.column(role))
    bars = Bars.from_columns(time=_parse_times(table), **numbers)

    if validate:
        _validate(bars, table)
    return bars, digits, delimiter


def _split_table(text: str, source: str) -> tuple[_Table, str]:
    """Detect delimiter and header from the first non-blank line, then split every data line."""
    text = text.removeprefix("\ufeff").replace('"', "")
    if "\n" not in text:
        text = text.replace("\r", "\n")
    lines = [line.strip(" \r") for line in text.split("\n")]
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        example = "\t".join(_TERMINAL_HEADER)
        raise BarFileError(
            f"the file is empty; expected a header line such as {example!r} followed by one bar "
            "per line",
            path=source,
        )

    # The first field of the first line decides: a bar time means there is no header.
    first_number, first_line = numbered[0]
    delimiter = _detect_delimiter(first_line, source, first_number)
    first_fields = [field.strip() for field in first_line.split(delimiter)]
    if _time_format(first_fields[0]) is None:
        layout = _header_layout(first_fields, source, first_number)
        numbered = numbered[1:]
        if not numbered:
            raise BarFileError(
                "the file has a header but no bars; export at least one bar", path=source
            )
    else:
        layout = _headerless_layout(first_fields, source, first_number)

    # Check the field count per line, then split all lines at once and slice out the columns.
    # For 100,000 lines this takes about half the time of a list per line.
    data_lines = [line for _, line in numbered]
    width = len(first_fields)
    delimiter_counts = list(map(str.count, data_lines, itertools.repeat(delimiter)))
    if min(delimiter_counts) != width - 1 or max(delimiter_counts) != width - 1:
        row = next(row for row, count in enumerate(delimiter_counts) if count != width - 1)
        number, line = numbered[row]
        raise BarFileError(
            f"expected {width} fields separated by {_DELIMITER_NAMES[delimiter]} as on line "
            f"{first_number}, found {delimiter_counts[row] + 1} in {line!r}; fix or remove the "
            "line",
            path=source,
            line=number,
        )
    fields = delimiter.join(data_lines).split(delimiter)
    # Spaces at the line ends are already stripped, so only spaces next to a delimiter remain.
    if f"{delimiter} " in text or f" {delimiter}" in text:
        fields = list(map(str.strip, fields))
    table = _Table(
        source=source,
        layout=layout,
        columns=[fields[position::width] for position in range(width)],
        line_numbers=[number for number, _ in numbered],
        has_decimal_comma=delimiter != "," and "," in text,
    )
    return table, delimiter


def _decode(data: bytes, source: str) -> tuple[str, str]:
    """Decode by byte order mark; UTF-16 without one is recognised by the NUL byte of ASCII text."""
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(data) >= 2 and data[0] and not data[1]:
        encoding = "utf-16-le"
    elif len(data) >= 2 and not data[0] and data[1]:
        encoding = "utf-16-be"
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        # A byte offset maps to a line only in UTF-8, where a newline is one byte.
        line = data[: exc.start].count(b"\n") + 1 if encoding.startswith("utf-8") else None
        raise BarFileError(
            f"invalid {encoding} text at byte {exc.start} ({exc.reason}); save the file as UTF-8 "
            "or as UTF-16 with a byte order mark",
            path=source,
            line=line,
        ) from exc


def _detect_delimiter(line: str, source: str, number: int) -> str:
    # A tab or semicolon never occurs inside a value but a comma can (decimal comma), so it is last.
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return delimiter
    raise BarFileError(
        f"no delimiter found in {line!r}; expected columns separated by tab, comma or semicolon",
        path=source,
        line=number,
    )


def _time_format(text: str) -> str | None:
    """Return the strptime format of a date or date-time field, `_UNIX_SECONDS`, or None."""
    if text.isascii() and text.isdigit() and not _is_compact_date(text):
        return _UNIX_SECONDS
    match = _DATETIME_PATTERN.fullmatch(text)
    if match is None:
        return None
    date_text, separator, clock_text = match.groups()
    date_format = _first_format(_DATE_FORMATS, date_text)
    if date_format is None or clock_text is None:
        return date_format
    clock_format = _first_format(_CLOCK_FORMATS, clock_text)
    return None if clock_format is None else f"{date_format}{separator}{clock_format}"


def _is_compact_date(text: str) -> bool:
    return len(text) == 8 and _parses(text, "%Y%m%d")


def _parses(text: str, text_format: str) -> bool:
    try:
        datetime.datetime.strptime(text, text_format)
    except ValueError:
        return False
    return True


def _first_format(formats: Sequence[tuple[re.Pattern, str]], text: str) -> str | None:
    return next((fmt for pattern, fmt in formats if pattern.fullmatch(text)), None)


def _normalize_header(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().strip("<>").lower())


def _header_layout(names: list[str], source: str, number: int) -> _Layout:
    """Map header names to roles, rejecting repeated roles and missing required columns."""
    keys = [_normalize_header(name) for name in names]
    has_date = "date" in keys
    index: dict[str, int] = {}
    ignored = []
    for position, key in enumerate(keys):
        role = _HEADER_ROLES.get(key)
        if role == "time" and not has_date:
            role = "datetime"
        if role is None:
            ignored.append(names[position])
            continue
        if role in index:
            raise BarFileError(
                f"column {names[position]!r} repeats column {names[index[role]]!r}; keep one",
                path=source,
                line=number,
                column=names[position],
            )
        index[role] = position
    if "date" in index and "datetime" in index:
        raise BarFileError(
            f"columns {names[index['date']]!r} and {names[index['datetime']]!r} both give the bar "
            "time; keep either <DATE> and <TIME> or one <DATETIME>",
            path=source,
            line=number,
        )
    if "date" in index and "time" not in index:
        index["datetime"] = index.pop("date")  # a date alone, as some D1 exports have

    missing = [f"<{role.upper()}>" for role in _PRICE_ROLES if role not in index]
    if "datetime" not in index and "date" not in index:
        missing.insert(0, "<DATE> and <TIME>")
    if missing:
        found = ", ".join(repr(name) for name in names)
        raise BarFileError(
            f"missing column {', '.join(missing)}: found header {found}; {_EXPECTED_COLUMNS}",
            path=source,
            line=number,
        )
    if ignored:
        logger.warning("ignoring unknown columns path=%s columns=%s", source, ignored)
    return _Layout(index=index, names={role: names[position] for role, position in index.items()})


def _headerless_layout(fields: list[str], source: str, number: int) -> _Layout:
    """Choose one of the two accepted column orders for a file whose first line is a bar."""
    first_format = _time_format(fields[0])
    date_only = first_format != _UNIX_SECONDS and "%H" not in first_format
    if date_only and len(fields) > 1 and _first_format(_CLOCK_FORMATS, fields[1]) is not None:
        if len(fields) == len(_TERMINAL_HEADER):
            return _header_layout(list(_TERMINAL_HEADER), source, number)
    elif 5 <= len(fields) <= len(_DATETIME_HEADER):
        return _header_layout(list(_DATETIME_HEADER[: len(fields)]), source, number)
    raise BarFileError(
        f"the line starts with a bar time, so the file is read as having no header, but it has "
        f"{len(fields)} fields; without a header, expected the terminal's 9 columns "
        f"{' '.join(_TERMINAL_HEADER)}, or 5 to 8 columns {' '.join(_DATETIME_HEADER)}; "
        "otherwise add a header line",
        path=source,
        line=number,
    )


def _parse_times(table: _Table) -> np.ndarray:
    """Convert the date and time columns to int64 seconds, reading the text as UTC."""
    if "datetime" in table.layout.index:
        values = table.column("datetime")
        text_format = _time_format(values[0])
        if text_format is None:
            raise table.error(
                0,
                "datetime",
                f"expected {_EXPECTED_DATE}, optionally followed by {_EXPECTED_CLOCK}, or Unix "
                f"seconds, found {values[0]!r}",
            )
        if text_format == _UNIX_SECONDS:
            return _parse_unix_seconds(table, values)
    else:
        dates, clocks = table.column("date"), table.column("time")
        date_format = _first_format(_DATE_FORMATS, dates[0])
        if date_format is None:
            raise table.error(0, "date", f"expected {_EXPECTED_DATE}, found {dates[0]!r}")
        clock_format = _first_format(_CLOCK_FORMATS, clocks[0])
        if clock_format is None:
            raise table.error(0, "time", f"expected {_EXPECTED_CLOCK}, found {clocks[0]!r}")
        values = [f"{date} {clock}" for date, clock in zip(dates, clocks)]
        text_format = f"{date_format} {clock_format}"

    # The first bar fixes the format; a line written differently is reported, not guessed.
    parsed = pd.to_datetime(values, format=text_format, errors="coerce")
    bad = np.flatnonzero(parsed.isna())
    if bad.size:
        row = int(bad[0])
        if "datetime" in table.layout.index:
            raise table.error(
                row, "datetime", f"expected a bar time like {values[0]!r}, found {values[row]!r}"
            )
        if _parses(dates[row], date_format):
            raise table.error(
                row, "time", f"expected {_EXPECTED_CLOCK} like {clocks[0]!r}, found {clocks[row]!r}"
            )
        raise table.error(
            row, "date", f"expected {_EXPECTED_DATE} like {dates[0]!r}, found {dates[row]!r}"
        )
    return parsed.values.astype("datetime64[s]").astype(np.int64)


def _parse_unix_seconds(table: _Table, values: Sequence[str]) -> np.ndarray:
    seconds = _parse_integers(table, "datetime", values)
    late = np.flatnonzero(seconds >= _MAX_UNIX_SECONDS)
    if late.size:
        row = int(late[0])
        raise table.error(
            row,
            "datetime",
            f"expected Unix time in seconds, found {values[row]!r}, which is after 2100; "
            "divide milliseconds by 1000",
        )
    return seconds


def _parse_floats(table: _Table, role: str, values: Sequence[str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        pass
    # Slow path, only to find the first bad value.
    for row, value in enumerate(values):
        try:
            float(value)
        except ValueError:
            raise table.error(row, role, f"expected a number, found {value!r}") from None
    raise AssertionError("numpy rejected a column that float() accepts")


def _parse_integers(table: _Table, role: str, values: Sequence[str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    # Some tools write whole numbers as "644.0"; accept those and reject fractions.
    floats = _parse_floats(table, role, values)
    bad = np.flatnonzero(~np.isfinite(floats) | (floats != np.round(floats)))
    if bad.size:
        row = int(bad[0])
        raise table.error(row, role, f"expected a whole number, found {values[row]!r}")
    return floats.astype(np.int64)


def _decimal_places(values: Sequence[str]) -> int:
    # One regular expression pass over the joined column runs in C, unlike a loop per value.
    return max(map(len, re.findall(r"\.(\d*)", "\n".join(values))), default=0)


def _validate(bars: Bars, table: _Table) -> None:
    """Run `validate_bars` and re-raise its error with the physical line, header name and text."""
    try:
        validate_bars(bars)
    except BarValidationError as exc:
        role, detail = _describe_invalid_bar(exc, bars, table)
        raise table.error(exc.row, role, detail) from exc


def _describe_invalid_bar(
    exc: BarValidationError, bars: Bars, table: _Table
) -> tuple[str, str]:
    """Return the role and a message quoting the file text for a `validate_bars` error.

    `validate_bars` counts bars from 0 and prints parsed numbers, which a user cannot find in
    the file, so the message is rebuilt from the text. A rule not recognised here keeps the
    original message.
    """
    row, role = exc.row, exc.column
    if role == "time":
        role = "time" if "time" in table.layout.index else "datetime"
        return role, (
            f"bar time {_time_text(table, row)!r} must be later than "
            f"{_time_text(table, row - 1)!r} on line {table.line_numbers[row - 1]}; "
            "remove the duplicate bar or sort the file oldest first"
        )

    value = getattr(bars, role)[row]
    found = table.column(role)[row]
    if role in _PRICE_ROLES and not (np.isfinite(value) and value > 0):
        detail = f"expected a finite positive price, found {found!r}"
    elif role in ("high", "low"):
        bound = ">=" if role == "high" else "<="
        prices = " ".join(f"{name}={table.column(name)[row]}" for name in _PRICE_ROLES)
        detail = f"{role} must be {bound} open and close, found {prices}"
    elif role in _COUNT_ROLES and value < 0:
        detail = f"expected a value >= 0, found {found!r}"
    else:
        detail = str(exc)
    return role, f"{detail}; correct or remove the bar"


def _time_text(table: _Table, row: int) -> str:
    if "datetime" in table.layout.index:
        return table.column("datetime")[row]
    return f"{table.column('date')[row]} {table.column('time')[row]}"


def _guess_symbol_and_timeframe(path: str) -> tuple[str | None, str | None]:
    """Guess the symbol and timeframe from a file name such as EURUSD_H1.csv or EURUSD.m_H1.csv.

    The timeframe is the first name token after the leading one that is a MetaTrader timeframe
    name, in any case. The symbol is the text before it, upper-cased up to a broker suffix such as
    `.m`, which is kept as written. MetaTrader's own export names, such as
    EURUSD_H1_202506230000_202601211000.csv, match too.
    """
    stem = Path(path).stem
    tokens = list(_NAME_TOKEN.finditer(stem))
    for token in tokens[1:]:
        timeframe = token.group().upper()
        if timeframe in TIMEFRAME_SECONDS:
            symbol = stem[: token.start()].rstrip("_.- ")
            base, dot, suffix = symbol.partition(".")
            return base.upper() + dot + suffix, timeframe
    return None, None
