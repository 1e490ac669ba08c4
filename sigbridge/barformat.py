"""Format detection and column parsing for MetaTrader 5 bar exports.

`barfile` splits a file into lines and fields; this module decides which column is which and
turns the text fields into typed columns. Every error names the physical line and the column as
written in the header.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


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
PRICE_ROLES = ("open", "high", "low", "close")
COUNT_ROLES = ("tick_volume", "volume", "spread")

# Column names assumed for a file without a header line, in the two accepted column orders.
TERMINAL_HEADER = (
    "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>", "<VOL>", "<SPREAD>"
)
_DATETIME_HEADER = (
    "<DATETIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>", "<VOL>", "<SPREAD>"
)
_EXPECTED_COLUMNS = (
    "expected <DATE> and <TIME> (or one <DATETIME> column), <OPEN>, <HIGH>, <LOW>, <CLOSE>, "
    "and optionally <TICKVOL>, <VOL>, <SPREAD>"
)

DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma"}
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

# `time_format` result for a column of integer Unix seconds. Values from 2100 on are rejected
# because they are almost certainly milliseconds.
_UNIX_SECONDS = "unix seconds"
_MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01 00:00:00 UTC



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
class Layout:
    """Column position and header name per role: "datetime" (or "date" and "time"), "open", ..."""

    index: dict[str, int]
    names: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Table:
    """Data lines split into text columns, with what error messages need to point at a line."""

    source: str
    layout: Layout
    columns: list[list[str]]
    line_numbers: list[int]  # physical line number per bar row
    has_decimal_comma: bool  # a comma occurs in the text and is not the delimiter

    def column(self, role: str) -> list[str]:
        return self.columns[self.layout.index[role]]

    def error(self, row: int, role: str, detail: str) -> BarFileError:
        line = self.line_numbers[row]
        return BarFileError(detail, path=self.source, line=line, column=self.layout.names[role])


def detect_delimiter(line: str, source: str, number: int) -> str:
    # A tab or semicolon never occurs inside a value but a comma can (decimal comma), so it is last.
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return delimiter
    raise BarFileError(
        f"no delimiter found in {line!r}; expected columns separated by tab, comma or semicolon",
        path=source,
        line=number,
    )


def time_format(text: str) -> str | None:
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


def header_layout(names: list[str], source: str, number: int) -> Layout:
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

    missing = [f"<{role.upper()}>" for role in PRICE_ROLES if role not in index]
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
    return Layout(index=index, names={role: names[position] for role, position in index.items()})


def headerless_layout(fields: list[str], source: str, number: int) -> Layout:
    """Choose one of the two accepted column orders for a file whose first line is a bar."""
    first_format = time_format(fields[0])
    date_only = first_format != _UNIX_SECONDS and "%H" not in first_format
    if date_only and len(fields) > 1 and _first_format(_CLOCK_FORMATS, fields[1]) is not None:
        if len(fields) == len(TERMINAL_HEADER):
            return header_layout(list(TERMINAL_HEADER), source, number)
    elif 5 <= len(fields) <= len(_DATETIME_HEADER):
        return header_layout(list(_DATETIME_HEADER[: len(fields)]), source, number)
    raise BarFileError(
        f"the line starts with a bar time, so the file is read as having no header, but it has "
        f"{len(fields)} fields; without a header, expected the terminal's 9 columns "
        f"{' '.join(TERMINAL_HEADER)}, or 5 to 8 columns {' '.join(_DATETIME_HEADER)}; "
        "otherwise add a header line",
        path=source,
        line=number,
    )


def parse_times(table: Table) -> np.ndarray:
    """Convert the date and time columns to int64 seconds, reading the text as UTC."""
    if "datetime" in table.layout.index:
        values = table.column("datetime")
        text_format = time_format(values[0])
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


def _parse_unix_seconds(table: Table, values: Sequence[str]) -> np.ndarray:
    seconds = parse_integers(table, "datetime", values)
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


def parse_floats(table: Table, role: str, values: Sequence[str]) -> np.ndarray:
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


def parse_integers(table: Table, role: str, values: Sequence[str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    # Some tools write whole numbers as "644.0"; accept those and reject fractions.
    floats = parse_floats(table, role, values)
    bad = np.flatnonzero(~np.isfinite(floats) | (floats != np.round(floats)))
    if bad.size:
        row = int(bad[0])
        raise table.error(row, role, f"expected a whole number, found {values[row]!r}")
    return floats.astype(np.int64)


def decimal_places(values: Sequence[str]) -> int:
    # One regular expression pass over the joined column runs in C, unlike a loop per value.
    return max(map(len, re.findall(r"\.(\d*)", "\n".join(values))), default=0)
