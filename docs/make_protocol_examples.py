"""Write the example section of docs/protocol.md: one message per type and its msgpack bytes.

Request examples are literal maps. Reply examples come from the reply builders in
`sigbridge.daemon.protocol`, so their field order is the order the server sends. Every hex dump is
`protocol.encode` applied to the map printed above it.

Usage:
    python docs/make_protocol_examples.py           # rewrite the section in docs/protocol.md
    python docs/make_protocol_examples.py --check   # exit 1 when the section is out of date

tests/test_protocol.py fails when the section in the doc differs from what this script writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sigbridge.daemon import protocol, replies
from sigbridge.daemon.codes import ErrorCode

DOC_PATH = Path(__file__).resolve().with_name("protocol.md")
BEGIN_MARKER = "<!-- BEGIN GENERATED EXAMPLES: python docs/make_protocol_examples.py -->"
END_MARKER = "<!-- END GENERATED EXAMPLES -->"
BYTES_PER_LINE = 16

# 2025-12-15 01:00 and 02:00 in the broker's server time, as MetaTrader's `datetime` stores them.
FIRST_BAR_TIME = 1765760400
SECOND_BAR_TIME = 1765764000


def example_messages() -> list[tuple[str, str, dict[str, Any]]]:
    """Return (message type, caption, map) for each example, requests first."""
    hello = {
        "v": 1,
        "type": "hello",
        "id": 1,
        "client": "ea-eurusd-h1",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "digits": 5,
        "point": 1e-05,
        "utc_offset": 7200,
    }
    bars = {
        "v": 1,
        "type": "bars",
        "id": 2,
        "symbol": "EURUSD",
        "timeframe": "H1",
        "time": [FIRST_BAR_TIME, SECOND_BAR_TIME],
        "open": [1.17352, 1.17369],
        "high": [1.17405, 1.17369],
        "low": [1.17351, 1.17282],
        "close": [1.17367, 1.1733],
        "tick_volume": [584, 890],
        "spread": [7, 7],
    }
    ping = {"v": 1, "type": "ping", "id": 3}
    rollback = {"v": 1, "type": "rollback", "id": 4, "symbol": "EURUSD", "timeframe": "H1", "version": 1}
    unpin = {"v": 1, "type": "unpin", "id": 5, "symbol": "EURUSD", "timeframe": "H1"}
    welcome = replies.welcome_reply(
        1,
        server="sigbridge 0.1.0",
        symbol="EURUSD",
        timeframe="H1",
        state="warming_up",
        message="collecting history: initial training starts after 927 more bars",
        bars_held=0,
        last_bar_time=None,
        bars_needed=927,
        model_version=None,
        max_bars_per_message=100_000,
    )
    status = replies.status_reply(
        2,
        symbol="EURUSD",
        timeframe="H1",
        state="warming_up",
        message="collecting history: initial training starts after 925 more bars",
        bars_held=2,
        bars_needed=925,
        last_bar_time=SECOND_BAR_TIME,
        model_version=None,
        accepted=2,
        duplicates=0,
    )
    signal = replies.signal_reply(
        2,
        symbol="EURUSD",
        timeframe="H1",
        bar_time=SECOND_BAR_TIME,
        direction=-1,
        score=-0.3205799460411072,
        distance=-0.00184,
        model_version=1,
        latency_us=2776,
        accepted=2,
        duplicates=0,
    )
    pong = replies.pong_reply(3, 1765757000.125)
    model = replies.model_reply(
        4,
        symbol="EURUSD",
        timeframe="H1",
        model_version=1,
        pinned=True,
        message="serving model_version=1, pinned; retraining is paused until `sigbridge models unpin`",
    )
    error = replies.error_reply(
        protocol.ProtocolError(
            ErrorCode.INVALID_FIELD,
            "`timeframe` must be a MetaTrader timeframe name such as H1 or M15, received timeframe='H7'",
            field="timeframe",
            request_id=1,
        )
    )
    return [
        ("hello", "Request: open or resume the stream EURUSD H1.", hello),
        ("bars", "Request: two closed bars, oldest first, without the optional `volume`.", bars),
        ("ping", "Request: liveness check.", ping),
        ("rollback", "Control request: serve and pin model version 1 of EURUSD H1.", rollback),
        ("unpin", "Control request: remove the pin of EURUSD H1.", unpin),
        ("welcome", "Reply to the `hello` above, for a new stream on a server with no model yet.", welcome),
        ("status", "Reply to the `bars` above on that server: the bars were stored, no signal yet.", status),
        ("signal", "Reply to the same `bars` on a server with a model and enough earlier bars.", signal),
        ("pong", "Reply to the `ping` above. `time` is the daemon's UTC clock.", pong),
        ("model", "Reply to the `rollback` above.", model),
        ("error", "Reply to a `hello` with id 1 and `timeframe` \"H7\".", error),
    ]


def format_map(message: dict[str, Any]) -> str:
    """Format a map as JSON with one key per line and every value on its key's line."""
    lines = [f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in message.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def hex_dump(data: bytes) -> str:
    """Format bytes as `hexdump -C` does: offset, 16 bytes in two groups of 8, then ASCII."""
    lines = []
    for offset in range(0, len(data), BYTES_PER_LINE):
        chunk = data[offset : offset + BYTES_PER_LINE]
        first = " ".join(f"{byte:02x}" for byte in chunk[:8])
        second = " ".join(f"{byte:02x}" for byte in chunk[8:])
        text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append(f"{offset:08x}  {first:<23}  {second:<23}  |{text}|")
    return "\n".join(lines)


def render_section() -> str:
    """Return the generated section of docs/protocol.md, markers included."""
    parts = [BEGIN_MARKER, ""]
    for kind, caption, message in example_messages():
        data = protocol.encode(message)
        parts += [
            f"### `{kind}`",
            "",
            f"{caption} {len(data)} bytes.",
            "",
            "```json",
            format_map(message),
            "```",
            "",
            "```text",
            hex_dump(data),
            "```",
            "",
        ]
    parts.append(END_MARKER)
    return "\n".join(parts)


def split_doc(text: str) -> tuple[str, str, str]:
    """Split the doc into the text before the section, the section with markers, and the rest.

    Raises:
        ValueError: a marker is missing or the end marker comes first.
    """
    start = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"{DOC_PATH} must contain {BEGIN_MARKER!r} followed by {END_MARKER!r}")
    end += len(END_MARKER)
    return text[:start], text[start:end], text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check: exit 1 if the doc is out of date, and write nothing")
    arguments = parser.parse_args(argv)

    text = DOC_PATH.read_text(encoding="utf-8")
    before, section, after = split_doc(text)
    expected = render_section()
    if section == expected:
        print(f"{DOC_PATH}: examples are up to date")
        return 0
    if arguments.check:
        print(f"{DOC_PATH}: examples are out of date. Run python docs/make_protocol_examples.py to rewrite them", file=sys.stderr)
        return 1
    DOC_PATH.write_text(before + expected + after, encoding="utf-8")
    print(f"{DOC_PATH}: rewrote the examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
