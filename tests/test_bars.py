"""Bar validation: the one-bar shortcut accepts and rejects exactly what the array checks do."""

import math

import numpy as np
import pytest

from sigbridge.bars import Bars, BarValidationError, validate_bars

GOOD = {"time": 1_750_000_000, "open": 1.1, "high": 1.2, "low": 1.0, "close": 1.15, "tick_volume": 10, "spread": 2, "volume": 0}


def one_bar(**changes):
    values = {**GOOD, **changes}
    return Bars.from_columns(**{name: [value] for name, value in values.items()})


def array_check_error(bars, after_time=None):
    """The error of the array checks alone, reached by validating the bar with a valid neighbour."""
    neighbour = Bars.from_columns(**{name: [value] for name, value in {**GOOD, "time": GOOD["time"] + 3600}.items()})
    try:
        validate_bars(bars.concat(neighbour), after_time=after_time)
    except BarValidationError as error:
        return error.column, error.row
    return None


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"open": math.nan},
        {"high": math.inf},
        {"low": 0.0},
        {"close": -1.0},
        {"high": 1.14},
        {"low": 1.11},
        {"tick_volume": -1},
        {"spread": -3},
        {"volume": -5},
        {"high": 1.15, "close": 1.15},
        {"low": 1.1, "open": 1.1},
    ],
)
def test_single_bar_matches_array_checks(changes):
    bars = one_bar(**changes)
    expected = array_check_error(bars)
    if expected is None:
        validate_bars(bars)
        return
    with pytest.raises(BarValidationError) as excinfo:
        validate_bars(bars)
    assert (excinfo.value.column, excinfo.value.row) == expected


def test_single_bar_after_time():
    bars = one_bar()
    validate_bars(bars, after_time=GOOD["time"] - 1)
    with pytest.raises(BarValidationError) as excinfo:
        validate_bars(bars, after_time=GOOD["time"])
    assert excinfo.value.column == "time"


def test_single_bar_error_names_value():
    with pytest.raises(BarValidationError, match="`low` must be a finite positive price, received low=nan"):
        validate_bars(one_bar(low=np.nan))
