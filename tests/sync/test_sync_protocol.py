"""The sans-IO protocol core: a client core paired with a server core through a fake link."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylamp.sync import events as ev
from pylamp.sync.protocol import (
    MAX_BODY_UNAUTHENTICATED,
    NEED_DATA,
    AuthenticationError,
    ProtocolError,
    Role,
    State,
    SyncConnection,
    decode_manifest,
    encode_manifest,
)

KEY = b"k" * 32


def pair(client_key: bytes = KEY, server_key: bytes = KEY) -> tuple[SyncConnection, SyncConnection]:
    return (
        SyncConnection(Role.CLIENT, client_key, os.urandom(32)),
        SyncConnection(Role.SERVER, server_key, os.urandom(32)),
    )


def deliver(data: bytes, to: SyncConnection) -> list[ev.Event]:
    """The fake link: hand bytes to a core and collect every complete event."""
    to.receive_data(data)
    out = []
    while (e := to.next_event()) is not NEED_DATA:
        out.append(e)
    return out


def handshake(c: SyncConnection, s: SyncConnection) -> None:
    [hello] = deliver(s.send(s.hello()), c)
    assert isinstance(hello, ev.Hello)
    [auth] = deliver(c.send(c.auth()), s)
    assert isinstance(auth, ev.Auth)
    [ok] = deliver(s.send(s.auth_ok()), c)
    assert isinstance(ok, ev.AuthOk)
    assert c.state is s.state is State.IDLE


def test_handshake_and_a_push_exchange() -> None:
    c, s = pair()
    handshake(c, s)
    [begin] = deliver(c.send(ev.Begin(True, False, True, ("*.tmp",))), s)
    assert begin == ev.Begin(True, False, True, ("*.tmp",))
    rows = [(f"d/f{i}", "f", 0o644, 10**18 + i, i, "", "") for i in range(500)]
    [man] = deliver(s.send(ev.Manifest(True, False, encode_manifest(rows))), c)
    assert isinstance(man, ev.Manifest) and man.complete and not man.more
    assert decode_manifest(man.rows) == {r[0]: r for r in rows}
    data = b"<p>compressible</p>\n" * 5000
    msgs = [
        ev.SigRequest(("a",), ("00",)),
        ev.File("x.html", 0o644, 5, "ab" * 16, data),
        ev.FileBegin("big", 0o600, 7, 10, True),
        ev.FileData(b"\x00\x01\n\xff"),
        ev.FileEnd("cd" * 16),
        ev.Meta((("d", "d", 0o755, 3, 0, "", ""),)),
        ev.Delete(("old",)),
        ev.End(),
    ]
    wire = b"".join(c.send(m) for m in msgs)
    assert deliver(wire, s) == msgs
    assert len(wire) < len(data) // 10  # the literal data went compressed
    assert s.state is State.ENDING
    got = deliver(s.send(ev.PathError("old", "nope")) + s.send(ev.Done({"files": 1}, ("old",))), c)
    assert got == [ev.PathError("old", "nope"), ev.Done({"files": 1}, ("old",))]
    assert c.state is s.state is State.IDLE
    assert c.bytes_sent == s.bytes_received and s.bytes_sent == c.bytes_received


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_any_split_of_the_byte_stream_gives_the_same_events(cuts: list[int]) -> None:
    c, s = pair()
    handshake(c, s)
    msgs = [
        ev.Begin(False, True, False, ()),
    ]
    wire = c.send(msgs[0])
    files = [ev.File(f"p{i}", 0o644, i, "00", os.urandom(i * 37) + b"\n" * i) for i in range(30)]
    wire += b"".join(c.send(f) for f in files)
    got: list[ev.Event] = []
    prev = 0
    for cut in sorted({min(x, len(wire)) for x in cuts} | {len(wire)}):
        if cut > prev:
            got += deliver(wire[prev:cut], s)
        prev = cut
    assert got == [*msgs, *files]


def test_wrong_key_is_refused_by_the_server() -> None:
    c, s = pair(client_key=b"x" * 32)
    deliver(s.send(s.hello()), c)
    with pytest.raises(AuthenticationError):
        deliver(c.send(c.auth()), s)
    assert s.state is State.AUTH


def test_impostor_server_is_refused_by_the_client() -> None:
    c = SyncConnection(Role.CLIENT, KEY, os.urandom(32))
    fake = SyncConnection(Role.SERVER, b"y" * 32, os.urandom(32))
    deliver(fake.send(fake.hello()), c)
    c.send(c.auth())
    # The impostor cannot check the client's proof; say it just answers AuthOk anyway.
    fake.state = State.AUTH_OK
    fake._peer_nonce = os.urandom(32)
    with pytest.raises(AuthenticationError):
        deliver(fake.send(fake.auth_ok()), c)


def test_recorded_client_session_cannot_be_replayed() -> None:
    c, s = pair()
    deliver(s.send(s.hello()), c)
    recorded = c.send(c.auth())
    deliver(recorded, s)
    deliver(s.send(s.auth_ok()), c)
    more = c.send(ev.Begin(True, False, True, ()))
    assert deliver(more, s) == [ev.Begin(True, False, True, ())]
    s2 = SyncConnection(Role.SERVER, KEY, os.urandom(32))  # a fresh nonce
    s2.send(s2.hello())
    with pytest.raises(AuthenticationError):
        deliver(recorded + more, s2)
    assert s2.state is State.AUTH


def test_client_proof_reflected_as_server_proof_is_refused() -> None:
    c, s = pair()
    deliver(s.send(s.hello()), c)
    auth = c.send(c.auth())
    proof = deliver(auth, s)[0].proof  # type: ignore[attr-defined]
    with pytest.raises(AuthenticationError):
        deliver(s.send(ev.AuthOk(proof)), c)


def test_messages_out_of_turn_are_refused() -> None:
    c, s = pair()
    with pytest.raises(ProtocolError):
        c.send(ev.File("x", 0o644, 0, "", b"x"))  # before authentication, on our own side
    s.send(s.hello())
    # A raw File frame before Auth is refused by the server.
    raw = SyncConnection(Role.CLIENT, KEY, os.urandom(32))
    raw.state = State.PUSH
    with pytest.raises(ProtocolError, match="not allowed in state auth"):
        deliver(raw.send(ev.File("x", 0o644, 0, "", b"x")), s)
    c2, s2 = pair()
    handshake(c2, s2)
    with pytest.raises(ProtocolError, match="Done from the server not allowed in state idle"):
        s2.send(ev.Done({}, ()))  # no push is running
    s2.state = State.ENDING  # a confused server sends it anyway: the client refuses it
    with pytest.raises(ProtocolError, match="not allowed in state idle"):
        deliver(s2.send(ev.Done({}, ())), c2)


def test_oversized_unknown_and_malformed_frames() -> None:
    c, s = pair()
    s.send(s.hello())
    with pytest.raises(ProtocolError, match="exceeds"):
        deliver(struct.pack(">BI", 2, MAX_BODY_UNAUTHENTICATED + 1), s)
    c, s = pair()
    s.send(s.hello())
    with pytest.raises(ProtocolError, match="unknown message type"):
        deliver(struct.pack(">BI", 99, 0), s)
    c, s = pair()
    handshake(c, s)
    deliver(c.send(ev.Begin(True, False, True, ())), s)
    with pytest.raises(ProtocolError, match="malformed"):
        deliver(struct.pack(">BI", ev.File.code, 5) + b"[1,2]", s)
    c, s = pair()
    handshake(c, s)
    deliver(c.send(ev.Begin(True, False, True, ())), s)
    with pytest.raises(ProtocolError, match="compressed"):
        deliver(struct.pack(">BI", ev.File.code | 0x80, 4) + b"junk", s)


def test_eof_mid_frame_is_an_error() -> None:
    c, s = pair()
    deliver(s.send(s.hello()), c)
    data = c.send(c.auth())
    s.receive_data(data[:10])
    s.receive_data(b"")
    with pytest.raises(ProtocolError, match="closed"):
        s.next_event()


def test_error_closes_the_connection() -> None:
    c, s = pair()
    handshake(c, s)
    [err] = deliver(s.send(ev.Error("bye")), c)
    assert err == ev.Error("bye") and c.state is State.CLOSED
    with pytest.raises(ProtocolError):
        c.send(ev.Begin(True, False, True, ()))
