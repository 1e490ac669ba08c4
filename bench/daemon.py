"""A sigbridge daemon in its own process, as `sigbridge serve` runs it, for the benchmark.

Run as `python -m bench.daemon [--forward model-predict] [--commit per-request] -- SERVE-ARGS...`:
the same `sigbridge` command line, optionally with every forward pass replaced by
`model.predict`, the naive way to call a Keras model, to measure what the compiled path saves.
`--commit per-request` commits every bar database write on its own, as sigbridge did before it
committed each micro-batch once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPOSITORY_ROOT, resident_memory_mib

FORWARD_CHOICES = ("compiled", "model-predict")
COMMIT_CHOICES = ("per-batch", "per-request")


def free_endpoint() -> str:
    """Return a loopback TCP endpoint on a port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class DaemonProcess:
    """A `sigbridge serve` child process on a fresh state folder, stopped with SIGTERM.

    Args:
        models_dir: model bundles copied into the daemon's state folder.
        workdir: folder for the state folder and the config file.
        name: label of this daemon, used for its folder.
        forward: "compiled" (what sigbridge does) or "model-predict" (the naive baseline).
        config_toml: text of a config file, or "" for the defaults.
        commit: "per-batch" (what sigbridge does) or "per-request" (the commits before).
    """

    def __init__(
        self,
        models_dir: Path,
        workdir: Path,
        name: str,
        *,
        forward: str = "compiled",
        config_toml: str = "",
        commit: str = "per-batch",
    ) -> None:
        if forward not in FORWARD_CHOICES:
            raise ValueError(f"`forward` must be one of {FORWARD_CHOICES}, received {forward!r}")
        if commit not in COMMIT_CHOICES:
            raise ValueError(f"`commit` must be one of {COMMIT_CHOICES}, received {commit!r}")
        self.endpoint = free_endpoint()
        self.state_dir = workdir / name
        shutil.copytree(models_dir, self.state_dir / "models")
        self.command = [sys.executable, "-m", "bench.daemon", "--forward", forward, "--commit", commit, "--"]
        self.command += ["serve", "--bind", self.endpoint, "--state-dir", str(self.state_dir), "--no-train"]
        self.command += ["--log-level", "WARNING"]
        if config_toml:
            config_path = workdir / f"{name}.toml"
            config_path.write_text(config_toml)
            self.command += ["--config", str(config_path)]
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> float:
        """Start the process, wait until it replies to a ping, and return the seconds that took."""
        from sigbridge.client import ReplyTimeout, SigBridgeClient

        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), environment.get("PYTHONPATH")]))
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(self.command, cwd=REPOSITORY_ROOT, env=environment)
        deadline = time.monotonic() + 180
        with SigBridgeClient(self.endpoint, timeout=0.5) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited with code {self.process.returncode}: {' '.join(self.command)}")
                try:
                    client.ping()
                    return time.perf_counter() - self.started_at
                except ReplyTimeout:
                    if time.monotonic() > deadline:
                        raise

    def resident_memory_mib(self) -> float:
        return resident_memory_mib(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _forward_with_model_predict() -> None:
    """Make every Predictor call `model.predict`, as a naive server would."""
    import numpy as np

    from sigbridge.models import inference

    def predict(self, windows):
        return self._model.predict(np.asarray(windows, dtype=np.float32), verbose=0)

    inference.Predictor.predict = predict


class _PerWriteCommits:
    """A stand-in for a bar database transaction that leaves every write to commit on its own."""

    def __init__(self) -> None:
        self.written: list = []

    def __enter__(self) -> _PerWriteCommits:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def wait(self) -> None:
        return None


def _commit_per_request() -> None:
    """Make every bar database write commit its own transaction, as before one commit per batch."""
    from sigbridge.daemon import storage

    storage.BarStore.transaction = lambda self, background=False: _PerWriteCommits()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon", description=__doc__)
    parser.add_argument("--forward", choices=FORWARD_CHOICES, default="compiled", help="how forward passes run")
    parser.add_argument("--commit", choices=COMMIT_CHOICES, default="per-batch", help="how bar database writes commit")
    parser.add_argument("sigbridge_args", nargs=argparse.REMAINDER, help="the `sigbridge` command line after --")
    args = parser.parse_args(argv)
    if args.forward == "model-predict":
        _forward_with_model_predict()
    if args.commit == "per-request":
        _commit_per_request()
    from sigbridge.cli import main as sigbridge_main

    rest = args.sigbridge_args[1:] if args.sigbridge_args[:1] == ["--"] else args.sigbridge_args
    return sigbridge_main(rest)


if __name__ == "__main__":
    sys.exit(main())
