"""The MQL5 client's include files, compiled with g++ and run against the real daemon.

The golden-vector tests need only Python. The harness tests compile tests/mql5_harness once
(10 to 25 s measured on a 2-core x86 VM; the binary then stays in pytest's cache folder until a
source changes) and skip when g++ is missing. Each harness test drives the real SigBridgeClient
state machine through its process() and waitForSync() calls, with the chart history taken from
the bundled EURUSD H1 bars and the DEALER socket owned by the driver.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth

from conftest import TRAIN_BARS, RunningDaemon, start_daemon
from mql5_harness import golden_vectors
from mql5_harness.driver import Harness, HarnessError, build_harness, find_compiler
from mql5_harness.translate import TranslationError, translate_source
from sigbridge.client import SigBridgeClient, bars_message
from sigbridge.config import Config
from sigbridge.daemon import protocol
from sigbridge.daemon import replies as reply_builders
from sigbridge.daemon.codes import ErrorCode

PERIOD_H1 = 16385  # ENUM_TIMEFRAMES value of PERIOD_H1
INCLUDE_DIR = golden_vectors.REPOSITORY / "mql5_client" / "Include" / "SigBridge"
# Chart history: 300 bars ending near the end of the training span; the last one is forming.
FIRST_BAR = TRAIN_BARS - 300
CHART_BARS = 300


# ---------------------------------------------------------------------------------------------
# Golden vectors (Python only).


def test_golden_header_matches_generator():
    current = (INCLUDE_DIR / "GoldenVectors.mqh").read_text(encoding="utf-8")
    assert current == golden_vectors.render_header(), "run tests/mql5_harness/golden_vectors.py --write"


def test_golden_header_is_ascii():
    raw = (INCLUDE_DIR / "GoldenVectors.mqh").read_bytes()
    assert raw.isascii()


@pytest.mark.parametrize("vector", golden_vectors.REQUESTS, ids=lambda vector: vector.name)
def test_golden_request_decoded_by_daemon(vector):
    decoded = protocol.decode_request(protocol.encode(vector.message))
    assert decoded.id == vector.message["id"]
    if vector.message["type"] == "hello":
        assert decoded.client == vector.message["client"]
        assert decoded.point == vector.message["point"]
        assert decoded.utc_offset == vector.message["utc_offset"]
    if vector.message["type"] == "bars":
        for column in ("time", "open", "high", "low", "close", "tick_volume", "spread", "volume"):
            assert getattr(decoded.bars, column).tolist() == vector.message[column], column


@pytest.mark.parametrize("vector", golden_vectors.REQUESTS, ids=lambda vector: vector.name)
def test_golden_request_has_every_protocol_field(vector):
    kind = vector.message["type"]
    expected = set(protocol.ENVELOPE_FIELDS) | set(protocol.REQUEST_FIELDS[kind])
    assert set(vector.message) == expected


@pytest.mark.parametrize("vector", golden_vectors.REPLIES, ids=lambda vector: vector.name)
def test_golden_reply_round_trips_through_msgpack(vector):
    assert msgpack.unpackb(protocol.encode(vector.message), raw=False) == vector.message


def test_golden_replies_cover_every_reply_builder():
    covered = {vector.message["type"] for vector in golden_vectors.REPLIES if vector.valid}
    builders = {name.removesuffix("_reply") for name in dir(reply_builders) if name.endswith("_reply") and name != "_reply"}
    assert builders - covered == set(golden_vectors.REPLIES_NOT_PARSED)


def test_golden_vectors_match_encoder_byte_for_byte():
    header = (INCLUDE_DIR / "GoldenVectors.mqh").read_text(encoding="utf-8")
    vectors = [*golden_vectors.REQUESTS, *golden_vectors.REPLIES, *golden_vectors.PRIMITIVES]
    for vector in vectors:
        match = re.search(
            rf"string SigBridgeGoldenHex_{vector.name}\(void\)\n  {{\n   string hex=\"\";\n((?:   hex\+=\"[0-9a-f]*\";\n)*)",
            header,
        )
        assert match, f"no hex function for vector {vector.name}"
        stored = "".join(re.findall(r'hex\+="([0-9a-f]*)"', match.group(1)))
        source = vector.values if isinstance(vector, golden_vectors.PrimitiveVector) else vector.message
        assert stored == protocol.encode(source).hex(), vector.name


def test_protocol_error_codes_match_daemon():
    text = (INCLUDE_DIR / "Protocol.mqh").read_text(encoding="utf-8")
    declared = {name: int(value) for name, value in re.findall(r"SIGBRIDGE_ERROR_(\w+)=(\d+)", text)}
    declared.pop("NONE")
    assert declared == {code.name: int(code) for code in ErrorCode}


def test_mql5_sources_are_utf8_ascii():
    for path in sorted((golden_vectors.REPOSITORY / "mql5_client").rglob("*.mq[h5]")):
        raw = path.read_bytes()
        assert raw.isascii(), f"{path} has non-ASCII bytes; MetaEditor may read them in another code page"
        assert not raw.startswith(b"\xff\xfe"), f"{path} is UTF-16"


# ---------------------------------------------------------------------------------------------
# Translation step.


def test_translate_rewrites_array_syntax():
    source = "int Count(const uchar &bytes[],MqlRates &rates[])\n  {\n   string names[];\n   return(0);\n  }\n"
    translated = translate_source(source, "example.mqh")
    assert "int Count(const MqlArray<uchar> &bytes,MqlArray<MqlRates> &rates)" in translated
    assert "   MqlArray<string> names;" in translated


def test_translate_drops_property_and_input():
    translated = translate_source('#property strict\ninput int InpBars=5; // bars\n', "example.mq5")
    assert "#property" not in translated
    assert "int InpBars=5; // bars" in translated


def test_translate_leaves_comments_and_strings():
    source = 'string text="uchar &buf[]"; // uchar &buf[]\n'
    assert translate_source(source, "example.mqh").splitlines()[1] == source.rstrip("\n")


def test_translate_rejects_dll_imports():
    with pytest.raises(TranslationError, match="example.mqh:2"):
        translate_source('int x;\n#import "libzmq.dll"\n', "example.mqh")


# ---------------------------------------------------------------------------------------------
# Harness fixtures and helpers.


@pytest.fixture(scope="session")
def harness_binary(request) -> Path:
    if find_compiler() is None:
        pytest.skip("g++ not found: the MQL5 harness compiles the include files with g++ (apt-get install g++)")
    # pytest's cache folder keeps the binary between runs; a change to any source rebuilds it.
    return build_harness(request.config.cache.mkdir("mql5_harness"))


@pytest.fixture(scope="module")
def shared_daemon(fast_config, trained_models_dir, tmp_path_factory, eurusd):
    """One daemon with the trained EURUSD H1 bundle for the tests that need no special config.

    Each test uses its own client name, so their streams stay apart. The bundle is loaded here,
    because the daemon loads it on the first hello, which takes seconds.
    """
    config = fast_config.replace("paths", state_dir=tmp_path_factory.mktemp("shared_state"))
    shutil.copytree(trained_models_dir, config.paths.models_dir)
    running = start_daemon(config)
    warm_up(running.endpoint, eurusd)
    yield running
    running.stop()


@pytest.fixture
def client_name(request) -> str:
    """A client name of its own for each test, at most 64 characters as the protocol requires."""
    return "mql5-" + re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:59]


@pytest.fixture
def harness(harness_binary):
    running = Harness(harness_binary)
    yield running
    running.close()


def client_settings(endpoint: str, **changes) -> dict:
    settings = dict(
        endpoint=endpoint,
        client="mql5-harness",
        symbol="EURUSD",
        timeframe="H1",
        period=PERIOD_H1,
        digits=5,
        point=1e-05,
        utc_offset=10800,
        history_bars=1000,
        reply_timeout_ms=10000,
        backfill_timeout_ms=10000,
        reconnect_min_ms=100,
        reconnect_max_ms=400,
        poll_timeout_ms=20,
        status_refresh_ms=200,
    )
    settings.update(changes)
    return settings


def load_chart(harness: Harness, bars, first: int = FIRST_BAR, count: int = CHART_BARS) -> None:
    harness.chart("EURUSD", PERIOD_H1)
    for index in range(first, first + count):
        harness.add_bar(bars, index)


def synced(state: dict) -> bool:
    return state["state"] == "idle" and not state["unsent_bars"]


def signal_for(bar_time: int):
    def reached(state: dict) -> bool:
        return synced(state) and state["signal"] is not None and state["signal"]["bar_time"] == bar_time

    return reached


def sent_requests(harness: Harness, kind: str | None = None) -> list[dict]:
    messages = [msgpack.unpackb(frame, raw=False) for frame in harness.sent]
    return [message for message in messages if kind is None or message["type"] == kind]


def replies(harness: Harness) -> list[dict]:
    return [msgpack.unpackb(frame, raw=False) for frame in harness.received]


def sync_backfill(harness: Harness, eurusd, endpoint: str, **changes) -> dict:
    load_chart(harness, eurusd.bars)
    assert harness.init(**client_settings(endpoint, **changes))
    last_closed = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 2])
    return harness.run_until(signal_for(last_closed), timeout=60)


def free_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def start_daemon_at(config: Config, endpoint: str) -> RunningDaemon:
    """Like conftest's start_daemon with training off, but on a fixed endpoint, so a restart keeps
    the address."""
    from sigbridge.daemon.service import run_daemon

    config = config.replace("server", bind=endpoint)
    stop_event = threading.Event()
    ready = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_daemon(config, stop=stop_event, train=False, on_ready=lambda _bound: ready.set())
        except BaseException as error:  # surfaced below and through `errors`
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=target, name="test-daemon-fixed-port", daemon=True)
    thread.start()
    assert ready.wait(60), "daemon did not bind within 60 s"
    if errors:
        raise errors[0]
    return RunningDaemon(endpoint, config, stop_event, thread, errors)


def exchange_raw(endpoint: str, frames: list[bytes]) -> list[bytes]:
    """Send each frame on a DEALER socket and return the raw reply frames, in order."""
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    try:
        received = []
        for frame in frames:
            dealer.send(frame)
            assert dealer.poll(30000), "no reply from the daemon within 30 s"
            received.append(dealer.recv())
        return received
    finally:
        dealer.close()


def warm_up(endpoint: str, eurusd) -> None:
    """Load the EURUSD H1 bundle in a fresh daemon, which happens on the first hello for it."""
    with SigBridgeClient(endpoint, timeout=60) as client:
        client.hello(client="warm-up", symbol="EURUSD", timeframe="H1", digits=eurusd.digits, point=eurusd.point)


# ---------------------------------------------------------------------------------------------
# The include files in the harness, without a daemon.


def test_selftest_passes_every_golden_vector(harness):
    result = harness.call("selftest")
    assert result["failures"] == 0, harness.logs
    assert result["checks"] >= 200


def test_selftest_script_reports_success(harness):
    harness.call("script")
    assert harness.logs[-1].startswith("SigBridge self-test passed: ")


def test_timeframe_names_match_protocol(harness):
    names = harness.call("timeframes")["names"]
    assert names.pop(str(0)) == ""
    assert sorted(names.values()) == sorted(protocol.TIMEFRAMES)


def test_encoder_matches_python_on_real_bars(harness, eurusd):
    load_chart(harness, eurusd.bars, first=0, count=1500)
    for start, count, request_id in ((0, 1, 1), (10, 15, 2**16), (100, 1400, 2**40)):
        result = harness.call(f"encode_bars {request_id} {start} {count}")
        assert result["ok"]
        body = bars_message("EURUSD", "H1", eurusd.bars[start : start + count])
        body["volume"] = eurusd.bars.volume[start : start + count].tolist()
        expected = protocol.encode({"v": 1, "id": request_id, **body})
        assert result["hex"] == expected.hex(), (start, count)


def test_parser_rejects_every_truncation(harness):
    payload = protocol.encode(golden_vectors.REPLIES[1].message)
    for size in range(len(payload)):
        result = harness.decode(payload[:size])
        assert not result["ok"], size
        assert result["error"]
    assert harness.decode(payload)["ok"]


def test_parser_rejects_trailing_bytes(harness):
    payload = protocol.encode(golden_vectors.REPLIES[0].message) + b"\xc0"
    result = harness.decode(payload)
    assert not result["ok"]
    assert "follow the map" in result["error"]


def test_parser_survives_random_bytes(harness):
    generator = random.Random(7)
    base = protocol.encode(golden_vectors.REPLIES[2].message)
    for _ in range(300):
        mutated = bytearray(base)
        for _ in range(generator.randint(1, 4)):
            mutated[generator.randrange(len(mutated))] = generator.randrange(256)
        result = harness.decode(bytes(mutated))  # ASan and the bounds checks abort on a memory error
        assert result["ok"] or result["error"]
    harness.decode(bytes(generator.randrange(256) for _ in range(64)))


# ---------------------------------------------------------------------------------------------
# The client state machine against the daemon.


def test_client_backfills_closed_bars(harness, shared_daemon, client_name, eurusd):
    state = sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name)

    closed = eurusd.bars[FIRST_BAR : FIRST_BAR + CHART_BARS - 1]
    assert state["acknowledged_time"] == int(closed.time[-1])
    hello, backfill = sent_requests(harness)
    assert hello["type"] == "hello"
    assert hello["utc_offset"] == 10800
    decoded = protocol.decode_request(protocol.encode(backfill))
    for column in ("time", "open", "high", "low", "close", "tick_volume", "spread"):
        assert getattr(decoded.bars, column).tolist() == getattr(closed, column).tolist(), column
    assert state["daemon_state"] == "ready"
    assert state["model_version"] == 1


def test_client_signal_matches_reference_client(harness, shared_daemon, client_name, eurusd):
    state = sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name)

    closed = eurusd.bars[FIRST_BAR : FIRST_BAR + CHART_BARS - 1]
    with SigBridgeClient(shared_daemon.endpoint, timeout=30) as reference:
        reference.hello(client="python-reference", symbol="EURUSD", timeframe="H1", digits=5, point=1e-05)
        expected = reference.send_bars("EURUSD", "H1", closed)
    assert expected["type"] == "signal"
    assert state["signal"]["score"] == expected["score"]
    assert state["signal"]["distance"] == expected["distance"]
    assert state["signal"]["direction"] == expected["direction"]


def test_client_parses_every_reply_like_msgpack(harness, shared_daemon, client_name, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name)
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)
    harness.run_until(signal_for(int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1])), timeout=30)

    assert len(harness.received) >= 3
    for frame in harness.received:
        expected = msgpack.unpackb(frame, raw=False)
        parsed = harness.decode(frame)
        assert parsed["ok"], parsed["error"]
        for key, value in expected.items():
            if key != "v":
                assert parsed[key] == value, key


def test_client_splits_backfill_by_max_bars_per_message(harness, daemon_state, eurusd):
    running = start_daemon(daemon_state.replace("server", max_bars_per_message=100))
    try:
        sync_backfill(harness, eurusd, running.endpoint)
    finally:
        running.stop()
    sizes = [len(message["time"]) for message in sent_requests(harness, "bars")]
    assert sizes == [100, 100, 99]
    assert [reply["accepted"] for reply in replies(harness)[1:]] == [100, 100, 99]


def test_client_skips_bars_the_daemon_holds(harness_binary, shared_daemon, client_name, eurusd):
    first = Harness(harness_binary)
    try:
        sync_backfill(first, eurusd, shared_daemon.endpoint, client=client_name)
    finally:
        first.close()

    second = Harness(harness_binary)
    try:
        last_closed = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 2])
        state = sync_backfill(second, eurusd, shared_daemon.endpoint, client=client_name)
        welcome = replies(second)[0]
        bars_requests = sent_requests(second, "bars")
    finally:
        second.close()
    assert welcome["last_bar_time"] == last_closed
    # Only the last held bar is sent again, for its signal; the daemon counts it as a duplicate.
    assert [message["time"] for message in bars_requests] == [[last_closed]]
    assert replies(second)[-1]["duplicates"] == 1
    assert state["signal"]["bar_time"] == last_closed


def test_client_sends_each_closed_bar_once(harness, shared_daemon, client_name, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name)
    before = len(sent_requests(harness, "bars"))

    for offset in range(3):
        harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS + offset)
        closed_time = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1 + offset])
        state = harness.run_until(signal_for(closed_time), timeout=30)
        assert state["acknowledged_time"] == closed_time

    streamed = sent_requests(harness, "bars")[before:]
    expected = [[int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1 + offset])] for offset in range(3)]
    assert [message["time"] for message in streamed] == expected
    assert harness.call("take_signal")["new"]
    assert not harness.call("take_signal")["new"]


def test_client_tester_lockstep_waits_for_signal(harness, shared_daemon, client_name, eurusd):
    load_chart(harness, eurusd.bars)
    assert harness.init(**client_settings(shared_daemon.endpoint, client=client_name))
    result = harness.call("sync 30000")
    assert result["synced"]
    assert result["client"]["signal"]["bar_time"] == int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 2])

    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)
    result = harness.call("sync 10000")
    assert result["synced"]
    assert result["client"]["signal"]["bar_time"] == int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1])


def test_client_resends_bar_after_lost_request(harness, shared_daemon, client_name, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name, reply_timeout_ms=300)
    new_closed = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1])
    before = harness.state()
    harness.drop_next_send = True
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)

    state = harness.run_until(lambda state: state["timeouts"] == before["timeouts"] + 1, timeout=10)
    assert state["state"] == "disconnected"
    assert re.search(r"no reply to bars id=\d+ from .* within 300 ms", harness.logs[-2])
    state = harness.run_until(signal_for(new_closed), timeout=30)

    assert state["connects"] == before["connects"] + 1
    assert [message["time"] for message in sent_requests(harness, "bars")[-2:]] == [[new_closed], [new_closed]]
    assert replies(harness)[-1]["accepted"] == 1


def test_client_recovers_signal_after_lost_reply(harness, shared_daemon, client_name, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name, reply_timeout_ms=300)
    new_closed = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1])
    before = harness.state()
    harness.drop_next_reply = True
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)

    harness.run_until(lambda state: state["timeouts"] == before["timeouts"] + 1, timeout=10)
    state = harness.run_until(signal_for(new_closed), timeout=30)

    welcome = [reply for reply in replies(harness) if reply["type"] == "welcome"][-1]
    assert welcome["last_bar_time"] == new_closed
    # The daemon has the bar, so the client sends it once more only for its lost signal.
    assert sent_requests(harness, "bars")[-1]["time"] == [new_closed]
    assert replies(harness)[-1]["duplicates"] == 1
    assert state["connects"] == before["connects"] + 1


def test_client_reconnects_after_daemon_restart(harness, daemon_state, eurusd):
    endpoint = free_endpoint()
    running = start_daemon_at(daemon_state, endpoint)
    try:
        warm_up(endpoint, eurusd)
        sync_backfill(harness, eurusd, endpoint, reply_timeout_ms=400)
    finally:
        running.stop()

    # The daemon is down: the new bar times out, then each hello does, with a growing delay.
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)
    slowest = 0.0
    deadline = time.monotonic() + 20
    state = harness.state()
    while state["timeouts"] < 3:
        assert time.monotonic() < deadline, f"expected 3 timeouts, state {state}"
        started = time.monotonic()
        state = harness.process()
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 0.25, "process() blocked the event handler while the daemon was down"
    delays = [int(match) for line in harness.logs for match in re.findall(r"reconnecting to .* in (\d+) ms", line)]
    assert delays[-3:] == [100, 200, 400]

    restarted = start_daemon_at(daemon_state, endpoint)
    try:
        warm_up(endpoint, eurusd)
        sent_before = len(harness.sent)
        received_before = len(harness.received)
        new_closed = int(eurusd.bars.time[FIRST_BAR + CHART_BARS - 1])
        state = harness.run_until(signal_for(new_closed), timeout=30)
        with SigBridgeClient(endpoint, timeout=30) as reference:
            welcome = reference.hello(client="mql5-harness", symbol="EURUSD", timeframe="H1", digits=5, point=1e-05)
    finally:
        restarted.stop()
    # The welcome after the restart gives the last bar the daemon kept; the client sends the rest.
    rejoined = msgpack.unpackb(harness.received[received_before], raw=False)
    assert rejoined["type"] == "welcome"
    kept = rejoined["last_bar_time"] or 0
    chart_closed = eurusd.bars.time[FIRST_BAR : FIRST_BAR + CHART_BARS].tolist()
    resent = [msgpack.unpackb(frame, raw=False) for frame in harness.sent[sent_before:]]
    resent_times = [time for message in resent if message["type"] == "bars" for time in message["time"]]
    assert resent_times == [time for time in chart_closed if time > kept]
    assert welcome["bars_held"] == CHART_BARS
    assert welcome["last_bar_time"] == new_closed
    assert state["reconnect_delay_ms"] == 100


def test_client_halves_too_large_backfill(harness, daemon_state, eurusd):
    running = start_daemon(daemon_state.replace("server", max_message_bytes=8192))
    try:
        warm_up(running.endpoint, eurusd)
        sync_backfill(harness, eurusd, running.endpoint)
    finally:
        running.stop()
    errors = [reply for reply in replies(harness) if reply["type"] == "error"]
    assert [reply["name"] for reply in errors] == ["MESSAGE_TOO_LARGE"]
    sizes = [len(message["time"]) for message in sent_requests(harness, "bars")]
    assert sizes == [299, 149, 149, 1]
    assert sum(reply.get("accepted", 0) for reply in replies(harness)) == CHART_BARS - 1


def test_client_halves_backfill_after_timeout(harness, shared_daemon, client_name, eurusd):
    # A frame far above the daemon's limit is dropped by ZeroMQ without a reply; a lost
    # multi-bar message looks the same to the client.
    harness.drop_next_send = lambda frame: msgpack.unpackb(frame, raw=False)["type"] == "bars"
    state = sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name, backfill_timeout_ms=300)
    sizes = [len(message["time"]) for message in sent_requests(harness, "bars")]
    assert sizes == [299, 149, 149, 1]
    assert state["chunk_bars"] == 149
    assert state["timeouts"] == 1


def test_client_skips_invalid_bar(harness, shared_daemon, client_name, eurusd):
    bars = eurusd.bars[FIRST_BAR : FIRST_BAR + CHART_BARS]
    harness.chart("EURUSD", PERIOD_H1)
    bad = 120
    for index in range(CHART_BARS):
        if index == bad:
            # high below the open: the daemon rejects it as INVALID_BAR.
            harness.call(
                f"bar {int(bars.time[index])} {float(bars.open[index])!r} {float(bars.open[index]) - 0.001!r} "
                f"{float(bars.low[index]) - 0.002!r} {float(bars.close[index])!r} 10 1 0"
            )
        else:
            harness.add_bar(bars, index)
    assert harness.init(**client_settings(shared_daemon.endpoint, client=client_name))
    state = harness.run_until(signal_for(int(bars.time[-2])), timeout=60)

    assert any("skipping the bar at" in line for line in harness.logs)
    errors = [reply for reply in replies(harness) if reply["type"] == "error"]
    assert {reply["name"] for reply in errors} == {"INVALID_BAR"}
    assert state["last_error_code"] == ErrorCode.INVALID_BAR
    with SigBridgeClient(shared_daemon.endpoint, timeout=30) as reference:
        welcome = reference.hello(client=client_name, symbol="EURUSD", timeframe="H1", digits=5, point=1e-05)
    assert welcome["bars_held"] == CHART_BARS - 2


def test_client_rejoins_after_stream_takeover(harness, shared_daemon, client_name, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=client_name)
    # A second connection with the same client name takes the stream over and sends the next bar.
    with SigBridgeClient(shared_daemon.endpoint, timeout=30) as other:
        other.hello(client=client_name, symbol="EURUSD", timeframe="H1", digits=5, point=1e-05)
        other.send_bars("EURUSD", "H1", eurusd.bars[FIRST_BAR + CHART_BARS - 1 : FIRST_BAR + CHART_BARS])
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS)
    harness.add_bar(eurusd.bars, FIRST_BAR + CHART_BARS + 1)

    state = harness.run_until(lambda state: state["last_error_code"] == ErrorCode.UNKNOWN_STREAM, timeout=10)
    assert state["state"] == "disconnected"
    assert any("give each EA its own client name" in line for line in harness.logs)
    newest = int(eurusd.bars.time[FIRST_BAR + CHART_BARS])
    harness.run_until(signal_for(newest), timeout=30)
    # After the new welcome only the bar the other connection did not send goes out.
    assert sent_requests(harness, "bars")[-1]["time"] == [newest]


def test_client_sends_unicode_client_name(harness, shared_daemon, eurusd):
    sync_backfill(harness, eurusd, shared_daemon.endpoint, client=golden_vectors.UNICODE_NAME)
    with SigBridgeClient(shared_daemon.endpoint, timeout=30) as reference:
        welcome = reference.hello(
            client=golden_vectors.UNICODE_NAME, symbol="EURUSD", timeframe="H1", digits=5, point=1e-05
        )
    assert welcome["bars_held"] == CHART_BARS - 1


def test_client_connects_with_curve(harness_binary, daemon_state, eurusd, tmp_path):
    from sigbridge.daemon.security import write_key_pair

    server_public, server_secret = write_key_pair(tmp_path / "server", "server")
    allowed_public, allowed_secret = write_key_pair(tmp_path / "ea", "ea-terminal")
    _stranger_public, stranger_secret = write_key_pair(tmp_path / "stranger", "stranger")
    clients = tmp_path / "clients"
    clients.mkdir()
    shutil.copy(allowed_public, clients)
    config = daemon_state.replace(
        "security", curve_secret_key=str(server_secret), curve_client_keys=str(clients)
    )
    server_key = zmq.auth.load_certificate(server_public)[0].decode()

    def curve_settings(secret_file: Path) -> dict:
        public_key, secret_key = zmq.auth.load_certificate(secret_file)
        return dict(curve_server_key=server_key, curve_public_key=public_key.decode(), curve_secret_key=secret_key.decode())

    running = start_daemon(config)
    allowed = Harness(harness_binary)
    stranger = Harness(harness_binary)
    try:
        state = sync_backfill(allowed, eurusd, running.endpoint, **curve_settings(allowed_secret))
        load_chart(stranger, eurusd.bars, count=10)
        assert stranger.init(**client_settings(running.endpoint, reply_timeout_ms=300, **curve_settings(stranger_secret)))
        rejected = stranger.run_until(lambda state: state["timeouts"] >= 1, timeout=10)
    finally:
        allowed.close()
        stranger.close()
        running.stop()
    assert state["daemon_state"] == "ready"
    # The daemon's authenticator drops an unknown key during the handshake, so no reply comes.
    assert stranger.received == []
    assert "no reply to hello" in rejected["last_error"]


def test_client_settings_reject_partial_curve_keys(harness):
    assert not harness.init(**client_settings("tcp://127.0.0.1:1", curve_server_key="x" * 40))
    assert "CURVE needs the server public key and the client key pair" in harness.logs[-1]


def test_client_shows_warming_up_without_model(harness, fast_config, tmp_path, eurusd):
    running = start_daemon(fast_config.replace("paths", state_dir=tmp_path / "state"))
    try:
        load_chart(harness, eurusd.bars, count=51)
        assert harness.init(**client_settings(running.endpoint))
        state = harness.run_until(synced, timeout=30)
    finally:
        running.stop()
    assert state["daemon_state"] == "warming_up"
    assert state["bars_needed"] > 0
    assert "more bars" in state["daemon_message"]
    assert state["signal"] is None
    assert state["model_version"] == 0


def test_client_refreshes_status_while_no_model(harness, fast_config, tmp_path, eurusd):
    config = fast_config.replace("paths", state_dir=tmp_path / "state")
    running = start_daemon(config, train=False)
    try:
        load_chart(harness, eurusd.bars, count=11)
        assert harness.init(**client_settings(running.endpoint))
        harness.run_until(lambda state: state["daemon_state"] == "no_model" and synced(state), timeout=30)
        hellos = len(sent_requests(harness, "hello"))
        time.sleep(0.3)
        harness.run_until(lambda state: len(sent_requests(harness, "hello")) > hellos and synced(state), timeout=10)
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("request_body", "code", "field"),
    [
        ({"type": "bars", "symbol": "EURUSD", "timeframe": "H1", "time": [1], "open": [1.0], "high": [1.0],
          "low": [1.0], "close": [1.0], "tick_volume": [0], "spread": [0]}, ErrorCode.BARS_OUT_OF_ORDER, "time"),
        ({"type": "bars", "symbol": "EURUSD", "timeframe": "H1", "time": [1760000000], "open": [1.0], "high": [0.5],
          "low": [1.0], "close": [1.0], "tick_volume": [0], "spread": [0]}, ErrorCode.INVALID_BAR, "high"),
        ({"type": "bars", "symbol": "USDJPY", "timeframe": "H1", "time": [1], "open": [1.0], "high": [1.0],
          "low": [1.0], "close": [1.0], "tick_volume": [0], "spread": [0]}, ErrorCode.UNKNOWN_STREAM, "symbol"),
        ({"type": "hello", "client": "x"}, ErrorCode.INVALID_FIELD, "symbol"),
        ({"type": "subscribe"}, ErrorCode.UNKNOWN_TYPE, "type"),
    ],
    ids=["out_of_order", "invalid_bar", "unknown_stream", "missing_field", "unknown_type"],
)
def test_parser_reads_daemon_error_replies(harness, shared_daemon, client_name, eurusd, request_body, code, field):
    hello = {"type": "hello", "client": client_name, "symbol": "EURUSD", "timeframe": "H1", "digits": 5, "point": 1e-05,
             "utc_offset": 0}
    frames = exchange_raw(
        shared_daemon.endpoint,
        [
            protocol.encode({"v": 1, "id": 1, **hello}),
            protocol.encode({"v": 1, "id": 2, **bars_message("EURUSD", "H1", eurusd.bars[:3])}),
            protocol.encode({"v": 1, "id": 77, **request_body}),
        ],
    )
    parsed = harness.decode(frames[-1])
    assert parsed["ok"], parsed["error"]
    assert parsed["type"] == "error"
    assert parsed["id"] == 77
    assert parsed["code"] == code
    assert parsed["name"] == code.name
    assert parsed["field"] == field
    assert parsed["message"] == msgpack.unpackb(frames[-1], raw=False)["message"]


def test_parser_reads_malformed_frame_error(harness, shared_daemon):
    (frame,) = exchange_raw(shared_daemon.endpoint, [b"\xc1"])
    parsed = harness.decode(frame)
    assert parsed["ok"], parsed["error"]
    assert parsed["id"] is None
    assert parsed["code"] == ErrorCode.MALFORMED
    assert parsed["field"] is None


def test_harness_reports_build_errors(tmp_path, monkeypatch):
    if find_compiler() is None:
        pytest.skip("g++ not found")
    monkeypatch.setattr("mql5_harness.driver.SOURCES", ("missing.cpp",))
    with pytest.raises(HarnessError, match="g\\+\\+ failed"):
        build_harness(tmp_path)
