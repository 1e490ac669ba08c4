"""The transport floor: a ZeroMQ ROUTER that sends every frame straight back, in its own process.

Run as `python -m bench.echo ENDPOINT`; it stops on SIGTERM. `round_trips` times a DEALER
client against it with a message of the size of a one-bar `bars` request.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import zmq

from bench.common import REPOSITORY_ROOT


def serve(endpoint: str) -> None:
    context = zmq.Context.instance()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    stopping = []
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.append(True))
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not stopping:
        if poller.poll(100):
            router.send_multipart(router.recv_multipart())
    router.close()


def start(endpoint: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.echo", endpoint], cwd=REPOSITORY_ROOT)


def round_trips(endpoint: str, payload: bytes, count: int) -> np.ndarray:
    """Time round trips of `payload` through the echo server after 200 untimed ones; return seconds each."""
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    try:
        for _ in range(200):
            dealer.send(payload)
            if not dealer.poll(10_000):
                raise RuntimeError(f"the echo server at {endpoint} did not reply within 10 s")
            dealer.recv()
        samples = np.empty(count)
        for index in range(count):
            started = time.perf_counter()
            dealer.send(payload)
            dealer.recv()
            samples[index] = time.perf_counter() - started
        return samples
    finally:
        dealer.close()


if __name__ == "__main__":
    serve(sys.argv[1])
