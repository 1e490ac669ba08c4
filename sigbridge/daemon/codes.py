"""Error reply codes and process exit codes, defined once for the daemon, the clients and docs."""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Codes carried by `error` replies; docs/protocol.md describes each one."""

    # The frame is not a msgpack map, or a frame of the envelope is missing.
    MALFORMED = 1
    # `v` names a protocol version this server does not speak.
    UNSUPPORTED_VERSION = 2
    # `type` is not a request type this server supports.
    UNKNOWN_TYPE = 3
    # A field is missing, has the wrong type, is out of range, or is not part of the message.
    INVALID_FIELD = 4
    # `bars` for a symbol and timeframe this client has not opened with `hello`.
    UNKNOWN_STREAM = 5
    # A bar is not later than the bar before it, or than the last bar the stream holds.
    BARS_OUT_OF_ORDER = 6
    # A bar's prices are not finite and positive, high/low do not enclose open and close, a
    # volume is negative, or its time is negative or too far after the current time.
    INVALID_BAR = 7
    # The frame or one of its arrays exceeds the server's limits.
    MESSAGE_TOO_LARGE = 8
    # The client already has the maximum number of open streams, or the server has.
    TOO_MANY_STREAMS = 9
    # A re-sent bar older than the stream's last bar differs from the bar held for its time;
    # only the last bar may be corrected.
    BAR_CONFLICT = 10
    # `rollback` names a model version that has no intact bundle, or `unpin` a stream without one.
    MODEL_NOT_FOUND = 11
    # A control request (`rollback`, `unpin`) could not be applied; the log has the cause.
    CONTROL_FAILED = 12
    # A control request from a connection that `security.control_from` does not allow.
    CONTROL_REJECTED = 13
    # The server failed while handling a valid request or could not store its bars. Re-sending
    # the request is safe, because bars already stored count as duplicates.
    INTERNAL_ERROR = 99


class ExitCode(enum.IntEnum):
    """Process exit codes of the `sigbridge` command."""

    OK = 0
    # An unexpected failure; the log has the traceback.
    FAILURE = 1
    # Invalid command-line arguments (argparse's own code).
    USAGE = 2
    # The configuration file is missing or invalid.
    CONFIG = 3
    # The input data (a bar file or a model bundle) cannot be used.
    DATA = 4
    # The server endpoint cannot be bound, or the daemon did not reply to a client.
    TRANSPORT = 5
    # The bar database in the state folder cannot be opened: damaged, locked, or written by a
    # newer sigbridge.
    STORAGE = 6
    # Interrupted by the user (SIGINT) before finishing.
    INTERRUPTED = 130
