"""Transport security: the bind policy, CURVE key files, and the ZAP handler that checks clients.

Without CURVE, anyone who reaches the endpoint can send bars and read signals, so the daemon binds
loopback by default and stops at start-up when asked to bind another address without CURVE,
unless `security.allow_unencrypted_bind` declares the network trusted.

Key files use the ZeroMQ certificate format that pyzmq's `zmq.auth.load_certificate` reads:
`NAME.key` holds a public key and `NAME.key_secret` the key pair, each as 40 Z85 characters.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import logging
import os
import re
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from sigbridge.config import Config, ConfigError, SecurityConfig
from sigbridge.logsetup import RateLimitedLog

logger = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_Z85_KEY_LENGTH = 40


def is_loopback_endpoint(endpoint: str) -> bool:
    """Return whether a ZeroMQ bind endpoint is reachable from this machine only.

    `ipc://` and `inproc://` never leave the machine. A `tcp://` endpoint is local when its host
    is a loopback address (127.0.0.0/8, ::1), `localhost` or the loopback interface `lo`. Names
    are not resolved, so any other host name counts as remote.
    """
    transport, _, address = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = address.rsplit(":", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_policy(config: Config) -> None:
    """Stop a bind beyond loopback that has no CURVE, unless the config allows it.

    Raises:
        ConfigError: `server.bind` is not loopback, CURVE is off, and
            `security.allow_unencrypted_bind` is false.
    """
    bind = config.server.bind
    if is_loopback_endpoint(bind):
        return
    if config.security.curve_secret_key:
        logger.info("binding a non-loopback endpoint with CURVE encryption endpoint=%s", bind)
        return
    if config.security.allow_unencrypted_bind:
        logger.warning(
            "binding a non-loopback endpoint without encryption or authentication endpoint=%s: anyone who "
            "reaches it can send bars and read signals (security.allow_unencrypted_bind = true)",
            bind,
        )
        return
    raise ConfigError(
        f"`server.bind` = {bind!r} is not a loopback address and CURVE is off, so anyone who reaches it could "
        "send bars and read signals. Turn CURVE on with security.curve_secret_key and "
        "security.curve_client_keys (create keys with `sigbridge keygen`), bind tcp://127.0.0.1, or set "
        "security.allow_unencrypted_bind = true on a trusted network"
    )


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """The server's key pair and the public keys of the clients allowed to connect.

    Attributes:
        public_key: the server's public key, 40 Z85 characters as bytes.
        secret_key: the server's secret key; never logged.
        client_keys: allowed client public key -> the name of the file that contains it.
        client_keys_dir: the folder the client keys were read from.
    """

    public_key: bytes
    secret_key: bytes = dataclasses.field(repr=False)
    client_keys: dict[bytes, str] = dataclasses.field(repr=False)
    client_keys_dir: Path


def _expand(setting: str, value: str) -> Path:
    expanded = os.path.expanduser(os.path.expandvars(value))
    if "$" in expanded:
        raise ConfigError(
            f"`security.{setting}` = {value!r} names an environment variable that is not set; set it or "
            "write the path out"
        )
    return Path(expanded)


def _z85_key(text: bytes | None) -> bool:
    if text is None or len(text) != _Z85_KEY_LENGTH:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def _read_key_file(path: Path, setting: str | None) -> tuple[bytes, bytes | None]:
    """(public, secret or None) keys of a key file; `setting` names the config key in errors."""
    prefix = f"`security.{setting}`: " if setting else ""
    try:
        public_key, secret_key = zmq.auth.load_certificate(path)
    except OSError as error:
        raise ConfigError(f"{prefix}cannot read key file {path}: {error}") from None
    except ValueError:
        raise ConfigError(f"{prefix}key file {path} has no public-key line; write it with `sigbridge keygen`") from None
    if not _z85_key(public_key):
        raise ConfigError(f"{prefix}key file {path} has a public key that is not 40 Z85 characters")
    return public_key, secret_key


def load_curve_keys(security: SecurityConfig) -> CurveKeys | None:
    """Read the server key pair and the allowed client keys, or None when CURVE is off.

    Raises:
        ConfigError: a file or folder is missing or unreadable, a key is malformed, the secret key
            does not match its public key, or the client folder holds no key.
    """
    if not security.curve_secret_key:
        return None
    secret_path = _expand("curve_secret_key", security.curve_secret_key)
    public_key, secret_key = _read_key_file(secret_path, "curve_secret_key")
    if not _z85_key(secret_key):
        raise ConfigError(
            f"`security.curve_secret_key`: {secret_path} holds no secret key; name the {SECRET_SUFFIX} file "
            f"that `sigbridge keygen` wrote, not the public {PUBLIC_SUFFIX} file"
        )
    if zmq.curve_public(secret_key) != public_key:
        raise ConfigError(f"`security.curve_secret_key`: in {secret_path} the secret key does not match the public key")
    mode = secret_path.stat().st_mode
    if mode & 0o077:
        logger.warning("secret key file is readable by other users path=%s mode=%o; run chmod 600", secret_path, mode & 0o777)

    folder = _expand("curve_client_keys", security.curve_client_keys)
    client_keys = read_client_keys(folder)
    logger.info(
        "CURVE on: %s allowed client keys path=%s server_key_file=%s", len(client_keys), folder, secret_path
    )
    return CurveKeys(public_key, secret_key, client_keys, folder)


def read_client_keys(folder: Path) -> dict[bytes, str]:
    """Public keys of the `*.key` files in `folder`, mapped to their file names without suffix.

    Raises:
        ConfigError: the folder is missing or unreadable, a file is malformed, or none is found.
    """
    if not folder.is_dir():
        raise ConfigError(
            f"`security.curve_client_keys`: {folder} is not a folder; create it and copy each client's "
            f"{PUBLIC_SUFFIX} file into it"
        )
    try:
        paths = sorted(folder.glob("*" + PUBLIC_SUFFIX))
    except OSError as error:
        raise ConfigError(f"`security.curve_client_keys`: cannot list {folder}: {error}") from None
    keys = {}
    for path in paths:
        public_key, _ = _read_key_file(path, "curve_client_keys")
        keys[public_key] = path.name[: -len(PUBLIC_SUFFIX)]
    if not keys:
        raise ConfigError(
            f"`security.curve_client_keys`: {folder} holds no {PUBLIC_SUFFIX} file, so no client could connect; "
            "create client keys with `sigbridge keygen` and copy the public ones there"
        )
    return keys


def read_key_pair(path: Path) -> tuple[bytes, bytes]:
    """The (public, secret) keys in a NAME.key_secret file, each 40 Z85 characters.

    Raises:
        ConfigError: the file is missing, unreadable, malformed or holds no matching secret key.
    """
    path = Path(path)
    public_key, secret_key = _read_key_file(path, None)
    if not _z85_key(secret_key) or zmq.curve_public(secret_key) != public_key:
        raise ConfigError(f"{path} holds no secret key matching its public key; pass the {SECRET_SUFFIX} file")
    return public_key, secret_key


def read_public_key(path: Path) -> str:
    """The public key in a key file, as the 40 Z85 characters an EA input takes.

    Raises:
        ConfigError: the file is missing, unreadable or malformed.
    """
    public_key, _ = _read_key_file(Path(path), None)
    return public_key.decode()


def key_fingerprint(public_key: bytes) -> str:
    """A short, stable name for a public key in logs: 12 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:12]


class _ClientKeyCheck:
    """The ZAP credentials callback: allows the listed client keys and logs each decision.

    A client with a refused key reconnects every few hundred milliseconds, so the log lines are
    rate-limited per key.
    """

    def __init__(self, client_keys: dict[bytes, str]) -> None:
        self.client_keys = client_keys
        self._log = RateLimitedLog(logger)

    def callback(self, domain: str, client_key: bytes) -> bool:
        name = self.client_keys.get(client_key)
        if name is None:
            self._log.log(
                logging.WARNING,
                client_key,
                "rejected CURVE client key_fingerprint=%s: its public key is not in security.curve_client_keys",
                key_fingerprint(client_key),
            )
            return False
        self._log.log(logging.INFO, client_key, "accepted CURVE client client_key=%s", name)
        return True


class CurveAuthenticator:
    """pyzmq's ZAP handler thread on the daemon's context, checking clients against `CurveKeys`.

    Start it before binding the socket; ZeroMQ asks it about every CURVE handshake.
    """

    def __init__(self, context: zmq.Context, keys: CurveKeys) -> None:
        self.keys = keys
        self._check = _ClientKeyCheck(keys.client_keys)
        self._authenticator = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))

    def start(self) -> None:
        self._authenticator.start()
        self._authenticator.configure_curve_callback(domain="*", credentials_provider=self._check)

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CURVE server with the server's key pair."""
        socket.curve_secretkey = self.keys.secret_key
        socket.curve_publickey = self.keys.public_key
        socket.curve_server = True

    def reload_client_keys(self) -> int:
        """Read the client key folder again; returns the number of allowed keys.

        Raises:
            ConfigError: the folder became unusable; the keys allowed before stay allowed.
        """
        keys = read_client_keys(self.keys.client_keys_dir)
        self._check.client_keys = keys
        return len(keys)

    def stop(self) -> None:
        self._authenticator.stop()


def write_key_pair(folder: Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Create a CURVE key pair as `folder/NAME.key` (public) and `folder/NAME.key_secret` (0600).

    Raises:
        ValueError: `name` is not a plain file name.
        FileExistsError: a file of the pair exists and `force` is false.
    """
    if not _KEY_NAME.match(name):
        raise ValueError(
            f"`name` must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, received {name!r}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public_path = folder / (name + PUBLIC_SUFFIX)
    secret_path = folder / (name + SECRET_SUFFIX)
    if not force:
        for path in (public_path, secret_path):
            if path.exists():
                raise FileExistsError(f"{path} exists; pass --force to replace the key pair")
    public_key, secret_key = zmq.curve_keypair()
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    public_text = (
        f"#   ZeroMQ CURVE public key, created {created} by sigbridge keygen.\n"
        "#   Give it to the other side: the server's goes to each client, a client's into the\n"
        "#   server's security.curve_client_keys folder.\n\n"
        f"metadata\ncurve\n    public-key = \"{public_key.decode()}\"\n"
    )
    secret_text = (
        f"#   ZeroMQ CURVE secret key pair, created {created} by sigbridge keygen.\n"
        "#   Keep it private: anyone holding it can pose as its owner.\n\n"
        f"metadata\ncurve\n    public-key = \"{public_key.decode()}\"\n    secret-key = \"{secret_key.decode()}\"\n"
    )
    _write_private(secret_path, secret_text, 0o600)
    _write_private(public_path, public_text, 0o644)
    return public_path, secret_path


def _write_private(path: Path, text: str, mode: int) -> None:
    # The temporary file gets its final mode at creation, so the secret is never world-readable.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
