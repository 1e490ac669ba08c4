"""The `sigbridge` command: serve, feed, train, replay, demo, models, streams and keygen."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from sigbridge import __version__
from sigbridge.config import Config, ConfigError, load
from sigbridge.daemon.codes import ExitCode
from sigbridge.logsetup import configure_logging

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BARS = REPOSITORY_ROOT / "examples" / "data" / "EURUSD_H1.csv"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file; defaults apply to keys it omits")
    parser.add_argument("--state-dir", type=Path, help="folder for model bundles and state (overrides paths.state_dir)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default INFO)"
    )
    parser.add_argument(
        "--log-format",
        default="human",
        choices=["human", "json"],
        help="log lines as text, or as one JSON object per line for journald and log shippers (default human)",
    )


def _add_bar_file(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--bars",
        type=Path,
        required=required,
        default=None if required else DEFAULT_BARS,
        help="MetaTrader 5 bar export (tab, comma or semicolon separated)"
        + ("" if required else f"; default: the bundled {DEFAULT_BARS.name}"),
    )
    parser.add_argument("--symbol", help="symbol name (default: guessed from the file name)")
    parser.add_argument("--timeframe", help="MetaTrader timeframe such as H1 (default: guessed from the file name)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sigbridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the signal daemon")
    _add_common(serve)
    serve.add_argument("--bind", help="ZeroMQ endpoint to bind (overrides server.bind), e.g. tcp://127.0.0.1:5555")
    serve.add_argument("--no-train", action="store_true", help="serve existing bundles only; never train")
    serve.add_argument(
        "--lockstep",
        action="store_true",
        help="train in the serving loop at the bar that makes a stream due, counting bars only, as replay does; "
        "requests wait meanwhile (for reproducible Strategy Tester runs)",
    )

    feed = commands.add_parser("feed", help="play a bar file to a running daemon, as the EA does")
    _add_common(feed)
    _add_bar_file(feed, required=True)
    feed.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="daemon endpoint (default %(default)s)")
    feed.add_argument("--client", default="sigbridge-feed", help="client name sent in hello (default %(default)s)")
    feed.add_argument("--backfill", type=int, default=3000, help="bars sent at once before streaming (default %(default)s)")
    feed.add_argument("--utc-offset", type=int, default=0, help="broker server time minus UTC, in seconds (default 0)")
    feed.add_argument("--wait-model", type=float, default=600.0, help="seconds to wait for the initial model (default %(default)s); 0 streams at once")
    feed.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (default %(default)s)")
    feed.add_argument("--out", type=Path, help="write the signals CSV here instead of standard output")
    feed.add_argument("--server-key", type=Path, help="the daemon's public key file (server.key), when CURVE is on")
    feed.add_argument("--client-key", type=Path, help="this client's secret key file (NAME.key_secret), when CURVE is on")

    train = commands.add_parser("train", help="walk-forward evaluate, then train a model bundle on a bar file")
    _add_common(train)
    _add_bar_file(train, required=True)
    train.add_argument("--no-walk-forward", action="store_true", help="skip the walk-forward evaluation")

    replay = commands.add_parser("replay", help="run the signal pipeline over a bar file, out of sample")
    _add_common(replay)
    _add_bar_file(replay, required=True)
    replay.add_argument("--model", type=Path, help="bundle folder to use; default: train one on the first --train-bars bars")
    replay.add_argument("--train-bars", type=int, help="bars used for the initial model (default: half the file)")
    replay.add_argument("--out", type=Path, help="write the signals CSV here")
    replay.add_argument(
        "--no-retrain", action="store_true", help="keep the initial model; by default replay retrains on the [retraining] schedule"
    )

    demo = commands.add_parser("demo", help="start a daemon and feed it the bundled real EURUSD H1 bars")
    _add_common(demo)
    _add_bar_file(demo, required=False)
    demo.add_argument("--backfill", type=int, default=3000, help="bars sent as history before streaming (default %(default)s)")
    demo.add_argument("--out", type=Path, help="also write the signals CSV here")

    keygen = commands.add_parser("keygen", help="write a CURVE key pair for the server or a client")
    _add_common(keygen)
    keygen.add_argument("--out", type=Path, required=True, help="folder for NAME.key (public) and NAME.key_secret")
    keygen.add_argument("--name", default="server", help="file name stem, e.g. server or ea-vps1 (default %(default)s)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair of that name")

    models = commands.add_parser("models", help="manage model bundles")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_commands.add_parser("list", help="list the bundles in the models folder")
    _add_common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rollback = model_commands.add_parser(
        "rollback", help="pin a stream to an older bundle version; retraining of the stream pauses until unpinned"
    )
    _add_common(rollback)
    rollback.add_argument("stream", help="stream folder name as `models list` shows it, e.g. EURUSD_H1")
    rollback.add_argument("version", type=int, help="bundle version to serve")
    _add_control_endpoint(rollback)
    unpin = model_commands.add_parser("unpin", help="remove a stream's pin: serve its newest bundle and retrain again")
    _add_common(unpin)
    unpin.add_argument("stream", help="stream folder name as `models list` shows it, e.g. EURUSD_H1")
    _add_control_endpoint(unpin)

    streams = commands.add_parser("streams", help="list the streams stored in the bar database, or delete one (daemon stopped)")
    stream_commands = streams.add_subparsers(dest="streams_command", required=True, metavar="ACTION")
    stream_listing = stream_commands.add_parser(
        "list", help="list the stored streams with their bar counts and first and last bar times (UTC)"
    )
    _add_common(stream_listing)
    stream_listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stream_delete = stream_commands.add_parser(
        "delete",
        help="delete a stream and all its bars, freeing its place under server.max_streams_per_client and "
        "server.max_streams; model bundles stay",
    )
    _add_common(stream_delete)
    stream_delete.add_argument("client", help="client name the EA sent in hello, as `streams list` shows it")
    stream_delete.add_argument("symbol", help="symbol, e.g. EURUSD")
    stream_delete.add_argument("timeframe", help="MetaTrader timeframe, e.g. H1")
    return parser


def _add_control_endpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="also apply it to the daemon running at this endpoint, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the daemon (default %(default)s)")
    parser.add_argument("--server-key", type=Path, help="the daemon's public key file (server.key), when CURVE is on")
    parser.add_argument("--client-key", type=Path, help="this client's secret key file (NAME.key_secret), when CURVE is on")


def resolve_config(args: argparse.Namespace) -> Config:
    config = load(args.config)
    if getattr(args, "state_dir", None) is not None:
        config = config.replace("paths", state_dir=args.state_dir)
    if getattr(args, "bind", None):
        config = config.replace("server", bind=args.bind)
    return config


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ log prints harmless version notices at ERROR level; Python errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    # Imported late: these pull in TensorFlow, which `--help` should not wait for.
    from sigbridge import commands  # noqa: PLC0415
    from sigbridge.barfile import BarFileError  # noqa: PLC0415
    from sigbridge.client import ReplyTimeout  # noqa: PLC0415
    from sigbridge.daemon.server import BindError  # noqa: PLC0415
    from sigbridge.daemon.storage import StorageError  # noqa: PLC0415
    from sigbridge.models.bundle import BundleError  # noqa: PLC0415
    from sigbridge.models.training import NotEnoughDataError  # noqa: PLC0415

    try:
        config = resolve_config(args)
        handler = getattr(commands, f"run_{args.command}")
        return int(handler(args, config))
    except ConfigError as error:
        print(f"sigbridge: invalid configuration: {error}", file=sys.stderr)
        return ExitCode.CONFIG
    except (BarFileError, BundleError, NotEnoughDataError) as error:
        print(f"sigbridge: {error}", file=sys.stderr)
        return ExitCode.DATA
    except (BindError, ReplyTimeout) as error:
        print(f"sigbridge: {error}", file=sys.stderr)
        return ExitCode.TRANSPORT
    except StorageError as error:
        print(f"sigbridge: {error}", file=sys.stderr)
        return ExitCode.STORAGE
    except KeyboardInterrupt:
        print("sigbridge: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception:  # last resort: the traceback goes to the log, in JSON too when asked
        logger.error("sigbridge %s failed", args.command, exc_info=True)
        return ExitCode.FAILURE


def run() -> None:
    """Run `main` as the `sigbridge` program and exit without interpreter teardown.

    NOTE: with TensorFlow 2.21 on CPU, a process that has trained a model aborts during
    interpreter shutdown ("terminate called ... exception not rethrown") after all work is done.
    Flushing and calling `os._exit` keeps the real exit code. In-process callers use `main`.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def print_json(data) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
