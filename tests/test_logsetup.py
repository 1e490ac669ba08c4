"""Log set-up: human and JSON lines, and the rate limit for repeated messages."""

import io
import json
import logging
import os

import pytest

from sigbridge.logsetup import JsonFormatter, RateLimitedLog, configure_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def record(message, *args, level=logging.INFO, exc_info=None):
    return logging.LogRecord("sigbridge.test", level, __file__, 1, message, args, exc_info)


def test_json_formatter_one_object_per_line():
    line = JsonFormatter().format(record("opened stream client=%s symbol=%s\nsecond line", "ea-1", "EURUSD"))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "sigbridge.test"
    assert entry["message"] == "opened stream client=ea-1 symbol=EURUSD\nsecond line"
    assert entry["time"].endswith("+00:00")


def test_json_formatter_copies_known_ids():
    entry = json.loads(JsonFormatter().format(record("listening endpoint=%s model_version=%s", "tcp://127.0.0.1:5555", 3)))
    assert entry["endpoint"] == "tcp://127.0.0.1:5555"
    assert entry["model_version"] == "3"


def test_json_formatter_ignores_unknown_keys():
    entry = json.loads(JsonFormatter().format(record("rejected: received level=%s", "x")))
    assert entry["level"] == "INFO"
    assert "x" not in entry.values()


def test_json_formatter_includes_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = json.loads(JsonFormatter().format(record("failed", level=logging.ERROR, exc_info=sys.exc_info())))
    assert "ValueError: boom" in entry["exception"]


def test_configure_logging_json(restore_root_logger):
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("sigbridge.test").info("started pid=%s", 42)
    logging.getLogger("sigbridge.test").debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "started pid=42"


def test_configure_logging_human(restore_root_logger):
    stream = io.StringIO()
    configure_logging("WARNING", "human", stream=stream)
    logging.getLogger("sigbridge.test").warning("slow disk path=%s", "/tmp")
    assert stream.getvalue().rstrip().endswith("WARNING sigbridge.test: slow disk path=/tmp")


def test_configure_logging_rejects_unknown_format():
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("INFO", "xml")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rate_limited_log_passes_burst_then_counts(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("sigbridge.test"), burst=3, interval=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="sigbridge.test"):
        passed = [limited.log(logging.WARNING, "client-a", "bad frame n=%s", number) for number in range(10)]
        clock.now = 61.0
        limited.log(logging.WARNING, "client-a", "bad frame n=%s", 10)
    assert passed == [True] * 3 + [False] * 7
    messages = [entry.getMessage() for entry in caplog.records]
    assert messages[:3] == ["bad frame n=0", "bad frame n=1", "bad frame n=2"]
    assert messages[3] == "bad frame n=10 (7 similar messages suppressed)"


def test_rate_limited_log_keys_apart(caplog):
    limited = RateLimitedLog(logging.getLogger("sigbridge.test"), burst=1, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="sigbridge.test"):
        assert limited.log(logging.WARNING, "a", "first")
        assert not limited.log(logging.WARNING, "a", "again")
        assert limited.log(logging.WARNING, "b", "other client")


def test_rate_limited_log_bounded_keys():
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("sigbridge.test"), burst=1, max_keys=100, clock=clock)
    for key in range(1000):
        limited.log(logging.ERROR, key, "message")
    assert len(limited._windows) <= 100


def test_configure_logging_journal_priorities(tmp_path, monkeypatch, restore_root_logger):
    with (tmp_path / "journal").open("w+") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        configure_logging("INFO", "human", stream=stream)
        logging.getLogger("sigbridge.test").warning("slow disk")
        logging.getLogger("sigbridge.test").error("failed")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines == ["<4>WARNING sigbridge.test: slow disk", "<3>ERROR sigbridge.test: failed"]


def test_configure_logging_journal_json(tmp_path, monkeypatch, restore_root_logger):
    with (tmp_path / "journal").open("w+") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        configure_logging("INFO", "json", stream=stream)
        logging.getLogger("sigbridge.test").info("started")
        stream.seek(0)
        line = stream.read().rstrip()
    assert line.startswith("<6>{")
    assert json.loads(line[3:])["message"] == "started"


def test_configure_logging_other_stream_not_journal(tmp_path, monkeypatch, restore_root_logger):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    stream = io.StringIO()
    configure_logging("INFO", "human", stream=stream)
    logging.getLogger("sigbridge.test").info("plain")
    assert not stream.getvalue().startswith("<")
