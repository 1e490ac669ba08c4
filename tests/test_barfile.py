"""Tests for sigbridge.barfile on real files written byte for byte under tmp_path."""

from __future__ import annotations

import calendar
import codecs
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from sigbridge.barfile import TIMEFRAME_SECONDS, BarFileError, parse_bars, read_bars

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
HEADER = "<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>".split()
FIRST_TIME = 1_750_636_800  # 2025.06.23 00:00:00 read as UTC


def make_rows(count: int = 3) -> list[list[str]]:
    """Build hourly bars in the terminal's column order from 2025.06.23 00:00.

    Closes are 1.14001, 1.14002, ..., tick volumes 100, 101, ... and spreads 7, 8, ...
    """
    rows = []
    for i in range(count):
        close = 1.14 + (i + 1) * 0.00001
        hour = time.gmtime(FIRST_TIME + 3600 * i)
        rows.append(
            [
                time.strftime("%Y.%m.%d", hour),
                time.strftime("%H:%M:%S", hour),
                f"{close - 0.0002:.5f}",
                f"{close + 0.001:.5f}",
                f"{close - 0.001:.5f}",
                f"{close:.5f}",
                str(100 + i),
                "0",
                str(7 + i),
            ]
        )
    return rows


def make_text(rows=None, header=HEADER, delimiter="\t", newline="\r\n") -> str:
    rows = make_rows() if rows is None else rows
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(row) for row in rows]
    return newline.join(lines) + newline


def write(tmp_path: Path, data: bytes | str, name: str = "EURUSD_H1.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_error(tmp_path: Path, data: bytes | str, name: str = "EURUSD_H1.csv") -> BarFileError:
    path = write(tmp_path, data, name)
    with pytest.raises(BarFileError) as excinfo:
        read_bars(path)
    return excinfo.value


def assert_reference_bars(bars) -> None:
    """Check bars against `make_rows()`."""
    assert len(bars) == 3
    assert bars.time.tolist() == [FIRST_TIME, FIRST_TIME + 3600, FIRST_TIME + 7200]
    assert bars.open.tolist() == [1.13981, 1.13982, 1.13983]
    assert bars.high.tolist() == [1.14101, 1.14102, 1.14103]
    assert bars.low.tolist() == [1.13901, 1.13902, 1.13903]
    assert bars.close.tolist() == [1.14001, 1.14002, 1.14003]


# Real samples.


def test_read_bars_eurusd_sample():
    path = DATA / "EURUSD_H1.csv"
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    first, last = lines[1].split("\t"), lines[-2].split("\t")

    bar_file = read_bars(path)

    assert len(bar_file.bars) == 3608
    assert bar_file.digits == 5
    assert bar_file.point == 1e-05
    assert bar_file.delimiter == "\t"
    assert bar_file.encoding == "utf-8"
    assert bar_file.symbol == "EURUSD"
    assert bar_file.timeframe == "H1"
    first_time = calendar.timegm(time.strptime(f"{first[0]} {first[1]}", "%Y.%m.%d %H:%M:%S"))
    last_time = calendar.timegm(time.strptime(f"{last[0]} {last[1]}", "%Y.%m.%d %H:%M:%S"))
    assert first_time == FIRST_TIME
    assert bar_file.bars.time[0] == first_time
    assert bar_file.bars.time[-1] == last_time
    assert bar_file.bars.close[0] == float(first[5])
    assert bar_file.bars.close[-1] == float(last[5])
    assert bar_file.bars.tick_volume[0] == int(first[6])
    assert bar_file.bars.spread[0] == int(first[8])


@pytest.mark.parametrize(
    ("name", "count"), [("EURUSD_H1.csv", 3608), ("GBPUSD_H1.csv", 3608), ("USDCHF_H1.csv", 3594)]
)
def test_read_bars_samples_count(name, count):
    bar_file = read_bars(DATA / name)
    assert len(bar_file.bars) == count
    assert bar_file.digits == 5


# Format variants.


@pytest.mark.parametrize("delimiter", ["\t", ",", ";"])
def test_read_bars_delimiter(tmp_path, delimiter):
    bar_file = read_bars(write(tmp_path, make_text(delimiter=delimiter)))
    assert bar_file.delimiter == delimiter
    assert_reference_bars(bar_file.bars)


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (lambda text: text.encode("utf-8"), "utf-8"),
        (lambda text: codecs.BOM_UTF8 + text.encode("utf-8"), "utf-8-sig"),
        (lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "utf-16"),
        (lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"), "utf-16"),
        (lambda text: text.encode("utf-16-le"), "utf-16-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le-no-bom"],
)
def test_read_bars_encoding(tmp_path, encoded, encoding):
    bar_file = read_bars(write(tmp_path, encoded(make_text())))
    assert bar_file.encoding == encoding
    assert_reference_bars(bar_file.bars)


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_read_bars_line_ends(tmp_path, newline):
    bars = read_bars(write(tmp_path, make_text(newline=newline))).bars
    assert_reference_bars(bars)


def test_read_bars_trailing_blank_lines(tmp_path):
    bars = read_bars(write(tmp_path, make_text() + "\r\n\r\n  \r\n")).bars
    assert_reference_bars(bars)


def test_read_bars_no_final_newline(tmp_path):
    bars = read_bars(write(tmp_path, make_text().rstrip("\r\n"))).bars
    assert_reference_bars(bars)


@pytest.mark.parametrize("name", ["<DATETIME>", "Date Time", "time", "TIMESTAMP", "<DATE>"])
def test_read_bars_datetime_column(tmp_path, name):
    rows = [[f"{row[0]} {row[1]}"] + row[2:] for row in make_rows()]
    text = make_text(rows, header=[name] + HEADER[2:], delimiter=",")
    bars = read_bars(write(tmp_path, text)).bars
    assert_reference_bars(bars)


@pytest.mark.parametrize(
    ("date_format", "clock_format"),
    [
        ("%Y-%m-%d", "%H:%M:%S"),
        ("%Y/%m/%d", "%H:%M:%S"),
        ("%Y%m%d", "%H:%M:%S"),
        ("%Y.%m.%d", "%H:%M"),
    ],
)
def test_read_bars_date_formats(tmp_path, date_format, clock_format):
    rows = make_rows()
    for i, row in enumerate(rows):
        hour = time.gmtime(FIRST_TIME + 3600 * i)
        row[0], row[1] = time.strftime(date_format, hour), time.strftime(clock_format, hour)
    bars = read_bars(write(tmp_path, make_text(rows))).bars
    assert_reference_bars(bars)


def test_read_bars_iso_datetime(tmp_path):
    rows = [[f"{row[0].replace('.', '-')}T{row[1]}"] + row[2:] for row in make_rows()]
    bars = read_bars(write(tmp_path, make_text(rows, header=["time"] + HEADER[2:]))).bars
    assert_reference_bars(bars)


def test_read_bars_unix_seconds(tmp_path):
    rows = [[str(FIRST_TIME + 3600 * i)] + row[2:] for i, row in enumerate(make_rows())]
    header = ["time", "open", "high", "low", "close", "tick_volume", "real_volume", "spread"]
    text = make_text(rows, header=header)
    bars = read_bars(write(tmp_path, text)).bars
    assert_reference_bars(bars)


def test_read_bars_date_only_column(tmp_path):
    rows = [["2025.06.23"] + make_rows()[0][2:6], ["2025.06.24"] + make_rows()[1][2:6]]
    bars = read_bars(write(tmp_path, make_text(rows, header=["<DATE>"] + HEADER[2:6]))).bars
    assert bars.time.tolist() == [FIRST_TIME, FIRST_TIME + 86400]


def test_read_bars_optional_columns_zero(tmp_path):
    rows = [row[:6] for row in make_rows()]
    bars = read_bars(write(tmp_path, make_text(rows, header=HEADER[:6]))).bars
    assert_reference_bars(bars)
    assert bars.tick_volume.tolist() == [0, 0, 0]
    assert bars.volume.tolist() == [0, 0, 0]
    assert bars.spread.tolist() == [0, 0, 0]
    assert bars.spread.dtype == np.int64


@pytest.mark.parametrize(
    "header",
    [
        ["date", "time", "open", "high", "low", "close", "tickvol", "vol", "spread"],
        ["Date", "Time", "Open", "High", "Low", "Close", "TICK_VOLUME", "VOLUME", "Spread"],
        ["DATE", "TIME", "OPEN", "HIGH", "LOW", "CLOSE", "TICK VOLUME", "REAL_VOLUME", "SPREAD"],
        ["<date>", "<time>", "<open>", "<high>", "<low>", "<close>", "<TickVolume>", "<Vol>"]
        + ["<spread>"],
    ],
    ids=["lowercase", "underscore", "space", "brackets-mixed-case"],
)
def test_read_bars_header_spellings(tmp_path, header):
    bars = read_bars(write(tmp_path, make_text(header=header, delimiter=","))).bars
    assert_reference_bars(bars)
    assert bars.tick_volume.tolist() == [100, 101, 102]
    assert bars.spread.tolist() == [7, 8, 9]


def test_read_bars_column_order(tmp_path):
    order = [8, 5, 0, 2, 7, 4, 3, 1, 6]
    rows = [[row[i] for i in order] for row in make_rows()]
    bars = read_bars(write(tmp_path, make_text(rows, header=[HEADER[i] for i in order]))).bars
    assert_reference_bars(bars)
    assert bars.tick_volume.tolist() == [100, 101, 102]
    assert bars.spread.tolist() == [7, 8, 9]


def test_read_bars_no_header_terminal_order(tmp_path):
    bars = read_bars(write(tmp_path, make_text(header=None))).bars
    assert_reference_bars(bars)
    assert bars.spread.tolist() == [7, 8, 9]


@pytest.mark.parametrize("width", [5, 6, 7, 8])
def test_read_bars_no_header_datetime_order(tmp_path, width):
    rows = [([f"{row[0]} {row[1]}"] + row[2:])[:width] for row in make_rows()]
    bars = read_bars(write(tmp_path, make_text(rows, header=None, delimiter=","))).bars
    assert_reference_bars(bars)
    assert bars.tick_volume.tolist() == ([100, 101, 102] if width >= 6 else [0, 0, 0])
    assert bars.spread.tolist() == ([7, 8, 9] if width == 8 else [0, 0, 0])


def test_read_bars_no_header_unix_seconds(tmp_path):
    rows = [[str(FIRST_TIME + 3600 * i)] + row[2:] for i, row in enumerate(make_rows())]
    bars = read_bars(write(tmp_path, make_text(rows, header=None, delimiter=","))).bars
    assert_reference_bars(bars)
    assert bars.volume.tolist() == [0, 0, 0]
    assert bars.spread.tolist() == [7, 8, 9]


def test_read_bars_decimal_comma(tmp_path):
    text = make_text(delimiter=";").replace("1.1", "1,1")
    bar_file = read_bars(write(tmp_path, text))
    assert bar_file.delimiter == ";"
    assert bar_file.digits == 5
    assert_reference_bars(bar_file.bars)


def test_read_bars_quoted_fields(tmp_path):
    rows = [[f'"{field}"' for field in row] for row in make_rows()]
    header = [f'"{name}"' for name in HEADER]
    bars = read_bars(write(tmp_path, make_text(rows, header=header, delimiter=","))).bars
    assert_reference_bars(bars)


def test_read_bars_padded_fields(tmp_path):
    bars = read_bars(write(tmp_path, make_text(delimiter=", "))).bars
    assert_reference_bars(bars)


def test_read_bars_float_tick_volume(tmp_path):
    rows = make_rows()
    rows[0][6] = "100.0"
    bars = read_bars(write(tmp_path, make_text(rows))).bars
    assert bars.tick_volume.tolist() == [100, 101, 102]


def test_read_bars_unknown_column_warns(tmp_path, caplog):
    rows = [row + ["x"] for row in make_rows()]
    path = write(tmp_path, make_text(rows, header=HEADER + ["<COMMENT>"]))
    with caplog.at_level(logging.WARNING, logger="sigbridge.barfile"):
        bars = read_bars(path).bars
    assert_reference_bars(bars)
    assert "<COMMENT>" in caplog.text


def test_read_bars_digits_max_decimals(tmp_path):
    rows = make_rows()
    rows[0][2:6] = ["1.1", "1.2", "1.1", "1.15"]
    bar_file = read_bars(write(tmp_path, make_text(rows)))
    assert bar_file.digits == 5
    assert bar_file.point == 1e-05


def test_read_bars_digits_three(tmp_path):
    rows = [row[:2] + ["157.120", "157.250", "157.005", "157.200"] + row[6:] for row in make_rows()]
    bar_file = read_bars(write(tmp_path, make_text(rows), "USDJPY_M15.csv"))
    assert bar_file.digits == 3
    assert bar_file.point == 0.001


def test_read_bars_validate_false(tmp_path):
    rows = make_rows()
    rows[1][3] = "1.00000"  # high below open and close
    bars = read_bars(write(tmp_path, make_text(rows)), validate=False).bars
    assert bars.high[1] == 1.0


def test_parse_bars_result():
    bars, digits, delimiter = parse_bars(make_text(delimiter=";"), source="memory")
    assert_reference_bars(bars)
    assert digits == 5
    assert delimiter == ";"


def test_parse_bars_bom_in_text():
    bars, _, _ = parse_bars("\ufeff" + make_text(delimiter=","))
    assert_reference_bars(bars)


def test_parse_bars_source_in_message():
    with pytest.raises(BarFileError) as excinfo:
        parse_bars("", source="memory")
    assert excinfo.value.path == "memory"
    assert str(excinfo.value).startswith("memory: ")


def test_read_bars_100k_lines_fast(tmp_path):
    start = np.datetime64("2025-06-23T00:00:00")
    stamps = np.datetime_as_string(start + np.arange(100_000) * np.timedelta64(1, "m"))
    values = "1.14565\t1.14745\t1.14501\t1.14721\t644\t0\t7"
    lines = [f"{stamp[:10].replace('-', '.')}\t{stamp[11:]}\t{values}" for stamp in stamps]
    path = write(tmp_path, "\r\n".join(["\t".join(HEADER)] + lines) + "\r\n", "EURUSD_M1.csv")
    started = time.perf_counter()
    bars = read_bars(path).bars
    elapsed = time.perf_counter() - started
    assert len(bars) == 100_000
    assert elapsed < 3.0


# File name guesses.


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe"),
    [
        ("EURUSD_H1.csv", "EURUSD", "H1"),
        ("EURUSD.H1.csv", "EURUSD", "H1"),
        ("eurusd-h1.txt", "EURUSD", "H1"),
        ("GBPUSD M15.csv", "GBPUSD", "M15"),
        ("XAUUSD_mn1.csv", "XAUUSD", "MN1"),
        ("EURUSD.m_H1.csv", "EURUSD.m", "H1"),
        ("eurusd.m-h1.csv", "EURUSD.m", "H1"),
        ("eur_usd_d1.csv", "EUR_USD", "D1"),
        ("EURUSD_H4_202506230000_202601211000.csv", "EURUSD", "H4"),
        ("EURUSD_H60.csv", None, None),
        ("EURUSD.csv", None, None),
        ("H1.csv", None, None),
    ],
)
def test_read_bars_name_guess(tmp_path, name, symbol, timeframe):
    bar_file = read_bars(write(tmp_path, make_text(), name))
    assert bar_file.symbol == symbol
    assert bar_file.timeframe == timeframe


def test_timeframe_seconds_names():
    expected = "M1 M2 M3 M4 M5 M6 M10 M12 M15 M20 M30 H1 H2 H3 H4 H6 H8 H12 D1 W1 MN1".split()
    assert list(TIMEFRAME_SECONDS) == expected
    assert TIMEFRAME_SECONDS["M1"] == 60
    assert TIMEFRAME_SECONDS["M20"] == 1200
    assert TIMEFRAME_SECONDS["H12"] == 43200
    assert TIMEFRAME_SECONDS["W1"] == 604800
    assert TIMEFRAME_SECONDS["MN1"] == 2592000


# Parse errors: line and column of the first problem, and the value found.


def test_error_bad_number(tmp_path):
    rows = make_rows(20)
    rows[15][3] = "1.1x"  # line 17 counting the header
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 17
    assert error.column == "<HIGH>"
    assert "EURUSD_H1.csv line 17, column <HIGH>: expected a number, found '1.1x'" in str(error)


def test_error_empty_price(tmp_path):
    rows = make_rows()
    rows[2][2] = ""
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 4
    assert error.column == "<OPEN>"
    assert "found ''" in str(error)


def test_error_fractional_tick_volume(tmp_path):
    rows = make_rows()
    rows[1][6] = "12.5"
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 3
    assert error.column == "<TICKVOL>"
    assert "expected a whole number, found '12.5'" in str(error)


def test_error_header_name_as_written(tmp_path):
    header = ["date", "time", "open", "High", "low", "close"]
    rows = [row[:6] for row in make_rows()]
    rows[1][3] = "?"
    error = read_error(tmp_path, make_text(rows, header=header, delimiter=","))
    assert error.column == "High"


@pytest.mark.parametrize("value", ["2025.13.40", "23.06.2025", "2025-06-23"])
def test_error_bad_date(tmp_path, value):
    rows = make_rows(5)
    rows[3][0] = value
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 5
    assert error.column == "<DATE>"
    assert repr(value) in str(error)


def test_error_bad_first_date(tmp_path):
    rows = make_rows()
    rows[0][0] = "Monday"
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 2
    assert error.column == "<DATE>"
    assert "'Monday'" in str(error)


@pytest.mark.parametrize("value", ["25:00:00", "01:00", "1h"])
def test_error_bad_time(tmp_path, value):
    rows = make_rows(5)
    rows[2][1] = value
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 4
    assert error.column == "<TIME>"
    assert repr(value) in str(error)


def test_error_bad_datetime(tmp_path):
    rows = [[f"{row[0]} {row[1]}"] + row[2:6] for row in make_rows()]
    rows[2][0] = "2025.06.23 2am"
    error = read_error(tmp_path, make_text(rows, header=["Date Time"] + HEADER[2:6]))
    assert error.line == 4
    assert error.column == "Date Time"
    assert "'2025.06.23 2am'" in str(error)


def test_error_unix_milliseconds(tmp_path):
    rows = [[str((FIRST_TIME + 3600 * i) * 1000)] + row[2:6] for i, row in enumerate(make_rows())]
    error = read_error(tmp_path, make_text(rows, header=["time"] + HEADER[2:6]))
    assert error.line == 2
    assert error.column == "time"
    assert "'1750636800000'" in str(error)


def test_error_missing_column(tmp_path):
    header = HEADER[:5] + HEADER[6:]
    rows = [row[:5] + row[6:] for row in make_rows()]
    error = read_error(tmp_path, make_text(rows, header=header))
    assert error.line == 1
    assert error.column is None
    assert "missing column <CLOSE>" in str(error)
    assert "'<TICKVOL>'" in str(error)


def test_error_missing_time(tmp_path):
    rows = [row[2:] for row in make_rows()]
    error = read_error(tmp_path, make_text(rows, header=HEADER[2:]))
    assert error.line == 1
    assert error.column is None
    assert "<DATE> and <TIME>" in str(error)
    assert "found header '<OPEN>'" in str(error)


def test_error_repeated_column(tmp_path):
    rows = [row + ["0"] for row in make_rows()]
    error = read_error(tmp_path, make_text(rows, header=HEADER + ["VOLUME"]))
    assert error.line == 1
    assert error.column == "VOLUME"
    assert "'<VOL>'" in str(error)


def test_error_empty_file(tmp_path):
    error = read_error(tmp_path, b"")
    assert error.line is None
    assert error.column is None
    assert "EURUSD_H1.csv: the file is empty" in str(error)


def test_error_blank_file(tmp_path):
    error = read_error(tmp_path, "\r\n \r\n")
    assert "the file is empty" in str(error)


def test_error_header_only(tmp_path):
    error = read_error(tmp_path, "\t".join(HEADER) + "\r\n")
    assert error.line is None
    assert "no bars" in str(error)


def test_error_field_count(tmp_path):
    rows = make_rows(10)
    del rows[6][8]  # line 8 counting the header
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 8
    assert error.column is None
    assert "expected 9 fields separated by tab as on line 1, found 8" in str(error)


def test_error_line_after_blank_line(tmp_path):
    rows = make_rows()
    rows[2][5] = "abc"
    text = make_text(rows).replace("\r\n", "\r\n\r\n", 2)  # blank lines 2 and 4
    error = read_error(tmp_path, text)
    assert error.line == 6


def test_error_line_in_utf16(tmp_path):
    rows = make_rows()
    rows[1][5] = "1.1x"
    error = read_error(tmp_path, codecs.BOM_UTF16_LE + make_text(rows).encode("utf-16-le"))
    assert error.line == 3
    assert error.column == "<CLOSE>"


def test_error_no_header_column_name(tmp_path):
    rows = make_rows()
    rows[2][3] = "x"
    error = read_error(tmp_path, make_text(rows, header=None))
    assert error.line == 3
    assert error.column == "<HIGH>"


def test_error_no_delimiter(tmp_path):
    error = read_error(tmp_path, "DATE TIME OPEN HIGH LOW CLOSE\r\n")
    assert error.line == 1
    assert "no delimiter found in 'DATE TIME OPEN HIGH LOW CLOSE'" in str(error)


def test_error_no_header_field_count(tmp_path):
    rows = [row[:8] for row in make_rows()]
    error = read_error(tmp_path, make_text(rows, header=None))
    assert error.line == 1
    assert "has 8 fields" in str(error)


def test_error_invalid_utf8(tmp_path):
    data = make_text().encode("utf-8").replace(b"1.14101", b"1.14\xff01")
    error = read_error(tmp_path, data)
    assert error.line == 2
    assert "invalid utf-8" in str(error)


# Validation errors mapped to the physical line and the header name.


def test_error_high_below_close(tmp_path):
    rows = make_rows(6)
    rows[3][3] = "1.13000"  # line 5
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 5
    assert error.column == "<HIGH>"
    assert "high must be >= open and close" in str(error)
    assert "1.13000" in str(error)


def test_error_low_above_open(tmp_path):
    rows = make_rows(6)
    rows[4][4] = "1.15000"
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 6
    assert error.column == "<LOW>"
    assert "low=1.15000" in str(error)


def test_error_nan_price(tmp_path):
    rows = make_rows()
    rows[1][2] = "nan"
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 3
    assert error.column == "<OPEN>"
    assert "expected a finite positive price, found 'nan'" in str(error)


def test_error_negative_spread(tmp_path):
    rows = make_rows()
    rows[2][8] = "-1"
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 4
    assert error.column == "<SPREAD>"
    assert "found '-1'" in str(error)


def test_error_duplicate_time(tmp_path):
    rows = make_rows(5)
    rows[3][1] = rows[2][1]  # line 5 repeats the time of line 4
    error = read_error(tmp_path, make_text(rows))
    assert error.line == 5
    assert error.column == "<TIME>"
    assert "'2025.06.23 02:00:00' must be later than '2025.06.23 02:00:00' on line 4" in str(error)


def test_error_time_backwards_datetime_column(tmp_path):
    rows = [[f"{row[0]} {row[1]}"] + row[2:6] for row in make_rows()]
    rows[1], rows[2] = rows[2], rows[1]
    error = read_error(tmp_path, make_text(rows, header=["Date Time"] + HEADER[2:6], delimiter=","))
    assert error.line == 4
    assert error.column == "Date Time"
