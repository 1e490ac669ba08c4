"""When a stream's model is due for retraining, counted in new closed bars and optionally in seconds.

The daemon's trainer thread, `serve --lockstep` and replay share this rule, so they retrain at
the same bars. Only the trainer thread also counts seconds: a wall clock would make a replay
depend on how fast it ran.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from sigbridge.config import RetrainingConfig

ModelKey = tuple[str, str]  # (symbol, timeframe)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The last retraining attempt of a stream: the time of its last bar and `time.monotonic()`."""

    bar_time: int
    started: float


def new_bar_count(times: np.ndarray, after: int | None) -> int:
    """Bars among `times` (ascending bar times) later than `after`; all of them when `after` is None."""
    if after is None:
        return len(times)
    return len(times) - int(np.searchsorted(times, after, side="right"))


class RetrainSchedule:
    """The last retraining attempt per symbol and timeframe, and the rule that makes a stream due.

    A stream is due when it holds `every_bars` bars newer than both the model's trained-until bar
    and the last attempt's last bar, or, with `count_seconds`, when `every_seconds` have passed
    since the last attempt (or since the stream was first checked) and it holds at least one newer
    bar. A failed or rejected attempt therefore waits for the next due point.

    Not thread-safe: one thread calls every method, `apply` included. The daemon's trainer calls
    them only from the thread that trains.
    """

    def __init__(self, retraining: RetrainingConfig, *, count_seconds: bool) -> None:
        self.count_seconds = count_seconds
        self._attempts: dict[ModelKey, Attempt] = {}
        self._first_checked: dict[ModelKey, float] = {}
        self.apply(retraining)

    def apply(self, retraining: RetrainingConfig) -> None:
        """Use the due points of `retraining` from the next check on, keeping each stream's last attempt."""
        self.every_bars = retraining.every_bars
        self.every_seconds = retraining.every_seconds if self.count_seconds else 0

    def reference_time(self, key: ModelKey, trained_until_time: int | None) -> int | None:
        """Return the bar time after which bars count as new for `key`."""
        attempt = self._attempts.get(key)
        candidates = [value for value in (trained_until_time, attempt and attempt.bar_time) if value is not None]
        return max(candidates) if candidates else None

    def is_due(
        self, key: ModelKey, times: np.ndarray, trained_until_time: int | None, now: float | None = None
    ) -> bool:
        """Return whether `key` is due, given the bar times its stream contains and its model's trained-until time."""
        fresh = new_bar_count(times, self.reference_time(key, trained_until_time))
        if self.every_bars and fresh >= self.every_bars:
            return True
        if not self.every_seconds or fresh == 0:
            return False
        now = time.monotonic() if now is None else now
        attempt = self._attempts.get(key)
        since = attempt.started if attempt else self._first_checked.setdefault(key, now)
        return now - since >= self.every_seconds

    def record_attempt(self, key: ModelKey, bar_time: int, now: float | None = None) -> None:
        """Note an attempt on bars up to `bar_time`, whatever its result."""
        self._attempts[key] = Attempt(bar_time, time.monotonic() if now is None else now)
