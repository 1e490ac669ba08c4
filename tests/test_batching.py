"""Micro-batching: requests handled together share a forward pass and each reply finds its request."""

import dataclasses
import logging
import re

import msgpack
import numpy as np
import pytest
import zmq

from sigbridge.client import bars_message
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.dispatcher import Dispatcher
from sigbridge.daemon.protocol import PROTOCOL_VERSION, encode
from sigbridge.daemon.trainer import ModelRegistry

from conftest import start_daemon

# Scores of a window computed alone and inside a batch differ in the last float32 bits only.
TOLERANCE = 1e-5
BATCH_LOGGER = "sigbridge.daemon.batching"
# Backfill per client; each client starts at a different bar so that their signals differ.
BACKFILL = 300


def frame(body, request_id):
    return encode({"v": PROTOCOL_VERSION, "id": request_id, **body})


def hello_body(eurusd, client, symbol="EURUSD"):
    return {
        "type": "hello",
        "client": client,
        "symbol": symbol,
        "timeframe": "H1",
        "digits": eurusd.digits,
        "point": eurusd.point,
        "utc_offset": 0,
    }


def identity_of(client):
    return b"\x00" + client.encode()


def new_dispatcher(config, registry=None):
    return Dispatcher(config, registry or ModelRegistry(config.paths.models_dir), trainer=None)


def open_clients(dispatcher, eurusd, clients, symbol="EURUSD"):
    """Send hello and a backfill for each client; client k starts at bar 50*k."""
    for number, client in enumerate(clients):
        first = 50 * number
        dispatcher.handle(identity_of(client), frame(hello_body(eurusd, client, symbol), 1))
        backfill = bars_message(symbol, "H1", eurusd.bars[first : first + BACKFILL])
        dispatcher.handle(identity_of(client), frame(backfill, 2))


def next_bar_frames(eurusd, clients, rounds, symbol="EURUSD"):
    """Each client's next `rounds` bars, interleaved across clients, as (identity, payload, time)."""
    frames = []
    for round_number in range(rounds):
        for number, client in enumerate(clients):
            index = 50 * number + BACKFILL + round_number
            body = bars_message(symbol, "H1", eurusd.bars[index : index + 1])
            frames.append((identity_of(client), frame(body, 100 + round_number), 0.0))
    return frames


def assert_same_signals(batched, sequential):
    assert [reply["type"] for reply in batched] == [reply["type"] for reply in sequential]
    for batched_reply, sequential_reply in zip(batched, sequential):
        assert batched_reply["type"] == "signal", batched_reply
        assert batched_reply["id"] == sequential_reply["id"]
        assert batched_reply["bar_time"] == sequential_reply["bar_time"]
        assert batched_reply["symbol"] == sequential_reply["symbol"]
        assert batched_reply["accepted"] == 1
        assert batched_reply["score"] == pytest.approx(sequential_reply["score"], abs=TOLERANCE)
        assert batched_reply["distance"] == pytest.approx(sequential_reply["distance"], rel=1e-4, abs=1e-9)


def forward_pass_sizes(caplog):
    return [int(match) for match in re.findall(r"forward pass .* windows=(\d+)", caplog.text)]


def test_batch_replies_match_sequential(daemon_state, eurusd, caplog):
    clients = ["c0", "c1", "c2"]
    batched_dispatcher, sequential_dispatcher = new_dispatcher(daemon_state), new_dispatcher(daemon_state)
    open_clients(batched_dispatcher, eurusd, clients)
    open_clients(sequential_dispatcher, eurusd, clients)
    frames = next_bar_frames(eurusd, clients, rounds=4)

    caplog.set_level(logging.DEBUG, logger=BATCH_LOGGER)
    batched = batched_dispatcher.handle_batch(frames)
    sizes = forward_pass_sizes(caplog)
    sequential = [sequential_dispatcher.handle(identity, payload) for identity, payload, _ in frames]

    assert_same_signals(batched, sequential)
    # Every client's four bars went through one forward pass, each with its own window.
    assert sizes[0] == 12
    expected_times = [
        int(eurusd.bars.time[50 * number + BACKFILL + round_number]) for round_number in range(4) for number in range(3)
    ]
    assert [reply["bar_time"] for reply in batched] == expected_times


def test_batch_one_forward_pass_per_model(daemon_state, eurusd, caplog):
    registry = ModelRegistry(daemon_state.paths.models_dir)
    eurusd_bundle = registry.get("EURUSD", "H1")
    registry.publish(dataclasses.replace(eurusd_bundle, symbol="GBPUSD"))
    dispatcher = new_dispatcher(daemon_state, registry)
    open_clients(dispatcher, eurusd, ["e0", "e1"], symbol="EURUSD")
    open_clients(dispatcher, eurusd, ["g0"], symbol="GBPUSD")
    frames = next_bar_frames(eurusd, ["e0", "e1"], rounds=2)
    frames += next_bar_frames(eurusd, ["g0"], rounds=2, symbol="GBPUSD")

    caplog.set_level(logging.DEBUG, logger=BATCH_LOGGER)
    replies = dispatcher.handle_batch(frames)

    assert sorted(forward_pass_sizes(caplog)) == [2, 4]
    assert [reply["symbol"] for reply in replies] == ["EURUSD"] * 4 + ["GBPUSD"] * 2
    assert all(reply["type"] == "signal" for reply in replies)
    # g0 starts at bar 0 like e0, so with the same weights it gets e0's signals.
    assert replies[4]["score"] == pytest.approx(replies[0]["score"], abs=TOLERANCE)
    assert replies[5]["score"] == pytest.approx(replies[2]["score"], abs=TOLERANCE)


def test_batch_keeps_arrival_order(daemon_state, eurusd):
    dispatcher = new_dispatcher(daemon_state)
    open_clients(dispatcher, eurusd, ["c0"])
    identity = identity_of("c0")
    frames = [
        (identity, frame(bars_message("EURUSD", "H1", eurusd.bars[BACKFILL : BACKFILL + 1]), 10), 0.0),
        (identity, frame({"type": "ping"}, 11), 0.0),
        (identity, b"\xc1 not msgpack", 0.0),
        (identity, frame(bars_message("EURUSD", "H1", eurusd.bars[BACKFILL + 1 : BACKFILL + 2]), 12), 0.0),
        (identity, frame(hello_body(eurusd, "c0"), 13), 0.0),
    ]
    replies = dispatcher.handle_batch(frames)
    assert [reply["type"] for reply in replies] == ["signal", "pong", "error", "signal", "welcome"]
    assert [reply["id"] for reply in replies] == [10, 11, None, 12, 13]
    assert replies[2]["code"] == ErrorCode.MALFORMED
    assert replies[4]["last_bar_time"] == int(eurusd.bars.time[BACKFILL + 1])


def test_batch_rejected_bars_get_their_error(daemon_state, eurusd):
    dispatcher = new_dispatcher(daemon_state)
    open_clients(dispatcher, eurusd, ["c0", "c1"])
    good = next_bar_frames(eurusd, ["c0", "c1"], rounds=1)
    stale = (identity_of("c1"), frame(bars_message("EURUSD", "H1", eurusd.bars[10:11]), 55), 0.0)
    replies = dispatcher.handle_batch([good[0], stale, good[1]])
    assert [reply["type"] for reply in replies] == ["signal", "error", "signal"]
    assert replies[1]["id"] == 55
    assert replies[1]["code"] == ErrorCode.BARS_OUT_OF_ORDER


def test_batch_of_one_is_handle(daemon_state, eurusd):
    first, second = new_dispatcher(daemon_state), new_dispatcher(daemon_state)
    open_clients(first, eurusd, ["c0"])
    open_clients(second, eurusd, ["c0"])
    (identity, payload, received_at), = next_bar_frames(eurusd, ["c0"], rounds=1)
    [batched] = first.handle_batch([(identity, payload, received_at)])
    single = second.handle(identity, payload)
    assert {key: value for key, value in batched.items() if key != "latency_us"} == {
        key: value for key, value in single.items() if key != "latency_us"
    }


def test_daemon_batches_concurrent_clients(daemon_state, eurusd, caplog):
    """Eight DEALER sockets send a bar each at once; every reply goes back to its own sender."""
    clients = [f"client-{number}" for number in range(8)]
    caplog.set_level(logging.DEBUG, logger=BATCH_LOGGER)
    running = start_daemon(daemon_state.replace("server", batch_wait_us=50_000))
    context = zmq.Context.instance()
    sockets = []
    try:
        for number, client in enumerate(clients):
            socket = context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(running.endpoint)
            sockets.append(socket)
            first = 50 * number
            backfill = bars_message("EURUSD", "H1", eurusd.bars[first : first + BACKFILL])
            for request_id, body in ((1, hello_body(eurusd, client)), (2, backfill)):
                socket.send(frame(body, request_id))
                assert socket.poll(30_000), f"no reply to {body['type']} for {client}"
                socket.recv()

        caplog.clear()
        sent = {}
        for number, socket in enumerate(sockets):
            index = 50 * number + BACKFILL
            request_id = 1000 + number
            payload = frame(bars_message("EURUSD", "H1", eurusd.bars[index : index + 1]), request_id)
            socket.send(payload)
            sent[number] = (request_id, int(eurusd.bars.time[index]), payload)
        replies = {}
        for number, socket in enumerate(sockets):
            assert socket.poll(30_000), f"no signal reply for client {number}"
            replies[number] = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        for socket in sockets:
            socket.close()
        running.stop()

    reference = new_dispatcher(daemon_state)
    open_clients(reference, eurusd, clients)
    for number, (request_id, bar_time, payload) in sent.items():
        reply = replies[number]
        assert reply["type"] == "signal", reply
        assert reply["id"] == request_id
        assert reply["bar_time"] == bar_time
        expected = reference.handle(identity_of(clients[number]), payload)
        assert reply["score"] == pytest.approx(expected["score"], abs=TOLERANCE)
    assert max(forward_pass_sizes(caplog)) > 1
    scores = np.array([reply["score"] for reply in replies.values()])
    assert len(np.unique(scores)) > 1
