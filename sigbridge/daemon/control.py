"""Control requests on the daemon's socket: roll a stream back to an older model, or unpin it.

`sigbridge models rollback --endpoint` and `sigbridge models unpin --endpoint` send them. The
registry applies them and writes the pin file, so a restarted daemon serves the same version.
`security.control_from` decides which connections may send them.
"""

from __future__ import annotations

import ipaddress
import logging

from sigbridge.daemon import replies
from sigbridge.daemon.codes import ErrorCode
from sigbridge.daemon.protocol import ProtocolError, Rollback, Unpin
from sigbridge.daemon.registry import ModelRegistry
from sigbridge.models.bundle import BundleError, bundle_versions

logger = logging.getLogger(__name__)


def is_local_peer(peer: str | None) -> bool:
    """Return whether a ZeroMQ `Peer-Address` names a client on this machine.

    libzmq 4.3 gives the IP address for TCP ("127.0.0.1", "::1", "::ffff:127.0.0.1" on a dual-stack
    socket) and "localhost" followed by the peer's credentials for ipc://. None (an inproc client, or
    no address) is not local, because nothing shows where the request came from.
    """
    if not peer:
        return False
    if peer == "localhost" or peer.startswith("localhost:"):
        return True
    try:
        address = ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_control_allowed(request: Rollback | Unpin, control_from: str, peer: str | None) -> None:
    """Raise CONTROL_REJECTED unless `security.control_from` allows control requests from `peer`."""
    if control_from == "any" or (control_from == "loopback" and is_local_peer(peer)):
        return
    command = "rollback" if isinstance(request, Rollback) else "unpin"
    if control_from == "none":
        reason = 'control requests are off on this daemon (security.control_from = "none")'
        remedy = f"run `sigbridge models {command}` without --endpoint on the daemon's machine and restart the daemon"
    else:
        reason = (
            "control requests are accepted only over loopback or ipc:// "
            f'(security.control_from = "loopback"), and this one came from peer={peer or "unknown"}'
        )
        remedy = f"run `sigbridge models {command} --endpoint` on the daemon's machine"
    raise ProtocolError(ErrorCode.CONTROL_REJECTED, f"{reason}; {remedy}", request_id=request.id)


def apply_control(request: Rollback | Unpin, registry: ModelRegistry) -> dict:
    """Apply a `rollback` or `unpin` request and return the `model` reply.

    Raises:
        ProtocolError: MODEL_NOT_FOUND for a version without an intact bundle, CONTROL_FAILED
            when the pin file cannot be written.
    """
    symbol, timeframe = request.symbol, request.timeframe
    versions = bundle_versions(registry.models_dir, symbol, timeframe)
    try:
        if isinstance(request, Rollback):
            if request.version not in versions:
                raise ProtocolError(
                    ErrorCode.MODEL_NOT_FOUND,
                    f"no model bundle version={request.version} for symbol={symbol!r} timeframe={timeframe!r}; "
                    f"versions on disk: {versions or 'none'}",
                    field="version",
                    request_id=request.id,
                )
            # NOTE: loading the bundle runs in the serving loop (about a second on 2 CPU cores,
            # mostly tracing the forward pass), so requests queued meanwhile wait that long.
            bundle = registry.rollback(symbol, timeframe, request.version)
            message = (
                f"serving model_version={bundle.version}, pinned; retraining is paused until "
                "`sigbridge models unpin`"
            )
            pinned = True
        else:
            bundle = registry.unpin(symbol, timeframe)
            if bundle is None:
                raise ProtocolError(
                    ErrorCode.MODEL_NOT_FOUND,
                    f"no intact model bundle for symbol={symbol!r} timeframe={timeframe!r}; the pin was removed",
                    field="symbol",
                    request_id=request.id,
                )
            message = f"serving the newest model_version={bundle.version}; retraining resumes on schedule"
            pinned = False
    except BundleError as error:
        raise ProtocolError(
            ErrorCode.MODEL_NOT_FOUND,
            f"{error}; `sigbridge models list` shows the intact versions",
            request_id=request.id,
        ) from None
    except OSError as error:
        logger.error(
            "control request failed type=%s symbol=%s timeframe=%s",
            type(request).__name__.lower(),
            symbol,
            timeframe,
            exc_info=True,
        )
        raise ProtocolError(
            ErrorCode.CONTROL_FAILED,
            f"cannot change the pin file in the daemon's state folder: {error}; nothing changed",
            request_id=request.id,
        ) from None
    return replies.model_reply(
        request.id, symbol=symbol, timeframe=timeframe, model_version=bundle.version, pinned=pinned, message=message
    )
