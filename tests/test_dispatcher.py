"""Request handling without sockets: the dispatcher applied to encoded frames."""

import msgpack
import pytest

from sigbridge.client import bars_message
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.stream_state import bars_to_train
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode
from sigbridge.daemon.trainer import ModelRegistry

IDENTITY = b"\x00client-1"


@pytest.fixture
def dispatcher(daemon_state):
    return Dispatcher(daemon_state, ModelRegistry(daemon_state.paths.models_dir), trainer=None)


def frame(body, request_id=1):
    return encode({"v": PROTOCOL_VERSION, "id": request_id, **body})


def hello(eurusd, symbol="EURUSD", client="c1"):
    return frame(
        {
            "type": "hello",
            "client": client,
            "symbol": symbol,
            "timeframe": "H1",
            "digits": eurusd.digits,
            "point": eurusd.point,
            "utc_offset": 7200,
        }
    )


def test_dispatcher_hello_welcome_fields(dispatcher, eurusd):
    reply = dispatcher.handle(IDENTITY, hello(eurusd))
    assert reply["type"] == "welcome"
    assert reply["model_version"] == 1
    assert reply["bars_held"] == 0
    assert reply["last_bar_time"] is None
    assert reply["bars_needed"] == 196
    assert reply["state"] == "warming_up"


def test_dispatcher_signal_after_window(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    reply = dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[:196]), 2))
    assert reply["type"] == "signal"
    assert reply["id"] == 2
    assert reply["bar_time"] == int(eurusd.bars.time[195])


def test_dispatcher_status_one_bar_short(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    reply = dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[:195])))
    assert reply["type"] == "status"
    assert reply["bars_needed"] == 1


def test_dispatcher_no_model_without_trainer(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd, symbol="GBPUSD"))
    reply = dispatcher.handle(IDENTITY, frame(bars_message("GBPUSD", "H1", eurusd.bars[:2000])))
    assert reply["type"] == "status"
    assert reply["state"] == "no_model"


def test_dispatcher_routes_are_per_identity(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    reply = dispatcher.handle(b"\x00other", frame(bars_message("EURUSD", "H1", eurusd.bars[:5])))
    assert reply["code"] == ErrorCode.UNKNOWN_STREAM


def test_dispatcher_reconnect_moves_route(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    dispatcher.handle(b"\x00new", hello(eurusd))
    old = dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[:5])))
    new = dispatcher.handle(b"\x00new", frame(bars_message("EURUSD", "H1", eurusd.bars[:5])))
    assert old["code"] == ErrorCode.UNKNOWN_STREAM
    assert new["type"] == "status"


def test_dispatcher_conflicting_resend_rejected(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[:10])))
    # Bar 8 is older than the stream's last bar, so a changed copy is a conflict, not a correction.
    message = bars_message("EURUSD", "H1", eurusd.bars[8:11])
    message["close"][0] += 0.0001
    reply = dispatcher.handle(IDENTITY, frame(message))
    assert reply["code"] == ErrorCode.BAR_CONFLICT
    assert reply["field"] == "close"
    assert dispatcher.streams[next(iter(dispatcher.streams))].bars_seen == 10


def test_dispatcher_bars_older_than_stream_rejected(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[100:110])))
    reply = dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[90:95])))
    assert reply["code"] == ErrorCode.BARS_OUT_OF_ORDER


def test_dispatcher_nan_price_rejected(dispatcher, eurusd):
    dispatcher.handle(IDENTITY, hello(eurusd))
    message = bars_message("EURUSD", "H1", eurusd.bars[:3])
    message["low"][1] = float("nan")
    reply = dispatcher.handle(IDENTITY, frame(message))
    assert reply["code"] == ErrorCode.INVALID_BAR
    assert reply["field"] == "low"
    assert "nan" in reply["message"]


def test_dispatcher_error_reply_is_encodable(dispatcher):
    reply = dispatcher.handle(IDENTITY, b"\x93\x01")
    decoded = msgpack.unpackb(encode(reply), raw=False)
    assert decoded["type"] == "error"
    assert decoded["id"] is None
    assert decoded["code"] == ErrorCode.MALFORMED


def test_dispatcher_buffer_capped(daemon_state, eurusd):
    config = daemon_state.replace("server", max_bars_per_stream=1000)
    dispatcher = Dispatcher(config, ModelRegistry(config.paths.models_dir), trainer=None)
    dispatcher.handle(IDENTITY, hello(eurusd))
    dispatcher.handle(IDENTITY, frame(bars_message("EURUSD", "H1", eurusd.bars[:1500])))
    stream = next(iter(dispatcher.streams.values()))
    assert len(stream.bars) == 1000
    assert stream.bars_seen == 1500
    assert stream.last_time == int(eurusd.bars.time[1499])


def test_bars_to_train_covers_examples_and_window(fast_config):
    needed = bars_to_train(fast_config)
    assert needed > fast_config.training.min_examples + 196
