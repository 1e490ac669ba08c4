"""Build the MQL5 include-file harness with g++ and drive it from Python.

The harness binary (harness_main.cpp) runs the translated include files. Its one stand-in, the
transport, calls this driver to open, send on, receive from and close a pyzmq DEALER socket. So
every byte the MQL5 code sends reaches the real daemon unchanged, and every reply comes back
unchanged. The driver can drop one request or one reply, to reproduce a lost message.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from mql5_harness.translate import translate_tree

HARNESS_DIR = Path(__file__).resolve().parent
MQL5_ROOT = HARNESS_DIR.parents[1] / "mql5_client"
SOURCES = ("harness_main.cpp", "mql5_compat.cpp")


class HarnessError(RuntimeError):
    """Raised when the harness cannot be built, exits, or does not finish a command in time."""


def find_compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def _sanitizer_flags(compiler: str, work_dir: Path) -> list[str]:
    """AddressSanitizer and UBSan flags when this toolchain builds and runs with them, else none."""
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    probe = work_dir / "probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    built = subprocess.run([compiler, *flags, str(probe), "-o", str(work_dir / "probe")], capture_output=True)
    # Some containers forbid what ASan needs at run time, so the probe must also run.
    if built.returncode != 0 or subprocess.run([str(work_dir / "probe")], capture_output=True).returncode != 0:
        return []
    return flags


def _source_digest(compiler: str) -> str:
    """A hash of everything the binary is built from, to reuse a binary built from the same."""
    digest = hashlib.sha256(compiler.encode())
    paths = sorted(MQL5_ROOT.rglob("*.mq[h5]")) + sorted(HARNESS_DIR.glob("*.[ch]*"))
    for path in paths:
        digest.update(str(path.relative_to(HARNESS_DIR.parents[1])).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_harness(work_dir: Path) -> Path:
    """Translate the MQL5 sources into `work_dir` and compile the harness binary there.

    A binary in `work_dir` built from the same sources and compiler is reused.

    Raises:
        HarnessError: no compiler, or the sources do not compile; the message has g++'s output.
    """
    compiler = find_compiler()
    if compiler is None:
        raise HarnessError("g++ not found; install g++ (Debian: apt-get install g++) or set CXX")
    binary = work_dir / f"sigbridge_harness-{_source_digest(compiler)}"
    if binary.exists():
        return binary
    translate_tree(MQL5_ROOT, work_dir)
    command = [
        compiler,
        "-std=c++17",
        "-O0",
        "-g",
        "-fsigned-char",
        "-Wall",
        "-Wextra",
        "-Werror",
        # MQL5 compares signed and unsigned integers freely (uint timeouts, ulong tick counts).
        "-Wno-sign-compare",
        *_sanitizer_flags(compiler, work_dir),
        "-I",
        str(HARNESS_DIR),
        "-I",
        str(work_dir / "include"),
        "-I",
        str(work_dir / "scripts"),
        *(str(HARNESS_DIR / source) for source in SOURCES),
        "-o",
        str(binary),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"g++ failed to compile the MQL5 include files:\n{result.stderr[-20000:]}")
    for stale in work_dir.glob("sigbridge_harness-*"):
        if stale != binary:
            stale.unlink()
    return binary


def hex_text(text: str) -> str:
    return text.encode("utf-8").hex()


class Harness:
    """One running harness process with its DEALER socket.

    Attributes:
        logs: the MQL5 code's Print and PrintFormat lines, in order.
        sent: request frames the MQL5 code sent (dropped ones included).
        received: reply frames handed to the MQL5 code.
        drop_next_send: swallow the next request, as if the network lost it; or a predicate on the
            request frame, to swallow the next request it accepts.
        drop_next_reply: swallow the next reply, as if the network lost it.
    """

    def __init__(self, binary: Path, *, context: zmq.Context | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0
        )
        self._buffer = b""
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self.logs: list[str] = []
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.endpoints: list[str] = []
        self.drop_next_send: bool | Callable[[bytes], bool] = False
        self.drop_next_reply = False

    # Process I/O.

    def _write(self, line: str) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(line.encode("utf-8") + b"\n")
        except BrokenPipeError:
            raise HarnessError(f"the harness exited; stderr:\n{self.stderr()}") from None

    def _read_line(self, deadline: float) -> str:
        assert self._process.stdout is not None
        descriptor = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError("the harness did not finish the command in time")
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                self._process.wait(5)
                raise HarnessError(
                    f"the harness exited with code {self._process.returncode}; stderr:\n{self.stderr()}"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8")

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def call(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run one harness command, serving its transport calls, and return its result."""
        self._write(command)
        deadline = time.monotonic() + timeout
        while True:
            line = self._read_line(deadline)
            if line.startswith("log "):
                self.logs.append(line[4:])
            elif line.startswith("zmq "):
                self._write(self._transport(line[4:]))
            elif line.startswith("done "):
                return json.loads(line[5:])
            else:
                raise HarnessError(f"unexpected harness output {line!r}")

    # The DEALER socket behind the MQL5 transport.

    def _transport(self, request: str) -> str:
        verb, _, argument = request.partition(" ")
        try:
            if verb == "open":
                endpoint, *keys = (bytes.fromhex(part) for part in argument.split(" "))
                self._close_socket()
                socket = self._context.socket(zmq.DEALER)
                socket.setsockopt(zmq.LINGER, 0)
                self._socket = socket
                if keys:
                    socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = keys
                endpoint = endpoint.decode("utf-8")
                socket.connect(endpoint)
                self.endpoints.append(endpoint)
                return "ok"
            if verb == "close":
                self._close_socket()
                return "ok"
            if self._socket is None:
                return "err -1 " + hex_text("the socket is not open")
            if verb == "send":
                payload = bytes.fromhex(argument)
                self.sent.append(payload)
                drop = self.drop_next_send
                if drop is True or (callable(drop) and drop(payload)):
                    self.drop_next_send = False
                    return "ok"
                self._socket.send(payload, zmq.NOBLOCK)
                return "ok"
            if verb == "recv":
                if not self._socket.poll(int(argument)):
                    return "none"
                payload = self._socket.recv(zmq.NOBLOCK)
                if self.drop_next_reply:
                    self.drop_next_reply = False
                    return "none"
                self.received.append(payload)
                return "msg " + payload.hex()
        except zmq.ZMQError as error:
            return f"err {error.errno} {hex_text(str(error))}"
        raise HarnessError(f"unknown transport call {request!r}")

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # Commands.

    def chart(self, symbol: str, period: int) -> None:
        self.call(f"chart {hex_text(symbol)} {period}")

    def add_bar(self, bars, index: int) -> None:
        """Append bar `index` of a `sigbridge.bars.Bars`; it becomes the forming bar."""
        self.call(
            f"bar {int(bars.time[index])} {float(bars.open[index])!r} {float(bars.high[index])!r} "
            f"{float(bars.low[index])!r} {float(bars.close[index])!r} {int(bars.tick_volume[index])} "
            f"{int(bars.spread[index])} {int(bars.volume[index])}"
        )

    def init(self, **settings: Any) -> bool:
        texts = {"endpoint", "client", "symbol", "timeframe", "curve_server_key", "curve_public_key", "curve_secret_key"}
        arguments = " ".join(
            f"{key}={hex_text(value)}" if key in texts else f"{key}={value!r}" for key, value in settings.items()
        )
        return self.call(f"init {arguments}")["ok"]

    def process(self) -> dict[str, Any]:
        return self.call("process")["client"]

    def state(self) -> dict[str, Any]:
        return self.call("state")["client"]

    def run_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, pause: float = 0.005
    ) -> dict[str, Any]:
        """Call `process` until `predicate(state)` holds; raise HarnessError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        state = self.process()
        while not predicate(state):
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"condition not reached within {timeout} s; last state {state}; last logs {self.logs[-8:]}"
                )
            time.sleep(pause)
            state = self.process()
        return state

    def decode(self, payload: bytes) -> dict[str, Any]:
        return self.call(f"decode {payload.hex()}")

    def close(self) -> None:
        """Quit the harness and raise HarnessError if it exits with an error, such as a leak that
        LeakSanitizer reports at exit."""
        try:
            if self._process.poll() is None:
                self.call("quit", timeout=10)
                self._process.wait(10)
            if self._process.returncode != 0:
                raise HarnessError(f"the harness exited with code {self._process.returncode}; stderr:\n{self.stderr()}")
        except HarnessError:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait(10)
            raise
        finally:
            self._close_socket()
            self._stderr.close()
