"""Reply maps of the sigbridge wire protocol, as the server sends them.

Each builder returns the map that `protocol.encode` packs; field names are the wire names and
docs/protocol.md describes each reply.
"""

from __future__ import annotations

from typing import Any

from sigbridge.daemon.protocol import PROTOCOL_VERSION, ProtocolError


def _reply(kind: str, request_id: int | None, **fields: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "type": kind, "id": request_id, **fields}


def error_reply(error: ProtocolError) -> dict[str, Any]:
    return _reply(
        "error",
        error.request_id,
        code=int(error.code),
        name=error.code.name,
        message=error.message,
        field=error.field,
        row=error.row,
    )


def model_reply(
    request_id: int, *, symbol: str, timeframe: str, model_version: int | None, pinned: bool, message: str
) -> dict[str, Any]:
    """The reply to `rollback` and `unpin`: the version now serving and whether it is pinned."""
    return _reply(
        "model",
        request_id,
        symbol=symbol,
        timeframe=timeframe,
        model_version=model_version,
        pinned=pinned,
        message=message,
    )


def pong_reply(request_id: int, server_time: float) -> dict[str, Any]:
    return _reply("pong", request_id, time=server_time)


def welcome_reply(
    request_id: int,
    *,
    server: str,
    symbol: str,
    timeframe: str,
    state: str,
    message: str,
    bars_held: int,
    last_bar_time: int | None,
    bars_needed: int,
    model_version: int | None,
    max_bars_per_message: int,
) -> dict[str, Any]:
    return _reply(
        "welcome",
        request_id,
        server=server,
        symbol=symbol,
        timeframe=timeframe,
        state=state,
        message=message,
        bars_held=bars_held,
        last_bar_time=last_bar_time,
        bars_needed=bars_needed,
        model_version=model_version,
        max_bars_per_message=max_bars_per_message,
    )


def signal_reply(
    request_id: int,
    *,
    symbol: str,
    timeframe: str,
    bar_time: int,
    direction: int,
    score: float,
    distance: float,
    model_version: int,
    latency_us: int,
    accepted: int,
    duplicates: int,
) -> dict[str, Any]:
    return _reply(
        "signal",
        request_id,
        symbol=symbol,
        timeframe=timeframe,
        bar_time=bar_time,
        direction=direction,
        score=score,
        distance=distance,
        model_version=model_version,
        latency_us=latency_us,
        accepted=accepted,
        duplicates=duplicates,
    )


def status_reply(
    request_id: int,
    *,
    symbol: str,
    timeframe: str,
    state: str,
    message: str,
    bars_held: int,
    bars_needed: int,
    last_bar_time: int | None,
    model_version: int | None,
    accepted: int,
    duplicates: int,
) -> dict[str, Any]:
    return _reply(
        "status",
        request_id,
        symbol=symbol,
        timeframe=timeframe,
        state=state,
        message=message,
        bars_held=bars_held,
        bars_needed=bars_needed,
        last_bar_time=last_bar_time,
        model_version=model_version,
        accepted=accepted,
        duplicates=duplicates,
    )
