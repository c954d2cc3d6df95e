"""mysql_native_password: the challenge-response MySQL clients of every age speak.

The server sends a 20-byte nonce (the "scramble"). The client answers
``SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))``. The server stores only
``SHA1(SHA1(password))``, written as MySQL does: ``"*"`` and 40 upper-case hex digits (the
``authentication_string`` of ``mysql.user``). To verify, it XORs the answer with
``SHA1(nonce + stored)`` to recover ``SHA1(password)`` and checks that its SHA1 is ``stored``.
An empty password is stored as ``""`` and answered with an empty response.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "NATIVE_PLUGIN",
    "SCRAMBLE_LENGTH",
    "make_scramble",
    "password_hash",
    "scramble_password",
    "verify",
]

NATIVE_PLUGIN = "mysql_native_password"
SCRAMBLE_LENGTH = 20


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def make_scramble(random_bytes: bytes) -> bytes:
    """Turn 20 random bytes (from ``os.urandom``) into a nonce of printable ASCII.

    The handshake carries the nonce's tail NUL-terminated, so it must contain no NUL; MySQL
    uses printable characters too. The caller supplies the randomness, keeping this pure.
    """
    if len(random_bytes) != SCRAMBLE_LENGTH:
        raise ValueError(f"need {SCRAMBLE_LENGTH} random bytes")
    return bytes(33 + b % 94 for b in random_bytes)


def password_hash(password: str | bytes) -> str:
    """The stored form of ``password``: ``"*"`` + hex(SHA1(SHA1(password))), or ``""`` if empty.

    This is MySQL's ``PASSWORD()`` / ``authentication_string`` format, so the hashes of real
    MySQL users can be carried over unchanged.
    """
    if isinstance(password, str):
        password = password.encode("utf-8")
    if not password:
        return ""
    return "*" + _sha1(_sha1(password)).hex().upper()


def scramble_password(password: str | bytes, scramble: bytes) -> bytes:
    """The client's answer to ``scramble`` for ``password`` (empty for an empty password)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    if not password:
        return b""
    stage1 = _sha1(password)
    return _xor(stage1, _sha1(scramble + _sha1(stage1)))


def verify(stored_hash: str, scramble: bytes, response: bytes) -> bool:
    """True if ``response`` answers ``scramble`` for the password whose hash is ``stored_hash``.

    ``stored_hash`` is the ``"*HEX"`` form from :func:`password_hash` (``""`` for no password).
    Malformed hashes or responses simply fail.
    """
    if not stored_hash:
        return response == b""
    if len(stored_hash) != 41 or stored_hash[0] != "*" or len(response) != 20:
        return False
    try:
        stage2 = bytes.fromhex(stored_hash[1:])
    except ValueError:
        return False
    stage1 = _xor(response, _sha1(scramble + stage2))
    return hmac.compare_digest(_sha1(stage1), stage2)
