"""Connection phase: the server's handshake v10, the client's response, the auth switch request.

The server speaks first with a v10 greeting carrying its version, a connection id, a 20-byte
nonce, its capability flags and the auth plugin it expects. The client answers with its own
capabilities, user name, auth response, optional default database, the plugin it used and
connection attributes. When that plugin is not the one the server wants, the server sends an
auth switch request (0xFE, plugin name, nonce) and the client answers with a bare auth response.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .packets import (
    ProtocolError,
    lenenc_bytes,
    read_fixed_int,
    read_lenenc_bytes,
    read_lenenc_int,
    read_nul_bytes,
)

__all__ = [
    "CLIENT_CONNECT_ATTRS",
    "CLIENT_CONNECT_WITH_DB",
    "CLIENT_DEPRECATE_EOF",
    "CLIENT_FOUND_ROWS",
    "CLIENT_LOCAL_FILES",
    "CLIENT_LONG_FLAG",
    "CLIENT_LONG_PASSWORD",
    "CLIENT_MULTI_RESULTS",
    "CLIENT_MULTI_STATEMENTS",
    "CLIENT_PLUGIN_AUTH",
    "CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA",
    "CLIENT_PROTOCOL_41",
    "CLIENT_SECURE_CONNECTION",
    "CLIENT_SESSION_TRACK",
    "CLIENT_SSL",
    "CLIENT_TRANSACTIONS",
    "DEFAULT_CHARSET",
    "SERVER_CAPABILITIES",
    "SERVER_VERSION",
    "Greeting",
    "HandshakeResponse",
    "build_auth_switch_request",
    "build_handshake",
    "build_handshake_response",
    "parse_handshake",
    "parse_handshake_response",
]

CLIENT_LONG_PASSWORD = 1
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24

SERVER_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_IGNORE_SPACE
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF
)
"""What this server offers: no TLS, no compression, no LOAD DATA LOCAL, no session tracking."""

SERVER_VERSION = "8.0.36-pylamp"
"""Version string in the greeting; clients pick features by it, so it looks like MySQL 8.0."""

DEFAULT_CHARSET = 45
"""utf8mb4_general_ci, announced in the greeting."""

_SSL_REQUEST_LENGTH = 32


def build_handshake(
    connection_id: int,
    scramble: bytes,
    *,
    server_version: str = SERVER_VERSION,
    capabilities: int = SERVER_CAPABILITIES,
    charset: int = DEFAULT_CHARSET,
    status: int = 2,
    plugin: str = "mysql_native_password",
) -> bytes:
    """Payload of the handshake v10 greeting for a 20-byte ``scramble``."""
    if len(scramble) != 20 or b"\0" in scramble:
        raise ValueError("scramble must be 20 bytes without NUL")
    return b"".join(
        (
            b"\x0a",
            server_version.encode("ascii"),
            b"\0",
            struct.pack("<I", connection_id & 0xFFFFFFFF),
            scramble[:8],
            b"\0",
            struct.pack("<HBHH", capabilities & 0xFFFF, charset, status, capabilities >> 16),
            bytes((len(scramble) + 1,)),
            b"\0" * 10,
            scramble[8:],
            b"\0",
            plugin.encode("ascii"),
            b"\0",
        )
    )


@dataclass(frozen=True, slots=True)
class Greeting:
    """What a server announced in its handshake v10 (the client side's view)."""

    server_version: str
    connection_id: int
    scramble: bytes
    capabilities: int
    charset: int
    status: int
    plugin: str


def parse_handshake(payload: bytes) -> Greeting:
    """Parse a handshake v10 payload, as a client (tests, replicas) does."""
    if not payload or payload[0] != 10:
        raise ProtocolError("not a handshake v10")
    raw_version, pos = read_nul_bytes(payload, 1)
    connection_id, pos = read_fixed_int(payload, pos, 4)
    part1 = payload[pos : pos + 8]
    pos += 9
    caps_low, pos = read_fixed_int(payload, pos, 2)
    charset, pos = read_fixed_int(payload, pos, 1)
    status, pos = read_fixed_int(payload, pos, 2)
    caps_high, pos = read_fixed_int(payload, pos, 2)
    data_len, pos = read_fixed_int(payload, pos, 1)
    pos += 10
    part2_len = max(13, data_len - 8)
    part2 = payload[pos : pos + part2_len].rstrip(b"\0")
    pos += part2_len
    raw_plugin, _ = read_nul_bytes(payload + b"\0", pos)
    return Greeting(
        server_version=_text(raw_version),
        connection_id=connection_id,
        scramble=part1 + part2,
        capabilities=caps_low | caps_high << 16,
        charset=charset,
        status=status,
        plugin=_text(raw_plugin),
    )


def build_auth_switch_request(plugin: str, scramble: bytes) -> bytes:
    """Payload asking the client to authenticate again with ``plugin`` over ``scramble``."""
    return b"\xfe" + plugin.encode("ascii") + b"\0" + scramble + b"\0"


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """What a client sent in its HandshakeResponse41."""

    capabilities: int
    max_packet: int
    charset: int
    user: str
    auth_response: bytes
    database: str | None
    plugin: str | None
    attributes: dict[str, str] = field(default_factory=dict)


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    """Parse a HandshakeResponse41 payload; raise :class:`ProtocolError` if malformed.

    Clients older than protocol 4.1 and clients asking for TLS (which this server does not
    offer) are refused with a clear error.
    """
    caps, pos = read_fixed_int(payload, 0, 4)
    if not caps & CLIENT_PROTOCOL_41:
        raise ProtocolError("client does not speak protocol 4.1", 1043, "08S01")
    if caps & CLIENT_SSL and len(payload) == _SSL_REQUEST_LENGTH:
        raise ProtocolError("TLS was requested but this server does not offer it", 1043, "08S01")
    max_packet, pos = read_fixed_int(payload, pos, 4)
    charset, pos = read_fixed_int(payload, pos, 1)
    pos += 23
    raw_user, pos = read_nul_bytes(payload, pos)
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth, pos = read_lenenc_bytes(payload, pos)
    elif caps & CLIENT_SECURE_CONNECTION:
        n, pos = read_fixed_int(payload, pos, 1)
        if pos + n > len(payload):
            raise ProtocolError("auth response truncated", 1043, "08S01")
        auth, pos = payload[pos : pos + n], pos + n
    else:
        auth, pos = read_nul_bytes(payload, pos)
    database: str | None = None
    if caps & CLIENT_CONNECT_WITH_DB and pos < len(payload):
        raw_db, pos = read_nul_bytes(payload, pos)
        database = _text(raw_db) or None
    plugin: str | None = None
    if caps & CLIENT_PLUGIN_AUTH and pos < len(payload):
        # Some clients omit the trailing NUL of the plugin name when it ends the packet.
        end = payload.find(b"\0", pos)
        raw_plugin = payload[pos:] if end < 0 else payload[pos:end]
        pos = len(payload) if end < 0 else end + 1
        plugin = _text(raw_plugin) or None
    attributes: dict[str, str] = {}
    if caps & CLIENT_CONNECT_ATTRS and pos < len(payload):
        total, pos = read_lenenc_int(payload, pos)
        end = pos + total
        if end > len(payload):
            raise ProtocolError("connection attributes truncated", 1043, "08S01")
        while pos < end:
            key, pos = read_lenenc_bytes(payload, pos)
            value, pos = read_lenenc_bytes(payload, pos)
            attributes[_text(key)] = _text(value)
    return HandshakeResponse(
        capabilities=caps,
        max_packet=max_packet,
        charset=charset,
        user=_text(raw_user),
        auth_response=auth,
        database=database,
        plugin=plugin,
        attributes=attributes,
    )


def build_handshake_response(
    user: str,
    auth_response: bytes,
    *,
    capabilities: int,
    database: str | None = None,
    plugin: str | None = "mysql_native_password",
    charset: int = DEFAULT_CHARSET,
    attributes: dict[str, str] | None = None,
) -> bytes:
    """Payload of a HandshakeResponse41, as a client sends it (used by tests and replicas)."""
    caps = capabilities | CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    if database is not None:
        caps |= CLIENT_CONNECT_WITH_DB
    if plugin is not None:
        caps |= CLIENT_PLUGIN_AUTH
    if attributes:
        caps |= CLIENT_CONNECT_ATTRS
    parts = [
        struct.pack("<IIB", caps, 16 * 1024 * 1024, charset),
        b"\0" * 23,
        user.encode("utf-8") + b"\0",
        lenenc_bytes(auth_response),
    ]
    if database is not None:
        parts.append(database.encode("utf-8") + b"\0")
    if plugin is not None:
        parts.append(plugin.encode("ascii") + b"\0")
    if attributes:
        body = b"".join(
            lenenc_bytes(k.encode("utf-8")) + lenenc_bytes(v.encode("utf-8"))
            for k, v in attributes.items()
        )
        parts.append(lenenc_bytes(body))
    return b"".join(parts)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
