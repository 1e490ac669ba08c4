"""`sigbridge models`: list the bundles, pin a stream to an older version (rollback), or unpin it.

A rollback or unpin changes the pin file in the state folder, so a daemon started later serves
the pinned version. With `--endpoint`, the command sends a control request instead, and the
running daemon applies it and changes the pin file itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sigbridge.config import Config
from sigbridge.daemon.codes import ExitCode
from sigbridge.models.bundle import BundleError, list_bundles, load_bundle
from sigbridge.models.versions import clear_pin, read_pin, version_folder, write_pin


def run_models_command(args: argparse.Namespace, config: Config) -> int:
    if args.models_command == "list":
        return list_models(args, config)
    if args.models_command == "rollback":
        return rollback(args, config)
    return unpin(args, config)


def resolve_stream(models_dir: Path, stream: str) -> tuple[str, str]:
    """Symbol and timeframe of a stream folder name such as EURUSD_H1, read from its bundles.

    Raises:
        BundleError: no intact bundle lives in that folder.
    """
    for row in reversed(list_bundles(models_dir)):
        if row["intact"] and Path(row["path"]).parent.name == stream:
            return row["symbol"], row["timeframe"]
    raise BundleError(
        f"no intact model bundle in {Path(models_dir) / stream}; `sigbridge models list` shows the streams "
        "(the STREAM argument is the folder name, e.g. EURUSD_H1)"
    )


def _serving_versions(models_dir: Path, rows: list[dict]) -> dict[str, tuple[int, bool]]:
    """Per stream folder: the version a daemon starting now would serve, and whether it is pinned."""
    by_folder: dict[str, list[dict]] = {}
    for row in rows:
        if row["intact"]:
            by_folder.setdefault(Path(row["path"]).parent.name, []).append(row)
    serving = {}
    for folder, intact in by_folder.items():
        try:
            pinned = read_pin(models_dir, intact[0]["symbol"], intact[0]["timeframe"])
        except BundleError:
            pinned = None
        versions = [row["version"] for row in intact]
        serving[folder] = (pinned, True) if pinned in versions else (max(versions), False)
    return serving


def list_models(args: argparse.Namespace, config: Config) -> int:
    from sigbridge.cli import print_json  # noqa: PLC0415

    models_dir = config.paths.models_dir
    rows = list_bundles(models_dir)
    serving = _serving_versions(models_dir, rows)
    for row in rows:
        version, pinned = serving.get(Path(row["path"]).parent.name, (None, False))
        row["serving"] = row.get("version") == version
        row["pinned"] = row["serving"] and pinned
    if args.json:
        print_json(rows)
        return ExitCode.OK
    if not rows:
        print(f"no model bundles in {models_dir}")
        return ExitCode.OK
    print(f"{'stream':<16} {'version':>7} {'serving':<8} {'trained until':>16} {'examples':>8} {'trigger':<8}  path")
    for row in rows:
        stream = Path(row["path"]).parent.name
        if not row["intact"]:
            print(f"{stream:<16} {'?':>7} {'':<8} {'':>16} {'':>8} {'':<8}  {row['path']} (damaged: {row['error']})")
            continue
        metadata = row.get("metadata", {})
        until = metadata.get("trained_until_time")
        state = ""
        if row["pinned"]:
            state = "pinned"
        elif row["serving"]:
            state = "yes"
        print(
            f"{stream:<16} {row['version']:>7} {state:<8} {_time_text(until) if until is not None else '':>16} "
            f"{metadata.get('examples', ''):>8} {metadata.get('trigger', ''):<8}  {row['path']}"
        )
    return ExitCode.OK


def _time_text(seconds) -> str:
    import datetime  # noqa: PLC0415

    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def rollback(args: argparse.Namespace, config: Config) -> int:
    models_dir = config.paths.models_dir
    symbol, timeframe = resolve_stream(models_dir, args.stream)
    # Loading checks the model file against its recorded SHA-256 before anything is pinned.
    load_bundle(version_folder(models_dir, symbol, timeframe, args.version))
    if args.endpoint is not None:
        # The daemon writes the pin file itself, so a rejected request leaves the pin unchanged.
        return _send_control(args, {"type": "rollback", "symbol": symbol, "timeframe": timeframe, "version": args.version})
    path = write_pin(models_dir, symbol, timeframe, args.version)
    print(f"pinned {symbol} {timeframe} to model_version={args.version} ({path})")
    print("a daemon serves it from its next start; pass --endpoint to apply it to a running daemon now")
    return ExitCode.OK


def unpin(args: argparse.Namespace, config: Config) -> int:
    models_dir = config.paths.models_dir
    symbol, timeframe = resolve_stream(models_dir, args.stream)
    if args.endpoint is not None:
        # The daemon removes the pin file itself, so a rejected request leaves the pin unchanged.
        return _send_control(args, {"type": "unpin", "symbol": symbol, "timeframe": timeframe})
    removed = clear_pin(models_dir, symbol, timeframe)
    print(f"unpinned {symbol} {timeframe}" if removed else f"{symbol} {timeframe} was not pinned in {models_dir}")
    return ExitCode.OK


def _send_control(args: argparse.Namespace, message: dict) -> int:
    from sigbridge.client import SigBridgeClient  # noqa: PLC0415
    from sigbridge.commands import _curve_keys  # noqa: PLC0415

    with SigBridgeClient(args.endpoint, timeout=args.timeout, curve=_curve_keys(args)) as client:
        reply = client.request(message, raise_errors=False)
    if reply.get("type") == "error":
        print(
            f"sigbridge: the daemon at {args.endpoint} rejected `{message['type']}`: {reply.get('name')}: "
            f"{reply.get('message')}",
            file=sys.stderr,
        )
        return ExitCode.DATA
    print(f"daemon at {args.endpoint}: {reply.get('message')}")
    return ExitCode.OK
